"""Apply the de-identification profile (see ``profile.py``) and encode the result as Part 10.

The input is never modified. The output is a new set of raw (encoded) elements: kept elements
are the input's bytes, replaced ones are encoded here, kept sequences are rebuilt item by item.
Encoding such elements needs no value conversion, which is what makes the ingest fast (pydicom's
general writer costs several milliseconds per file).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from trialake.dicom.elements import Charset, RawView, tag_of
from trialake.dicom.profile import DeidParams, compute_clean_descriptor, split_descriptor
from trialake.dicom.reader import read_items
from trialake.pseudonym import compute_date_shift_days, compute_pseudo_uid

DICOM_UID_PREFIX = "1.2.840.10008."
DEID_METHOD = "Trialake PS3.15 Annex E Basic Profile, fail-closed allow-list"
IMPLEMENTATION_VERSION = "TRIALAKE"
#: "US or SS" is how an implicit VR file's pixel padding and extreme pixel values read (the VR
#: depends on Pixel Representation); they are numbers either way.
_KEPT_VRS = frozenset({"CS", "AS", "TM", "US", "SS", "US or SS", "UL", "SL", "FL", "FD", "DS", "IS", "AT", "UV", "SV"})
_UNDEFINED = 0xFFFFFFFF


#: Words of these attributes are never allowed in a cleaned descriptor of the same file.
_PHI_SOURCE_TAGS = tuple(tag_of(k) for k in (
    "PatientName", "PatientID", "OtherPatientIDs", "OtherPatientNames", "PatientBirthName",
    "PatientMotherBirthName", "PatientAddress", "InstitutionName", "InstitutionAddress",
    "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName", "AccessionNumber", "StudyID",
    "PatientTelephoneNumbers", "NameOfPhysiciansReadingStudy", "RequestingPhysician", "StationName",
))
#: Type 2 attributes of the Patient and General Study modules, present but empty (action Z).
_EMPTY = ((tag_of("PatientBirthDate"), "DA"), (tag_of("StudyID"), "SH"), (tag_of("AccessionNumber"), "SH"),
          (tag_of("ReferringPhysicianName"), "PN"))
_PATIENT_NAME, _PATIENT_ID = tag_of("PatientName"), tag_of("PatientID")
_IDENTITY_REMOVED, _METHOD, _METHOD_CODES = (tag_of("PatientIdentityRemoved"), tag_of("DeidentificationMethod"),
                                             tag_of("DeidentificationMethodCodeSequence"))
_TEMPORAL_MODIFIED = tag_of("LongitudinalTemporalInformationModified")
_SOP_CLASS, _SOP_INSTANCE = tag_of("SOPClassUID"), tag_of("SOPInstanceUID")


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
    uid_map: dict[str, str] = field(default_factory=dict)


def compute_shifted_date(value: str, days: int) -> str | None:
    """Shift a DA (``YYYYMMDD``) or DT (``YYYYMMDD...``) value by ``days``; None when the value is
    not a full calendar date (a partial or malformed date cannot be shifted, so it is removed)."""
    text_value = value.strip()
    if len(text_value) < 8 or not text_value[:8].isdigit():
        return None
    try:
        day = dt.date(int(text_value[:4]), int(text_value[4:6]), int(text_value[6:8]))
    except ValueError:
        return None
    return (day + dt.timedelta(days=days)).strftime("%Y%m%d") + text_value[8:]


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
    """Encode raw elements in tag order (the values are already in ``enc``)."""
    parts = []
    implicit, little = enc.implicit, enc.little
    for tag in sorted(elements):
        elem = elements[tag]
        value = elem.value or b""
        parts.append(_element_header(tag, elem.VR or "UN", len(value), implicit, little))
        parts.append(value)
    return b"".join(parts)


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
    return _raw_phi_tokens(tuple((int(e.tag), e.VR, e.value) for e in present), view.implicit, view.little, charset)


@lru_cache(maxsize=256)
def _raw_phi_tokens(values: tuple[tuple[int, str | None, bytes], ...], implicit: bool, little: bool,
                    charset: str | tuple[str, ...]) -> frozenset[str]:
    elements = {tag: RawDataElement(BaseTag(tag), vr, len(value), value, 0, implicit, little) for tag, vr, value in values}
    return _tokens_of(RawView.of_elements(elements, implicit=implicit, little=little,
                                          charset=charset if isinstance(charset, str) else list(charset)))


def _tokens_of(view: RawView) -> frozenset[str]:
    return frozenset(
        token.upper() for tag in _PHI_SOURCE_TAGS for value in view.values(tag) for token in split_descriptor(value)
    )


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


def _remap_uid(uid: str, ctx: _Context) -> str:
    if not uid or uid.startswith(DICOM_UID_PREFIX):
        return uid
    if uid not in ctx.uid_map:
        ctx.uid_map[uid] = compute_pseudo_uid(ctx.secret, uid, root=ctx.params.uid_root)
    return ctx.uid_map[uid]


def _item_views(view: RawView, tag: int, ctx: _Context) -> list[RawView] | None:
    """Views of a sequence's items: split by the fast reader when it can, else by pydicom; None
    for a value that is not a sequence of items (e.g. a private sequence read as UN)."""
    elem, enc = view.elements[tag], ctx.encoding
    if elem.is_raw and elem.VR != "UN" and enc.little:
        items = read_items(elem.value or b"", implicit=enc.implicit)
        if items is not None:
            return [RawView.of_elements(item, implicit=enc.implicit, little=True, charset=ctx.charset) for item in items]
    value = (convert_raw_data_element(elem, encoding=ctx.charset, ds=view.ds) if elem.is_raw else elem).value
    return [RawView(item, charset=ctx.charset) for item in value] if isinstance(value, Sequence) else None


def _sequence(view: RawView, tag: int, ctx: _Context) -> RawDataElement | None:
    items = _item_views(view, tag, ctx)
    if items is None:
        return None  # its items cannot be walked safely
    enc, parts = ctx.encoding, []
    for item in items:
        body = encode_elements(_walk(item, ctx), enc)
        parts.append(_item_tag(enc) + len(body).to_bytes(4, enc.order) + body)
    return _raw(tag, "SQ", b"".join(parts), enc)


def _item_tag(enc: Encoding) -> bytes:
    return (0xFFFE).to_bytes(2, enc.order) + (0xE000).to_bytes(2, enc.order)


def _copy(view: RawView, tag: int, vr: str, ctx: _Context) -> RawDataElement | None:
    """An element kept unchanged; sequences are rebuilt through the walk. Undefined-length values
    other than sequences, and values already converted by other code, are not copied."""
    if vr == "SQ":
        return _sequence(view, tag, ctx)
    elem = view.elements[tag]
    return elem if elem.is_raw and elem.length != _UNDEFINED else None


#: What the profile does with an attribute, decided by its tag and VR alone (PRIVATE: copied when
#: the allow-list names it, which depends on the item's private creators).
_REMOVE, _COPY, _UID, _DATE, _CLEAN, _SEQUENCE, _PRIVATE = range(7)


def _rule(tag: int, vr: str, params: DeidParams) -> int:
    group = tag >> 16
    if group % 2 == 1:
        return _PRIVATE
    if group < 0x0008 or (tag & 0xFFFF) == 0 or tag in params.tags("remove_keywords") or 0x5000 <= group <= 0x60FF:
        return _REMOVE
    if vr == "SQ":
        return _SEQUENCE if tag in params.tags("sequence_keywords") else _REMOVE
    if vr == "UI":
        return _UID
    if vr in ("DA", "DT"):
        return _DATE if params.shift_dates else _COPY
    if vr in _KEPT_VRS or tag in params.tags("keep_keywords"):
        return _COPY
    return _CLEAN if tag in params.tags("clean_keywords") else _REMOVE


@lru_cache(maxsize=8)
def _rule_table(params: DeidParams) -> dict[tuple[int, str], int]:
    """The rules of one profile by (tag, VR), filled as attributes are met (a series repeats them)."""
    return {}


def _apply(rule: int, view: RawView, tag: int, vr: str, ctx: _Context) -> RawDataElement | None:
    """The output element of one attribute under its rule, or None to remove it."""
    enc = ctx.encoding
    if rule == _COPY:
        return _copy(view, tag, vr, ctx)
    if rule == _UID:
        return _text_element(tag, vr, [_remap_uid(u, ctx) for u in view.values(tag)], enc)
    if rule == _DATE:
        shifted = [compute_shifted_date(v, ctx.shift_days) for v in view.values(tag)]
        return None if any(v is None for v in shifted) else _text_element(tag, vr, shifted, enc)  # type: ignore[arg-type]
    if rule == _SEQUENCE:
        return _sequence(view, tag, ctx)
    if rule == _CLEAN:
        cleaned = compute_clean_descriptor(" ".join(view.values(tag)), vocabulary=ctx.params.descriptor_vocabulary,
                                           phi_tokens=ctx.phi_tokens)
        return _text_element(tag, vr, [cleaned], enc) if cleaned else None
    if rule == _PRIVATE:
        return _copy(view, tag, vr, ctx) if _private_allowed(view, tag, ctx) else None
    return None


def _walk(view: RawView, ctx: _Context) -> dict[int, RawDataElement]:
    rules, out = _rule_table(ctx.params), {}
    for tag in view.elements:
        vr = view.vr(tag)
        rule = rules.get((tag, vr))
        if rule is None:
            rule = rules[tag, vr] = _rule(tag, vr, ctx.params)
        elem = _apply(rule, view, tag, vr, ctx) if rule != _REMOVE else None
        if elem is not None:
            out[tag] = elem
    return out


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


def deidentify(view: RawView, *, usubjid: str, secret: bytes, params: DeidParams) -> tuple[RawView, dict[str, str]]:
    """The de-identified copy of ``view`` for subject ``usubjid`` (raw elements in the input's
    encoding; the input is not modified) and the {original: pseudonymous} UID map."""
    enc = Encoding(view.implicit, view.little)
    shift = compute_date_shift_days(secret, usubjid, max_days=params.max_shift_days)
    ctx = _Context(secret, params, shift, _phi_tokens(view), enc, view.charset)
    out = _walk(view, ctx)
    for tag, vr in _EMPTY:
        out[tag] = _raw(tag, vr, b"", enc)
    out[_PATIENT_ID] = _text_element(_PATIENT_ID, "LO", [usubjid], enc)
    out[_PATIENT_NAME] = _text_element(_PATIENT_NAME, "PN", [usubjid], enc)
    out[_IDENTITY_REMOVED] = _text_element(_IDENTITY_REMOVED, "CS", ["YES"], enc)
    out[_METHOD] = _text_element(_METHOD, "LO", [DEID_METHOD], enc)
    out[_METHOD_CODES] = _method_codes(params.method_codes, enc.implicit, enc.little)
    out[_TEMPORAL_MODIFIED] = _text_element(
        _TEMPORAL_MODIFIED, "CS", ["MODIFIED" if params.shift_dates else "UNMODIFIED"], enc)
    return RawView.of_elements(out, implicit=enc.implicit, little=enc.little, charset=ctx.charset), ctx.uid_map


def encode_part10(view: RawView, *, transfer_syntax: str, pixel_element: bytes | memoryview) -> tuple[bytes, bytes | memoryview]:
    """A de-identified dataset (all raw elements) as Part 10: (the header, the unchanged encoded
    pixel data element). The file is their concatenation; they are kept apart so that the image
    is not copied once more only to be joined to its header."""
    meta = encode_file_meta(view.text(_SOP_CLASS) or "", view.text(_SOP_INSTANCE) or "", transfer_syntax)
    return meta + encode_elements(view.elements, Encoding(view.implicit, view.little)), pixel_element
