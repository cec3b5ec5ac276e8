"""De-identification profile: DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile
with the options Retain Longitudinal Temporal Information with Modified Dates, Retain Patient
Characteristics and Clean Descriptors (plus Retain Safe Private for an explicit allow-list).

The profile is applied *fail closed*: instead of deleting a list of known identifying attributes
and keeping the rest, the output keeps only what a rule below allows, so an attribute nobody
thought of is removed rather than leaked.

Rules, by value representation (VR) of a standard attribute:
- UI: replaced by a keyed pseudonym (action U), except DICOM-defined UIDs (``1.2.840.10008.*``).
- DA, DT: moved by the subject's date offset (Modified Dates option); TM kept.
- CS, AS and numeric VRs (US, SS, UL, SL, FL, FD, DS, IS, AT, UV, SV): kept (codes and measurements).
- Text VRs (AE, LO, SH, PN, ST, LT, UT, UC, UR): removed unless listed in ``keep_keywords``
  (non-identifying device/technique text) or ``clean_keywords`` (descriptors: only words from
  ``descriptor_vocabulary`` and short numbers survive; Clean Descriptors option).
- SQ: removed unless listed in ``sequence_keywords``; kept sequences are walked with the same rules.
- Binary VRs (OB, OW, OF, OD, OL, OV, UN): removed unless listed in ``keep_keywords``.
- Explicit exceptions (``remove_keywords``): e.g. birth date and time, last menstrual date; the
  curve and overlay groups (50xx-60xx), which can carry annotations; group lengths; and groups
  below 0008 (command, file meta, directory), which do not belong in a dataset.
- Private attributes: removed unless (private creator, group, element byte) is on the allow-list;
  allow-listed values are copied unchanged (no date shift, no UID replacement), so list only
  attributes known to be safe.
- Values that cannot be handled safely are removed, never passed through: partial or malformed
  dates, undefined-length values other than sequences, attributes after the pixel data (digital
  signatures, trailing padding).
PatientID and PatientName become the USUBJID; PatientBirthDate, StudyID, AccessionNumber and
ReferringPhysicianName are present but empty (type 2); PatientIdentityRemoved (YES),
DeidentificationMethod, the De-identification Method Code Sequence (CID 7050 codes of the profile
and options applied) and LongitudinalTemporalInformationModified (MODIFIED) are set.
Retain Patient Characteristics keeps the structured ones (sex, age, size, weight, ethnic group,
smoking and pregnancy status); free-text history and alerts are removed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

from pydicom.datadict import tag_for_keyword

from trialake.dicom.elements import tag_of


class PrivateTag(NamedTuple):
    """A private attribute identified the way PS3.5 7.8.1 defines it, independent of its block."""

    creator: str  # value of the Private Creator element, e.g. "SIEMENS CT VA0  COAD"
    group: int  # odd group number, e.g. 0x0019
    element: int  # element byte within the block (0x00..0xFF), e.g. 0x92 for (0019,xx92)


#: Text/binary attributes kept as they are: device and technique, patient characteristics, codes.
DEFAULT_KEEP_KEYWORDS: frozenset[str] = frozenset({
    "Manufacturer", "ManufacturerModelName", "ConvolutionKernel", "FilterType", "RescaleType",
    "ReconstructionMethod", "AttenuationCorrectionMethod", "ScatterCorrectionMethod",
    "Radiopharmaceutical", "SequenceName", "PulseSequenceName", "ImagedNucleus",
    "ContrastBolusRoute", "PatientAge", "EthnicGroup",
    "CodeValue", "CodingSchemeDesignator", "CodingSchemeVersion", "CodeMeaning", "LongCodeValue",
    "URNCodeValue", "PixelData", "FloatPixelData", "DoubleFloatPixelData", "ICCProfile",
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

#: Attributes removed although their VR would let them through (Annex E X/Z entries).
DEFAULT_REMOVE_KEYWORDS: frozenset[str] = frozenset({
    "PatientBirthDate", "PatientBirthTime", "LastMenstrualDate", "DataSetTrailingPadding",
    "LongitudinalTemporalInformationModified", "PatientIdentityRemoved",
})

#: Words allowed in cleaned descriptors (upper case). Anything else is dropped.
DEFAULT_DESCRIPTOR_VOCABULARY: frozenset[str] = frozenset("""
CT MR MRI PET SC CTA HRCT LDCT CHEST THORAX THORACIC LUNG LUNGS PULMONARY ABDOMEN PELVIS HEAD NECK
WHOLE BODY AXIAL AX CORONAL COR SAGITTAL SAG OBLIQUE MPR MIP MINIP VR 3D 2D SCOUT TOPOGRAM
LOCALIZER LOCALISER SURVIEW SCANOGRAM HIGH LOW RESOLUTION DOSE ULTRA STANDARD STD ROUTINE SOFT
TISSUE BONE MEDIASTINUM MEDIASTINAL WINDOW KERNEL SHARP SMOOTH THIN THICK SLICE SLICES MM
CONTRAST NONCONTRAST ENHANCED UNENHANCED NC CE WITH WITHOUT W WO NON PLAIN NATIVE ARTERIAL VENOUS PORTAL DELAYED PHASE INSPIRATION
EXPIRATION INSP EXP INSPIRATORY EXPIRATORY PRONE SUPINE SPIRAL HELICAL SEQUENTIAL RECON
RECONSTRUCTION ITERATIVE FBP IR ASIR SAFIRE ADMIRE IMR IDOSE AIDR PROTOCOL SERIES STUDY
FOLLOW UP BASELINE DAY WEEK VISIT SCREENING COVID SARS COV PNEUMONIA T1 T2 FLAIR DWI ADC PD STIR
GRE SE TSE FSE EPI FDG AC NAC CORRECTED UNCORRECTED SCREEN SAVE SAVED REPORT SUMMARY PRIMARY
SECONDARY ORIGINAL DERIVED AND OF THE TO FOR ON IN
""".split())

_DESCRIPTOR_TOKEN = re.compile(r"[A-Za-z0-9]+(?:\.[0-9]+)?")
_SHORT_NUMBER = re.compile(r"^[0-9]{1,3}(?:\.[0-9]+)?(?:MM)?$")
_KERNEL_NAME = re.compile(r"^[A-Z]{1,2}[0-9]{1,3}[A-Z]?$")


@dataclass(frozen=True)
class DeidParams:
    """Parameters of the de-identification profile (defaults: the Annex E profile above).

    private_tag_allowlist: private attributes to keep (Retain Safe Private option); empty = none.
    keep_keywords / clean_keywords / sequence_keywords / remove_keywords / descriptor_vocabulary:
        the rule tables described in the module docstring.
    shift_dates: move DA/DT values by the subject's offset (False only for negative-control tests).
    max_shift_days: offsets are drawn from -max_shift_days..-1.
    uid_root: root of the replacement UIDs.
    verify_pixel_data: decode compressed pixel data to prove it is decodable (native pixel data is
        checked by length only, which needs no decoding).
    """

    private_tag_allowlist: frozenset[PrivateTag] = frozenset()
    keep_keywords: frozenset[str] = DEFAULT_KEEP_KEYWORDS
    clean_keywords: frozenset[str] = DEFAULT_CLEAN_KEYWORDS
    sequence_keywords: frozenset[str] = DEFAULT_SEQUENCE_KEYWORDS
    remove_keywords: frozenset[str] = DEFAULT_REMOVE_KEYWORDS
    descriptor_vocabulary: frozenset[str] = DEFAULT_DESCRIPTOR_VOCABULARY
    shift_dates: bool = True
    max_shift_days: int = 365
    uid_root: str = "2.25"
    verify_pixel_data: bool = True
    _tags: dict[str, frozenset[int]] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        tables = {
            "keep_keywords": self.keep_keywords,
            "clean_keywords": self.clean_keywords,
            "sequence_keywords": self.sequence_keywords,
            "remove_keywords": self.remove_keywords,
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
        object.__setattr__(self, "_tags", tags)

    def tags(self, table: str) -> frozenset[int]:
        """Tags of one keyword table (``keep_keywords``, ``clean_keywords``, ...)."""
        return self._tags[table]

    @property
    def method_codes(self) -> tuple[tuple[str, str], ...]:
        """(code value, code meaning) pairs of CID 7050 describing what was applied."""
        codes = [("113100", "Basic Application Confidentiality Profile"),
                 ("113105", "Clean Descriptors Option"),
                 ("113108", "Retain Patient Characteristics Option")]
        if self.shift_dates:
            codes.append(("113107", "Retain Longitudinal Temporal Information Modified Dates Option"))
        if self.private_tag_allowlist:
            codes.append(("113111", "Retain Safe Private Option"))
        return tuple(codes)


def split_descriptor(text: str) -> list[str]:
    """Words and numbers (``1.25`` stays one token) of a free-text value; punctuation is dropped."""
    return _DESCRIPTOR_TOKEN.findall(text)


def compute_clean_descriptor(text: str, *, vocabulary: frozenset[str], phi_tokens: frozenset[str]) -> str:
    """Keep only vocabulary words, short numbers (<= 3 integer digits, optional "MM") and kernel-like
    names (``B70f``, ``FC13``) of a descriptor, minus any token of the subject's identifying values."""
    kept = []
    for token in split_descriptor(text):
        upper = token.upper()
        if upper in phi_tokens:
            continue
        if upper in vocabulary or _SHORT_NUMBER.match(upper) or _KERNEL_NAME.match(upper):
            kept.append(token)
    return " ".join(kept)
