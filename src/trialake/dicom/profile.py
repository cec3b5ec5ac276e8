"""De-identification profile as a rule table: DICOM PS3.15 Annex E Basic Application Level
Confidentiality Profile with the options Retain Longitudinal Temporal Information with Modified
Dates, Retain Patient Characteristics and Clean Descriptors (plus Retain Safe Private for an
explicit allow-list), and HIPAA Safe Harbor (45 CFR 164.514(b)(2)) where it goes further.

The profile is applied *fail closed*: the output keeps only what a rule allows, so an attribute
nobody thought of is removed rather than leaked. A rule is data, ``Rule(tag, vr, action, option)``:

- ``vr`` is the data dictionary's VR of the tag. Rules follow it, never the VR written in the
  file: an identifying attribute written as CS or IS is still a name or an ID.
- ``action`` is one of :class:`Action` (Annex E action codes X, Z, D, U, K, C, refined).
- ``option`` names the part of Annex E (or HIPAA) the action comes from.

Every standard attribute of the data dictionary has one rule (see :func:`build_rule_table`):
the explicit rules below for named attributes, else the rule of its dictionary VR
(:data:`VR_RULES`), else removal. Private attributes are removed unless allow-listed;
attributes not in the dictionary, group lengths, groups below 0008, and the curve and overlay
groups (50xx, 60xx) are removed. ``docs/deidentification.md`` lists the table.

Values are checked as well as tags (see ``deid.py``): a kept value must conform to its
dictionary VR (else the attribute is removed); a date keeps only its strictly valid shifted part;
a UID is kept only when it is a registered DICOM UID (transfer syntax, SOP class, coding scheme,
well-known frame of reference...), every other UID, including unregistered ones under
1.2.840.10008, is replaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import NamedTuple

from pydicom.datadict import DicomDictionary, keyword_for_tag, tag_for_keyword

from trialake.dicom.elements import dictionary_vr, tag_of
from trialake.freetext import DESCRIPTOR_VOCABULARY

#: The PS3.15 parts (and HIPAA) each rule comes from.
BASIC = "Basic Profile"
MODIFIED_DATES = "Retain Longitudinal Temporal Information with Modified Dates"
FULL_DATES = "Retain Longitudinal Temporal Information with Full Dates"
PATIENT_CHARACTERISTICS = "Retain Patient Characteristics"
CLEAN_DESCRIPTORS = "Clean Descriptors"
SAFE_PRIVATE = "Retain Safe Private"
HIPAA = "HIPAA Safe Harbor"
ALLOW_LIST = "allow-list (not named in Annex E)"
PROFILE_SET = "set by the profile (PS3.15 E.1.1)"


class Action(str, Enum):
    """What a rule does with an attribute (Annex E action code, refined)."""

    REMOVE = "X"  # removed
    EMPTY = "Z"  # present, zero length (type 2 attributes)
    SUBJECT = "D"  # replaced by the trial's USUBJID (PatientID, PatientName)
    UID = "U"  # replaced by a keyed pseudonym unless a registered DICOM UID
    SHIFT = "C date"  # moved by the subject's date offset; only the strictly valid date is kept
    KEEP = "K"  # kept when every value conforms to the dictionary VR (text: no identifying token)
    AGE = "K age"  # kept, ages over 89 years become 090Y ("90 or older", HIPAA)
    CLEAN = "C"  # only vocabulary words and short numbers are kept (Clean Descriptors)
    CODE = "C code"  # code items keep registered codes only, with the standard's meaning
    WALK = "K items"  # sequence kept, its items de-identified with the same rules
    COPY = "K copy"  # bytes copied unchanged (allow-listed private attributes; profile validation)


class Rule(NamedTuple):
    """One row of the rule table."""

    tag: int
    keyword: str
    vr: str  # the data dictionary's VR
    action: Action
    option: str


class PrivateTag(NamedTuple):
    """A private attribute identified the way PS3.5 7.8.1 defines it, independent of its block."""

    creator: str  # value of the Private Creator element, e.g. "SIEMENS CT VA0  COAD"
    group: int  # odd group number, e.g. 0x0019
    element: int  # element byte within the block (0x00..0xFF), e.g. 0x92 for (0019,xx92)


_CODE_VRS = ("CS", "DS", "IS", "US", "SS", "UL", "SL", "FL", "FD", "AT", "UV", "SV", "US or SS")
#: The rule of an attribute without an explicit rule, by its dictionary VR; every other VR (text,
#: binary, sequences, UN) is removed. Codes and measurements are not identifying (Annex E names
#: the few that are, see ANNEX_E_REMOVED); times are kept because offsets are whole days.
VR_RULES: Mapping[str, tuple[Action, str]] = {
    "UI": (Action.UID, BASIC),
    "DA": (Action.SHIFT, MODIFIED_DATES),
    "DT": (Action.SHIFT, MODIFIED_DATES),
    "TM": (Action.KEEP, MODIFIED_DATES),
    **{vr: (Action.KEEP, ALLOW_LIST) for vr in _CODE_VRS},
}

#: Attributes that Annex E removes although their VR would let them through (codes, numbers).
ANNEX_E_REMOVED: frozenset[str] = frozenset({
    "InstanceOriginStatus", "ModifyingDeviceID", "LensSpecification", "ReasonForTheAttributeModification",
    "SelectorASValue", "SelectorDAValue", "SelectorDTValue", "SelectorTMValue",
    "PatientBirthTime", "LastMenstrualDate", "DataSetTrailingPadding",
    *(k for _, (_, _, _, _, k) in DicomDictionary.items() if k.startswith("GPS")),
})

#: Explicit rules that do not depend on DeidParams: keyword -> (action, option).
ATTRIBUTE_RULES: Mapping[str, tuple[Action, str]] = {
    "PatientID": (Action.SUBJECT, BASIC),
    "PatientName": (Action.SUBJECT, BASIC),
    "PatientBirthDate": (Action.EMPTY, BASIC),
    "StudyID": (Action.EMPTY, BASIC),
    "AccessionNumber": (Action.EMPTY, BASIC),
    "ReferringPhysicianName": (Action.EMPTY, BASIC),
    "PatientAge": (Action.AGE, f"{PATIENT_CHARACTERISTICS}; {HIPAA}: ages over 89 as one category"),
    **{k: (Action.KEEP, PATIENT_CHARACTERISTICS) for k in (
        "PatientSex", "PatientSize", "PatientWeight", "PregnancyStatus", "SmokingStatus", "PatientSexNeutered")},
    "EthnicGroup": (Action.REMOVE, f"{PATIENT_CHARACTERISTICS}: free text, removed ({HIPAA})"),
    **{k: (Action.CODE, CLEAN_DESCRIPTORS) for k in (
        "CodeValue", "CodingSchemeDesignator", "CodingSchemeVersion", "CodeMeaning", "LongCodeValue", "URNCodeValue")},
    **{k: (Action.REMOVE, BASIC) for k in ANNEX_E_REMOVED},
    **{k: (Action.REMOVE, PROFILE_SET) for k in (
        "PatientIdentityRemoved", "DeidentificationMethod", "DeidentificationMethodCodeSequence",
        "LongitudinalTemporalInformationModified")},
}

#: Text/binary attributes kept as they are: device and technique, pixel encoding.
DEFAULT_KEEP_KEYWORDS: frozenset[str] = frozenset({
    "Manufacturer", "ManufacturerModelName", "ConvolutionKernel", "FilterType", "RescaleType",
    "ReconstructionMethod", "AttenuationCorrectionMethod", "ScatterCorrectionMethod",
    "Radiopharmaceutical", "SequenceName", "PulseSequenceName", "ImagedNucleus",
    "ContrastBolusRoute", "PixelData", "FloatPixelData", "DoubleFloatPixelData", "ICCProfile",
    "ExtendedOffsetTable", "ExtendedOffsetTableLengths", "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData", "BluePaletteColorLookupTableData", "LUTData",
})

#: Free-text descriptors cleaned word by word (Clean Descriptors option).
DEFAULT_CLEAN_KEYWORDS: frozenset[str] = frozenset({
    "StudyDescription", "SeriesDescription", "ProtocolName", "ImageComments",
    "DerivationDescription", "PerformedProcedureStepDescription", "RequestedProcedureDescription",
    "ContrastBolusAgent", "AcquisitionComments", "AcquisitionDeviceProcessingDescription",
    "WindowCenterWidthExplanation", "PositionReferenceIndicator",
})

#: Sequences walked (their items are de-identified with the same rules); all others are removed.
DEFAULT_SEQUENCE_KEYWORDS: frozenset[str] = frozenset({
    "ReferencedImageSequence", "SourceImageSequence", "DerivationCodeSequence",
    "AnatomicRegionSequence", "AnatomicRegionModifierSequence", "PrimaryAnatomicStructureSequence",
    "RadiopharmaceuticalInformationSequence", "RadionuclideCodeSequence",
    "RadiopharmaceuticalCodeSequence", "CTDIPhantomTypeCodeSequence",
    "ContrastBolusAgentSequence", "ContrastBolusAdministrationRouteSequence",
    "ContrastBolusIngredientCodeSequence", "PurposeOfReferenceCodeSequence",
    "SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence", "PlanePositionSequence",
    "PlaneOrientationSequence", "PixelMeasuresSequence", "FrameContentSequence",
    "PixelValueTransformationSequence", "FrameVOILUTSequence", "CTImageFrameTypeSequence",
    "CTAcquisitionTypeSequence", "CTAcquisitionDetailsSequence", "CTTableDynamicsSequence",
    "CTPositionSequence", "CTGeometrySequence", "CTReconstructionSequence", "CTExposureSequence",
    "CTXRayDetailsSequence", "DimensionIndexSequence", "DimensionOrganizationSequence",
    "MRImageFrameTypeSequence", "MRTimingAndRelatedParametersSequence", "MREchoSequence",
    "MRModifierSequence", "MRImagingModifierSequence", "MRFOVGeometrySequence",
    "MRAveragesSequence", "MRDiffusionSequence", "PETFrameTypeSequence",
    "RealWorldValueMappingSequence", "MeasurementUnitsCodeSequence",
    "UnassignedSharedConvertedAttributesSequence", "UnassignedPerFrameConvertedAttributesSequence",
})

#: Extra attributes removed (tailoring of the profile; empty by default).
DEFAULT_REMOVE_KEYWORDS: frozenset[str] = frozenset()

#: Words allowed in cleaned descriptors (upper case). Anything else is dropped.
DEFAULT_DESCRIPTOR_VOCABULARY: frozenset[str] = DESCRIPTOR_VOCABULARY

#: Protections beyond the rule of each attribute, each one switchable so that a test can prove
#: that it is needed (the default keeps them all):
#: dictionary-vr: rules follow the data dictionary's VR, not the VR written in the file;
#: strict-values: kept values must conform to their VR, dates keep only their valid part;
#: registered-uids: a UID is kept only if registered, not merely under 1.2.840.10008;
#: code-items: code items keep registered codes only, with the standard's meaning;
#: pixel-comments: JPEG COM/APPn and JPEG 2000 COM segments are removed from compressed frames;
#: pixel-high-bits: bits above High Bit (and below the stored range) of native pixels are cleared.
SAFEGUARDS: frozenset[str] = frozenset({
    "dictionary-vr", "strict-values", "registered-uids", "code-items", "pixel-comments", "pixel-high-bits",
})


@dataclass(frozen=True)
class DeidParams:
    """Parameters of the de-identification profile (defaults: the Annex E profile above).

    private_tag_allowlist: private attributes to keep (Retain Safe Private option); empty = none.
    keep_keywords / clean_keywords / sequence_keywords / remove_keywords: attributes kept, cleaned,
        walked or removed, overriding the other rules (later tables win, in that order).
    copy_keywords: attributes copied byte for byte without any check, overriding every other
        rule (empty in the profile; it exists to prove, in tests, what each rule protects).
    descriptor_vocabulary: words allowed in cleaned descriptors.
    shift_dates: move DA/DT values by the subject's offset (Modified Dates option); False keeps
        the dates (Full Dates option), still checked strictly.
    max_shift_days: offsets are drawn from -max_shift_days..-1.
    uid_root: root of the replacement UIDs.
    verify_pixel_data: decode compressed pixel data to prove it is decodable (native pixel data is
        checked by length only, which needs no decoding).
    safeguards: the SAFEGUARDS applied (all by default).
    """

    private_tag_allowlist: frozenset[PrivateTag] = frozenset()
    keep_keywords: frozenset[str] = DEFAULT_KEEP_KEYWORDS
    clean_keywords: frozenset[str] = DEFAULT_CLEAN_KEYWORDS
    sequence_keywords: frozenset[str] = DEFAULT_SEQUENCE_KEYWORDS
    remove_keywords: frozenset[str] = DEFAULT_REMOVE_KEYWORDS
    copy_keywords: frozenset[str] = frozenset()
    descriptor_vocabulary: frozenset[str] = DEFAULT_DESCRIPTOR_VOCABULARY
    shift_dates: bool = True
    max_shift_days: int = 365
    uid_root: str = "2.25"
    verify_pixel_data: bool = True
    safeguards: frozenset[str] = SAFEGUARDS
    _tags: dict[str, frozenset[int]] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        tables = {
            "keep_keywords": self.keep_keywords,
            "clean_keywords": self.clean_keywords,
            "sequence_keywords": self.sequence_keywords,
            "remove_keywords": self.remove_keywords,
            "copy_keywords": self.copy_keywords,
        }
        tags: dict[str, frozenset[int]] = {}
        for name, keywords in tables.items():
            unknown = sorted(k for k in keywords if tag_for_keyword(k) is None)
            if unknown:
                raise ValueError(f"{name}: not DICOM keywords: {', '.join(unknown)}")
            tags[name] = frozenset(map(tag_of, keywords))
        for item in self.private_tag_allowlist:
            if not (isinstance(item, PrivateTag) and item.group % 2 == 1 and 0 <= item.element <= 0xFF):
                raise ValueError(f"private_tag_allowlist: {item!r} is not PrivateTag(creator, odd group, element byte)")
        if self.max_shift_days < 1:
            raise ValueError(f"max_shift_days: must be >= 1, got {self.max_shift_days}")
        unknown_safeguards = sorted(set(self.safeguards) - SAFEGUARDS)
        if unknown_safeguards:
            raise ValueError(f"safeguards: unknown {', '.join(unknown_safeguards)}")
        object.__setattr__(self, "_tags", tags)

    def tags(self, table: str) -> frozenset[int]:
        """Tags of one keyword table (``keep_keywords``, ``clean_keywords``, ...)."""
        return self._tags[table]

    @property
    def rule_table(self) -> Mapping[int, Rule]:
        """The rule of every standard attribute (built once per parameter set)."""
        table = self.__dict__.get("_rule_table")
        if table is None:
            table = build_rule_table(self)
            object.__setattr__(self, "_rule_table", table)
        return table

    def guards(self, name: str) -> bool:
        """Whether the safeguard ``name`` (one of SAFEGUARDS) is applied."""
        return name in self.safeguards

    @property
    def method_codes(self) -> tuple[tuple[str, str], ...]:
        """(code value, code meaning) pairs of CID 7050 describing what was applied."""
        codes = [("113100", "Basic Application Confidentiality Profile"),
                 ("113105", "Clean Descriptors Option"),
                 ("113108", "Retain Patient Characteristics Option")]
        if self.shift_dates:
            codes.append(("113107", "Retain Longitudinal Temporal Information Modified Dates Option"))
        else:
            codes.append(("113106", "Retain Longitudinal Temporal Information Full Dates Option"))
        if self.private_tag_allowlist:
            codes.append(("113111", "Retain Safe Private Option"))
        return tuple(codes)


def _explicit_rules(params: DeidParams) -> dict[int, tuple[Action, str]]:
    rules = {tag_of(k): rule for k, rule in ATTRIBUTE_RULES.items()}
    tables = (("keep_keywords", Action.KEEP, f"{BASIC} (not in Table E.1-1: kept)"),
              ("clean_keywords", Action.CLEAN, CLEAN_DESCRIPTORS),
              ("sequence_keywords", Action.WALK, f"{BASIC} (sequences kept, their items by the same rules)"),
              ("remove_keywords", Action.REMOVE, "profile tailoring: removed"),
              ("copy_keywords", Action.COPY, "copied unchecked (profile validation only)"))
    for table, action, option in tables:
        rules.update(dict.fromkeys(params.tags(table), (action, option)))
    return rules


@lru_cache(maxsize=8)
def build_rule_table(params: DeidParams) -> Mapping[int, Rule]:
    """The rule of every standard attribute of the data dictionary under ``params``."""
    explicit = _explicit_rules(params)
    dates = FULL_DATES if not params.shift_dates else MODIFIED_DATES
    table: dict[int, Rule] = {}
    for tag, (vr, _vm, _name, _retired, keyword) in DicomDictionary.items():
        if tag >> 16 < 0x0008 or tag & 0xFFFF == 0:
            continue  # file meta, command and directory groups; group lengths
        action, option = explicit.get(tag) or VR_RULES.get(vr, (Action.REMOVE, ALLOW_LIST))
        if action == Action.SHIFT and option == MODIFIED_DATES:
            option = dates
        table[tag] = Rule(tag, keyword, vr, action, option)
    return table


def rule_for(tag: int, params: DeidParams, *, file_vr: str | None = None) -> Rule:
    """The rule of one tag: the table's for a standard attribute, REMOVE for anything else
    (private attributes are decided by the allow-list, see ``deid.py``). ``file_vr`` is used
    only when the dictionary-vr safeguard is off (negative controls)."""
    rule = params.rule_table.get(tag)
    if rule is None:
        return Rule(tag, keyword_for_tag(tag) or "", dictionary_vr(tag), Action.REMOVE, ALLOW_LIST)
    if file_vr and not params.guards("dictionary-vr") and file_vr != rule.vr and rule.action != Action.SUBJECT:
        action, option = VR_RULES.get(file_vr, (Action.REMOVE, ALLOW_LIST))
        return Rule(tag, rule.keyword, file_vr, action, option)
    return rule



_ACTION_TEXT = {
    Action.REMOVE: "removed (X)", Action.EMPTY: "kept empty (Z)", Action.SUBJECT: "replaced by the USUBJID (D)",
    Action.UID: "replaced by a keyed pseudonym unless a registered DICOM UID (U)",
    Action.SHIFT: "moved by the subject's date offset; only the valid date (and time) kept (C)",
    Action.KEEP: "kept if every value conforms to the dictionary VR; kept text without identifying tokens (K)",
    Action.AGE: "kept; ages over 89 years written 090Y, one \"90 or older\" category (K)",
    Action.CLEAN: "vocabulary words and short numbers only (C)",
    Action.CODE: "per code item: kept only for a registered code, with the standard's meaning (C)",
    Action.WALK: "sequence kept, items de-identified by the same rules (K)",
    Action.COPY: "copied byte for byte (K)",
}


def render_rule_table(params: DeidParams) -> str:
    """The rule table as Markdown (``docs/deidentification.md`` holds it for the default profile):
    the rule of each dictionary VR, then the explicit rules grouped by action and option."""
    lines = ["| dictionary VR | action | option |", "|---|---|---|"]
    for vr, (action, option) in VR_RULES.items():
        lines.append(f"| {vr} | {_ACTION_TEXT[action]} | {option} |")
    lines.append(f"| any other (text, binary, SQ, UN) | {_ACTION_TEXT[Action.REMOVE]} | {ALLOW_LIST} |")
    groups: dict[tuple[Action, str], list[str]] = {}
    for tag, (action, option) in sorted(_explicit_rules(params).items()):
        groups.setdefault((action, option), []).append(keyword_for_tag(tag))
    lines += ["", "| attributes | action | option |", "|---|---|---|"]
    for (action, option), keywords in groups.items():
        lines.append(f"| {', '.join(sorted(keywords))} | {_ACTION_TEXT[action]} | {option} |")
    return "\n".join(lines) + "\n"
