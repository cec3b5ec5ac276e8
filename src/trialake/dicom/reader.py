"""A fast header reader for the common case: a little-endian Part 10 file (explicit or implicit
VR, which covers every compressed transfer syntax too), read up to the pixel data.

It only splits the byte stream into top-level elements (tag, VR, length, value bytes) and builds a
pydicom dataset of raw elements from them, about three times faster than ``pydicom.dcmread``
because it converts nothing. Anything unusual (big endian, no group length in the file meta, a
VR it does not know, a malformed length) returns None, and the caller falls back to pydicom.
"""

from __future__ import annotations

import struct

from pydicom.charset import convert_encodings
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import BaseTag
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ImplicitVRLittleEndian
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, STANDARD_VR

_LONG_VRS = frozenset(vr.encode("ascii") for vr in EXPLICIT_VR_LENGTH_32)
_VR_NAMES = {vr.encode("ascii"): vr for vr in STANDARD_VR}  # encoded VR -> its name
_GROUP_ELEMENT, _U32, _U16 = struct.Struct("<HH"), struct.Struct("<I"), struct.Struct("<H")
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_PIXEL_DATA, _CHARSET, _TRANSFER_SYNTAX = 0x7FE00010, 0x00080005, 0x00020010
_META_START = 132
_PYDICOM_SYNTAXES = frozenset({ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian})


class _Unsupported(Exception):
    """The fast reader does not handle this file; pydicom's reader will."""


def _header(data: bytes, offset: int, implicit: bool) -> tuple[int, str | None, int, int]:
    """(tag, VR, length, value offset) of the element at ``offset``."""
    if offset + 8 > len(data):
        raise _Unsupported
    group, element = _GROUP_ELEMENT.unpack_from(data, offset)
    tag = (group << 16) | element
    if implicit or group == 0xFFFE:
        return tag, None, _U32.unpack_from(data, offset + 4)[0], offset + 8
    vr = data[offset + 4:offset + 6]
    name = _VR_NAMES.get(vr)
    if name is None:
        raise _Unsupported
    if vr in _LONG_VRS:
        if offset + 12 > len(data):
            raise _Unsupported
        return tag, name, _U32.unpack_from(data, offset + 8)[0], offset + 12
    return tag, name, _U16.unpack_from(data, offset + 6)[0], offset + 8


def _skip_undefined(data: bytes, offset: int, implicit: bool, end_tag: int) -> int:
    """Offset after the delimiter ``end_tag`` that closes an undefined-length value at ``offset``."""
    while True:
        tag, vr, length, value = _header(data, offset, implicit)
        if tag == end_tag:
            return value
        if length == _UNDEFINED:
            offset = _skip_undefined(data, value, implicit or vr == "UN", _ITEM_END if tag == _ITEM else _SEQUENCE_END)
        else:
            offset = value + length


def _elements(data: bytes, offset: int, end: int, implicit: bool, *, stop_at_pixels: bool,
              stop_tag: int | None = None) -> tuple[dict, int]:
    """Raw elements from ``offset`` to ``end`` (or the pixel data, or the ``stop_tag`` delimiter,
    which is consumed); the offset where reading stopped."""
    elements: dict[BaseTag, RawDataElement] = {}
    while offset + 8 <= end:
        tag, vr, length, value = _header(data, offset, implicit)
        if stop_at_pixels and tag == _PIXEL_DATA:
            break
        if tag == stop_tag:
            return elements, value
        if length == _UNDEFINED:  # a sequence; explicit VR UN of undefined length holds implicit VR items
            offset = _skip_undefined(data, value, implicit or vr == "UN", _SEQUENCE_END)
            content = data[value:offset - 8]  # the items, without the sequence delimiter
        else:
            offset = value + length
            content = data[value:offset]
        key = BaseTag(tag)
        elements[key] = RawDataElement(key, vr, len(content) if length == _UNDEFINED else length, content, value,
                                       implicit, True)
    if stop_tag is not None:
        raise _Unsupported  # the delimiter is missing
    return elements, offset


def read_header(data: bytes) -> tuple[Dataset, int] | None:
    """(dataset of the elements before the pixel data with its file meta, offset where the pixel
    data element starts or where reading stopped), or None to use pydicom's reader instead."""
    try:
        tag, vr, length, value = _header(data, _META_START, False)
        if tag != 0x00020000 or vr != "UL" or length != 4:
            return None
        meta_end = value + 4 + _U32.unpack_from(data, value)[0]
        meta, _ = _elements(data, _META_START, meta_end, False, stop_at_pixels=False)
        syntax_element = meta.get(BaseTag(_TRANSFER_SYNTAX))
        if syntax_element is None:
            return None
        syntax = syntax_element.value.decode("ascii", "replace").strip(" \x00")
        if syntax in _PYDICOM_SYNTAXES:
            return None
        implicit = syntax == ImplicitVRLittleEndian
        elements, stop = _elements(data, meta_end, len(data), implicit, stop_at_pixels=True)
    except (_Unsupported, struct.error):
        return None
    ds = Dataset(elements)
    ds.file_meta = FileMetaDataset(meta)
    charset = elements.get(BaseTag(_CHARSET))
    names = [v.strip() for v in charset.value.decode("ascii", "replace").split("\\")] if charset and charset.value else None
    ds.set_original_encoding(implicit, True, convert_encodings(names))
    return ds, stop


def read_items(value: bytes, *, implicit: bool) -> list[dict[int, RawDataElement]] | None:
    """The items of a little-endian sequence value (as ``read_header`` stores it: items without the
    sequence delimiter), each as {tag: raw element}; None when the value is not a plain list of
    items, and the caller falls back to pydicom's reader."""
    items: list[dict[int, RawDataElement]] = []
    offset = 0
    try:
        while offset + 8 <= len(value):
            tag, _, length, start = _header(value, offset, implicit)
            if tag == _SEQUENCE_END:
                break
            if tag != _ITEM:
                return None
            if length == _UNDEFINED:
                elements, offset = _elements(value, start, len(value), implicit, stop_at_pixels=False, stop_tag=_ITEM_END)
            else:
                offset = start + length
                if offset > len(value):
                    return None
                elements, _ = _elements(value, start, offset, implicit, stop_at_pixels=False)
            if any(len(e.value) != e.length for e in elements.values()):
                return None  # truncated inside the item
            items.append({int(t): e for t, e in elements.items()})
    except (_Unsupported, struct.error):
        return None
    return items
