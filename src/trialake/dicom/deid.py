"""Apply the de-identification rule table (see ``profile.py``) and encode the result as Part 10.

The input is never modified. The output is a new set of raw (encoded) elements: kept elements
are the input's bytes (after their values are checked against the dictionary VR), replaced ones
are encoded here, kept sequences are rebuilt item by item. Encoding such elements needs no value
conversion, which is what makes the ingest fast (pydicom's general writer costs several
milliseconds per file).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.sequence import Sequence
from pydicom.sr._concepts_dict import concepts
from pydicom.sr._snomed_dict import mapping as snomed_mapping
from pydicom.tag import BaseTag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from trialake.dicom.elements import Charset, RawView, dictionary_vr, tag_of
from trialake.dicom.profile import ATTRIBUTE_RULES, Action, DeidParams, Rule, rule_for
from trialake.dicom.reader import read_items
from trialake.freetext import compute_clean_text, fold, is_identifying_text, split_words
from trialake.pseudonym import compute_date_shift_days, compute_pseudo_uid

DICOM_UID_PREFIX = "1.2.840.10008."
#: The version of the rules; a lake whose copies were made by another version is re-ingested.
DEID_VERSION = "2"
DEID_METHOD = f"Trialake PS3.15 Annex E Basic Profile, fail-closed rule table v{DEID_VERSION}"
IMPLEMENTATION_VERSION = "TRIALAKE"
_UNDEFINED = 0xFFFFFFFF

#: Words of these attributes are never allowed in a cleaned descriptor or kept text of the same file.
_PHI_SOURCE_TAGS = tuple(tag_of(k) for k in (
    "PatientName", "PatientID", "OtherPatientIDs", "OtherPatientNames", "PatientBirthName",
    "PatientMotherBirthName", "PatientAddress", "InstitutionName", "InstitutionAddress",
    "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName", "AccessionNumber", "StudyID",
    "PatientTelephoneNumbers", "NameOfPhysiciansReadingStudy", "RequestingPhysician", "StationName",
))
_SUBJECT = tuple(tag_of(k) for k, (action, _) in ATTRIBUTE_RULES.items() if action == Action.SUBJECT)
_EMPTY = tuple(tag_of(k) for k, (action, _) in ATTRIBUTE_RULES.items() if action == Action.EMPTY)
_IDENTITY_REMOVED, _METHOD, _METHOD_CODES = (tag_of("PatientIdentityRemoved"), tag_of("DeidentificationMethod"),
                                             tag_of("DeidentificationMethodCodeSequence"))
_TEMPORAL_MODIFIED = tag_of("LongitudinalTemporalInformationModified")
_SOP_CLASS, _SOP_INSTANCE = tag_of("SOPClassUID"), tag_of("SOPInstanceUID")
_CODE_VALUE, _SCHEME, _MEANING, _LONG_CODE_VALUE = map(tag_of, (
    "CodeValue", "CodingSchemeDesignator", "CodeMeaning", "LongCodeValue"))

#: Value syntax of the kept ASCII VRs (PS3.5 6.2), one value each; checked value by value.
_VALUE_SYNTAX: dict[str, re.Pattern[str]] = {
    "CS": re.compile(r"[A-Z0-9_ ]*"),
    "DS": re.compile(r" *[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)? *|"),
    "IS": re.compile(r" *[+-]?[0-9]{1,12} *|"),
    "TM": re.compile(r"(?:(?:[01][0-9]|2[0-3])(?:[0-5][0-9](?:(?:[0-5][0-9]|60)(?:\.[0-9]{1,6})?)?)?)? *"),
    "AS": re.compile(r"[0-9]{3}[DWMY]|"),
}
_BINARY_SIZES = {"US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "FD": 8, "AT": 4, "UV": 8, "SV": 8}
_BYTE_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV"})
_TEXT_VRS = frozenset({"AE", "LO", "SH", "PN", "ST", "LT", "UT", "UC", "UR"})
_DT_TIME = re.compile(r"(?:[01][0-9]|2[0-3])(?:[0-5][0-9](?:(?:[0-5][0-9]|60)(?:\.[0-9]{1,6})?)?)?"
                      r"(?:[+-](?:0[0-9]|1[0-4])[0-5][0-9])?|[+-](?:0[0-9]|1[0-4])[0-5][0-9]")
_OLDEST_AGE_YEARS = 90  # HIPAA Safe Harbor: ages over 89 are aggregated into "90 or older"


@dataclass(frozen=True)
class Encoding:
    """How the dataset is encoded: the output keeps the input's transfer syntax."""

    implicit: bool
    little: bool

    @property
    def order(self) -> str:
        return "little" if self.little else "big"


@dataclass
class _Context:
    secret: bytes
    params: DeidParams
    shift_days: int
    phi_tokens: frozenset[str]
    encoding: Encoding
    charset: Charset
    pseudonyms: frozenset[str] = frozenset()  # UIDs that are already pseudonyms (re-cleaning a copy)
    uid_map: dict[str, str] = field(default_factory=dict)


@lru_cache(maxsize=4096)  # the files of a series share their dates
def compute_shifted_date(value: str, days: int, *, strict: bool = True) -> str | None:
    """Shift a DA (``YYYYMMDD``) or DT (``YYYYMMDD[HH[MM[SS[.F]]]][&ZZXX]``) value by ``days``;
    None when the value does not start with a full calendar date (a partial or malformed date
    cannot be shifted, so it is removed). ``strict``: only the valid date and time are kept, any
    other text after them is dropped."""
    text_value = value.strip()
    if len(text_value) < 8 or not text_value[:8].isdigit():
        return None
    try:
        day = dt.date(int(text_value[:4]), int(text_value[4:6]), int(text_value[6:8]))
    except ValueError:
        return None
    rest = text_value[8:]
    if strict:
        match = _DT_TIME.match(rest)
        rest = match.group(0) if match else ""
    try:
        return (day + dt.timedelta(days=days)).strftime("%Y%m%d") + rest
    except OverflowError:
        return None


def compute_capped_age(value: str) -> str | None:
    """A PatientAge (AS, ``nnnD|W|M|Y``) with ages over 89 years as ``090Y`` (HIPAA Safe Harbor's
    single "90 or older" category); None for a value that is not an age string."""
    text_value = value.strip()
    if not _VALUE_SYNTAX["AS"].fullmatch(text_value) or not text_value:
        return None
    if text_value[3] == "Y" and int(text_value[:3]) >= _OLDEST_AGE_YEARS:
        return f"{_OLDEST_AGE_YEARS:03d}Y"
    return text_value


def _raw(tag: int, vr: str, value: bytes, enc: Encoding) -> RawDataElement:
    return RawDataElement(BaseTag(tag), vr, len(value), value, 0, enc.implicit, enc.little)


def _text_element(tag: int, vr: str, values: list[str], enc: Encoding) -> RawDataElement:
    """ASCII values (UIDs, dates, USUBJID, cleaned words) as a raw element, padded to even length."""
    value = "\\".join(values).encode("ascii")
    if len(value) % 2:
        value += b"\x00" if vr == "UI" else b" "
    return _raw(tag, vr, value, enc)


@lru_cache(maxsize=8192)  # a series repeats the same (tag, VR, length) in every file
def _element_header(tag: int, vr: str, length: int, implicit: bool, little: bool) -> bytes:
    order = "little" if little else "big"
    head = (tag >> 16).to_bytes(2, order) + (tag & 0xFFFF).to_bytes(2, order)
    if implicit:
        return head + length.to_bytes(4, order)
    if vr in EXPLICIT_VR_LENGTH_32:
        return head + vr.encode("ascii") + b"\x00\x00" + length.to_bytes(4, order)
    return head + vr.encode("ascii") + length.to_bytes(2, order)


def encode_elements(elements: Mapping[int, RawDataElement], enc: Encoding) -> bytes:
    """Encode raw elements in tag order (the values are already in ``enc``). An odd-length value
    is padded to even length (a space for text, a zero byte otherwise), as PS3.5 7.1.1 requires."""
    parts = []
    implicit, little = enc.implicit, enc.little
    for tag in sorted(elements):
        elem = elements[tag]
        value = elem.value or b""
        if len(value) % 2:
            value += _padding(tag, elem.VR)
        parts.append(_element_header(tag, elem.VR or "UN", len(value), implicit, little))
        parts.append(value)
    return b"".join(parts)


@lru_cache(maxsize=1024)
def _padding(tag: int, vr: str | None) -> bytes:
    """What pads an odd-length value: a space for text, a zero byte for the others; nothing for a
    sequence (its length is its items', which are padded) or for a value that may be one (no VR
    and none in the dictionary: an implicit VR private attribute)."""
    vr = vr or dictionary_vr(tag)
    if vr in ("SQ", "UN"):
        return b""
    return b" " if vr in _TEXT_VRS or vr in ("CS", "DS", "IS", "DA", "DT", "TM", "AS") else b"\x00"


def encode_file_meta(sop_class: str, sop_instance: str, transfer_syntax: str) -> bytes:
    """Preamble, ``DICM`` and the File Meta Information group (always explicit VR little endian)."""
    enc = Encoding(implicit=False, little=True)
    meta = {
        0x00020001: _raw(0x00020001, "OB", b"\x00\x01", enc),
        0x00020002: _text_element(0x00020002, "UI", [sop_class], enc),
        0x00020003: _text_element(0x00020003, "UI", [sop_instance], enc),
        0x00020010: _text_element(0x00020010, "UI", [transfer_syntax], enc),
        0x00020012: _text_element(0x00020012, "UI", [PYDICOM_IMPLEMENTATION_UID], enc),
        0x00020013: _text_element(0x00020013, "SH", [IMPLEMENTATION_VERSION], enc),
    }
    body = encode_elements(meta, enc)
    group_length = _element_header(0x00020000, "UL", 4, False, True) + len(body).to_bytes(4, "little")
    return b"\x00" * 128 + b"DICM" + group_length + body


def _phi_tokens(view: RawView) -> frozenset[str]:
    """Words of the file's identifying attributes (the files of a series repeat the same values,
    so raw values are tokenized once per process)."""
    present = [view.elements[tag] for tag in _PHI_SOURCE_TAGS if tag in view.elements]
    if not all(elem.is_raw for elem in present):
        return _tokens_of(view)
    charset = view.charset if isinstance(view.charset, str) else tuple(view.charset)
    return _raw_phi_tokens(tuple((int(e.tag), e.VR, e.value or b"") for e in present), view.implicit, view.little, charset)


@lru_cache(maxsize=256)
def _raw_phi_tokens(values: tuple[tuple[int, str | None, bytes], ...], implicit: bool, little: bool,
                    charset: str | tuple[str, ...]) -> frozenset[str]:
    elements = {tag: RawDataElement(BaseTag(tag), vr, len(value), value, 0, implicit, little) for tag, vr, value in values}
    return _tokens_of(RawView.of_elements(elements, implicit=implicit, little=little,
                                          charset=charset if isinstance(charset, str) else list(charset)))


def _tokens_of(view: RawView) -> frozenset[str]:
    return frozenset(
        fold(token) for tag in _PHI_SOURCE_TAGS for value in _safe_values(view, tag, None) for token in split_words(value)
    )


def _safe_values(view: RawView, tag: int, vr: str | None) -> list[str]:
    """Values decoded as ``vr``; [] when they cannot be decoded (the attribute is then removed)."""
    try:
        return view.values(tag, vr=vr)
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeError, NotImplementedError):
        return []


def _private_allowed(view: RawView, tag: int, ctx: _Context) -> bool:
    group, element = tag >> 16, tag & 0xFFFF
    allow = ctx.params.private_tag_allowlist
    if not allow:
        return False
    if element <= 0xFF:  # a Private Creator element: kept when part of its block is
        creator = view.text(tag) or ""
        return any(p.group == group and p.creator == creator for p in allow)
    creator = view.text((group << 16) | (element >> 8))
    return creator is not None and any(p == (creator, group, element & 0xFF) for p in allow)


@lru_cache(maxsize=4096)
def _is_registered_uid(uid: str) -> bool:
    """A UID of the DICOM registry (PS3.6 Annex A): transfer syntax, SOP class, coding scheme..."""
    return UID(uid).type != ""


def _remap_uid(uid: str, ctx: _Context) -> str:
    if not uid or uid in ctx.pseudonyms:
        return uid
    if _is_registered_uid(uid) if ctx.params.guards("registered-uids") else uid.startswith(DICOM_UID_PREFIX):
        return uid
    if uid not in ctx.uid_map:
        ctx.uid_map[uid] = compute_pseudo_uid(ctx.secret, uid, root=ctx.params.uid_root)
    return ctx.uid_map[uid]


def _item_views(view: RawView, tag: int, ctx: _Context) -> list[RawView] | None:
    """Views of a sequence's items: split by the fast reader when it can, else by pydicom; None
    for a value that is not a sequence of items. A sequence written as UN holds implicit VR items."""
    elem = view.elements[tag]
    if elem.is_raw and view.little and elem.VR in ("SQ", "UN", None):
        implicit = view.implicit or elem.VR == "UN"
        items = read_items(elem.value or b"", implicit=implicit)
        if items is not None:
            return [RawView.of_elements(item, implicit=implicit, little=True, charset=ctx.charset) for item in items]
    if elem.is_raw and elem.VR not in ("SQ", None):
        return None
    try:
        value = (convert_raw_data_element(elem, encoding=ctx.charset, ds=view.ds) if elem.is_raw else elem).value
    except (ValueError, TypeError, KeyError, AttributeError, NotImplementedError):
        return None
    return [RawView(item, charset=ctx.charset) for item in value] if isinstance(value, Sequence) else None


def _sequence(view: RawView, tag: int, ctx: _Context) -> RawDataElement | None:
    """The sequence with each item de-identified; items whose code cannot be verified are dropped,
    and a sequence left without items is removed."""
    items = _item_views(view, tag, ctx)
    if items is None:
        return None  # its items cannot be walked safely
    enc, parts = ctx.encoding, []
    for item in items:
        elements = _walk(item, ctx, item=True)
        if elements is None:
            continue
        body = encode_elements(elements, enc)
        parts.append(_item_tag(enc) + len(body).to_bytes(4, enc.order) + body)
    if items and not parts:
        return None
    return _raw(tag, "SQ", b"".join(parts), enc)


def _item_tag(enc: Encoding) -> bytes:
    return (0xFFFE).to_bytes(2, enc.order) + (0xE000).to_bytes(2, enc.order)


def _output_vr(rule: Rule, elem: RawDataElement, ctx: _Context) -> str | None:
    """The VR to write: the file's when it is one the dictionary allows, else the dictionary's;
    None when the dictionary allows several and the file names none (explicit VR output only)."""
    candidates = rule.vr.split(" or ")
    if elem.VR in candidates:
        return elem.VR
    if len(candidates) == 1:
        return candidates[0]
    return rule.vr if ctx.encoding.implicit else None


def _conforms(values: list[str], vr: str) -> bool:
    """Every value has the VR's syntax (its length limit is not enforced: numbers written with
    too many digits are common and say nothing about anyone)."""
    syntax = _VALUE_SYNTAX.get(vr)
    return syntax is None or all(syntax.fullmatch(v) for v in values)


def _keep(view: RawView, tag: int, rule: Rule, ctx: _Context) -> RawDataElement | None:
    """An attribute kept when its value conforms to the dictionary VR (raw bytes copied)."""
    elem = view.elements[tag]
    if _copy(elem) is None:
        return None
    vr = _output_vr(rule, elem, ctx)
    if vr is None:
        return None
    if not ctx.params.guards("strict-values"):
        return elem
    raw = elem.value or b""
    if vr in _TEXT_VRS:
        values = _safe_values(view, tag, vr)
        if not values and raw.strip(b" \x00") or any(is_identifying_text(v, phi_tokens=ctx.phi_tokens) for v in values):
            return None
    elif not _value_conforms(raw, vr, elem.VR, rule.vr):
        return None
    return elem if elem.VR == vr else RawDataElement(elem.tag, vr, len(raw), raw, 0, elem.is_implicit_VR, elem.is_little_endian)


@lru_cache(maxsize=16384)  # a series repeats most of its values in every file
def _value_conforms(raw: bytes, vr: str, file_vr: str | None, dictionary_vr: str) -> bool:
    """A code or number value conforms to the VR it is kept as: binary values are whole numbers
    of items written with an allowed VR; ASCII values have the VR's syntax."""
    candidates = vr.split(" or ")
    if any(c in _BYTE_VRS for c in candidates):
        return file_vr in (None, "UN", *dictionary_vr.split(" or "))
    if candidates[0] in _BINARY_SIZES:
        return file_vr in (*candidates, None) and len(raw) % _BINARY_SIZES[candidates[0]] == 0
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return False
    return _conforms([v.strip("\x00") for v in text.split("\\")], vr)


def _shift(view: RawView, tag: int, rule: Rule, ctx: _Context) -> RawDataElement | None:
    vr = rule.vr if rule.vr in ("DA", "DT") else None
    values = _safe_values(view, tag, vr)
    if vr is None or not values:
        return None
    days = ctx.shift_days if ctx.params.shift_dates else 0  # 0 too when re-cleaning a copy
    shifted = [compute_shifted_date(v, days, strict=ctx.params.guards("strict-values")) if v else "" for v in values]
    if any(v is None for v in shifted):
        return None
    if vr == "DA" and ctx.params.guards("strict-values"):
        shifted = [v[:8] for v in shifted]  # type: ignore[index]
    return _text_element(tag, vr, shifted, ctx.encoding)  # type: ignore[arg-type]


def _uid(view: RawView, tag: int, rule: Rule, ctx: _Context) -> RawDataElement | None:
    values = _safe_values(view, tag, "UI")
    return _text_element(tag, "UI", [_remap_uid(u, ctx) for u in values], ctx.encoding) if values else None


def _clean(view: RawView, tag: int, rule: Rule, ctx: _Context) -> RawDataElement | None:
    vr = rule.vr if rule.vr in _TEXT_VRS else None
    if vr is None:
        return None
    cleaned = compute_clean_text(" ".join(_safe_values(view, tag, vr)), vocabulary=ctx.params.descriptor_vocabulary,
                                 phi_tokens=ctx.phi_tokens)
    return _text_element(tag, vr, [cleaned], ctx.encoding) if cleaned else None


def _age(view: RawView, tag: int, rule: Rule, ctx: _Context) -> RawDataElement | None:
    values = [compute_capped_age(v) for v in _safe_values(view, tag, "AS")]
    return _text_element(tag, "AS", values, ctx.encoding) if values and None not in values else None  # type: ignore[arg-type]


def _walk_sequence(view: RawView, tag: int, rule: Rule, ctx: _Context) -> RawDataElement | None:
    return _sequence(view, tag, ctx)


def _code_unguarded(view: RawView, tag: int, rule: Rule, ctx: _Context) -> RawDataElement | None:
    """A code attribute is decided per item (``_code_item``); without that safeguard it is copied."""
    return None if ctx.params.guards("code-items") else _copy(view.elements[tag])


def _copied(view: RawView, tag: int, rule: Rule, ctx: _Context) -> RawDataElement | None:
    return _copy(view.elements[tag])


#: The output element of one attribute under its rule's action (None: removed). REMOVE has no
#: entry; SUBJECT and EMPTY are set on the top level, not copied from the input.
_ACTIONS = {
    Action.KEEP: _keep, Action.UID: _uid, Action.SHIFT: _shift, Action.WALK: _walk_sequence, Action.CLEAN: _clean,
    Action.AGE: _age, Action.CODE: _code_unguarded, Action.COPY: _copied,
}


def _copy(elem: RawDataElement) -> RawDataElement | None:
    """The element's bytes unchanged; undefined-length values other than sequences, and values
    already converted by other code, are not copied."""
    return elem if elem.is_raw and elem.length != _UNDEFINED else None


def _private(view: RawView, tag: int, ctx: _Context) -> RawDataElement | None:
    """An allow-listed private attribute is copied (a private sequence is walked)."""
    if not _private_allowed(view, tag, ctx):
        return None
    elem = view.elements[tag]
    return _sequence(view, tag, ctx) if elem.VR == "SQ" else _copy(elem)


def _walk(view: RawView, ctx: _Context, *, item: bool) -> dict[int, RawDataElement] | None:
    """The de-identified elements of a dataset or sequence item; None for an item whose code
    cannot be verified (the caller drops the item; on the top level the code is just removed)."""
    out, params, has_code = {}, ctx.params, False
    table, by_dictionary = params.rule_table, params.guards("dictionary-vr")
    for tag, elem in view.elements.items():
        if (tag >> 16) % 2 == 1:
            kept = _private(view, tag, ctx)
        else:
            rule = table.get(tag) if by_dictionary else None
            if rule is None:
                rule = rule_for(tag, params, file_vr=elem.VR)
            action = _ACTIONS.get(rule.action)
            if action is None:
                continue
            has_code |= action is _code_unguarded
            kept = action(view, tag, rule, ctx)
        if kept is not None:
            out[tag] = kept
    if has_code and params.guards("code-items"):
        code = _code_item(view, ctx)
        if code is None and item:
            return None
        out.update(code or {})
    return out


@lru_cache(maxsize=1)
def _standard_meanings() -> dict[tuple[str, str], str]:
    """(coding scheme designator, code value) -> code meaning of every code in pydicom's copy of
    the DICOM content mapping resource (PS3.16); legacy SNOMED-RT (SRT) codes through SCT."""
    meanings: dict[tuple[str, str], str] = {}
    for scheme, names in concepts.items():
        for codes in names.values():
            for code, (meaning, _cids) in codes.items():
                folded = unicodedata.normalize("NFKD", meaning).encode("ascii", "ignore").decode("ascii")
                meanings.setdefault((scheme, code), folded[:64].strip())
    for srt, sct in snomed_mapping["SRT"].items():
        if ("SCT", sct) in meanings:
            meanings.setdefault(("SRT", srt), meanings["SCT", sct])
    return meanings


def _code_item(view: RawView, ctx: _Context) -> dict[int, RawDataElement] | None:
    """A code item keeps its code only when (scheme, value) is a registered code, and then with
    the standard's meaning: free text in CodeMeaning and local codes never pass."""
    scheme = view.text(_SCHEME) or ""
    value_tag = _CODE_VALUE if _CODE_VALUE in view.elements else _LONG_CODE_VALUE
    value = view.text(value_tag) or ""
    meaning = _standard_meanings().get((scheme, value))
    if not meaning:
        return None
    enc = ctx.encoding
    return {
        value_tag: _text_element(value_tag, "SH" if value_tag == _CODE_VALUE else "UC", [value], enc),
        _SCHEME: _text_element(_SCHEME, "SH", [scheme], enc),
        _MEANING: _text_element(_MEANING, "LO", [meaning], enc),
    }


@lru_cache(maxsize=16)
def _method_codes(codes: tuple[tuple[str, str], ...], implicit: bool, little: bool) -> RawDataElement:
    enc, items = Encoding(implicit, little), []
    for value, meaning in codes:
        body = encode_elements({
            0x00080100: _text_element(0x00080100, "SH", [value], enc),
            0x00080102: _text_element(0x00080102, "SH", ["DCM"], enc),
            0x00080104: _text_element(0x00080104, "LO", [meaning], enc),
        }, enc)
        items.append(_item_tag(enc) + len(body).to_bytes(4, enc.order) + body)
    return _raw(_METHOD_CODES, "SQ", b"".join(items), enc)


def deidentify(view: RawView, *, usubjid: str, secret: bytes, params: DeidParams,
               pseudonyms: frozenset[str] | None = None) -> tuple[RawView, dict[str, str]]:
    """The de-identified copy of ``view`` for subject ``usubjid`` (raw elements in the input's
    encoding; the input is not modified) and the {original: pseudonymous} UID map.

    pseudonyms: re-clean a copy that was de-identified before (under older rules): these UIDs
    are already pseudonyms and stay, dates are already moved and stay where they are.
    """
    enc = Encoding(view.implicit, view.little)
    shift = 0 if pseudonyms is not None else compute_date_shift_days(secret, usubjid, max_days=params.max_shift_days)
    ctx = _Context(secret, params, shift, _phi_tokens(view), enc, view.charset, pseudonyms or frozenset())
    out = _walk(view, ctx, item=False) or {}
    for tag in _EMPTY:
        out[tag] = _raw(tag, rule_for(tag, params).vr, b"", enc)
    for tag in _SUBJECT:
        out[tag] = _text_element(tag, rule_for(tag, params).vr, [usubjid], enc)
    out[_IDENTITY_REMOVED] = _text_element(_IDENTITY_REMOVED, "CS", ["YES"], enc)
    out[_METHOD] = _text_element(_METHOD, "LO", [DEID_METHOD], enc)
    out[_METHOD_CODES] = _method_codes(params.method_codes, enc.implicit, enc.little)
    modified = params.shift_dates if pseudonyms is None else view.text(_TEMPORAL_MODIFIED) == "MODIFIED"
    out[_TEMPORAL_MODIFIED] = _text_element(_TEMPORAL_MODIFIED, "CS", ["MODIFIED" if modified else "UNMODIFIED"], enc)
    return RawView.of_elements(out, implicit=enc.implicit, little=enc.little, charset=ctx.charset), ctx.uid_map


def encode_part10(view: RawView, *, transfer_syntax: str, pixel_element: bytes | memoryview) -> tuple[bytes, bytes | memoryview]:
    """A de-identified dataset (all raw elements) as Part 10: (the header, the encoded pixel data
    element). The file is their concatenation; they are kept apart so that the image is not
    copied once more only to be joined to its header."""
    meta = encode_file_meta(view.text(_SOP_CLASS) or "", view.text(_SOP_INSTANCE) or "", transfer_syntax)
    return meta + encode_elements(view.elements, Encoding(view.implicit, view.little)), pixel_element
