"""A fast header reader for the common case: a little-endian Part 10 file (explicit or implicit
VR, which covers every compressed transfer syntax too), read up to the pixel data.

It only splits the byte stream into top-level elements (tag, VR, length, value bytes), as pydicom's
raw elements keyed by plain int tags (pydicom's own tags compare in Python), several times faster
than ``pydicom.dcmread`` because it converts nothing and builds no dataset. Anything unusual (big
endian, no group length in the file meta, a VR it does not know, a malformed length, a file cut
short inside its header) returns None, and the caller falls back to pydicom.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache

from pydicom.charset import convert_encodings
from pydicom.dataelem import RawDataElement
from pydicom.tag import BaseTag
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ImplicitVRLittleEndian
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, STANDARD_VR

_LONG_VRS = frozenset(vr.encode("ascii") for vr in EXPLICIT_VR_LENGTH_32)
_VR_NAMES = {vr.encode("ascii"): vr for vr in STANDARD_VR}  # encoded VR -> its name
#: (group, element, VR, 16-bit length) of an explicit VR element; (group, element, length) of an implicit one
_EXPLICIT_HEADER, _IMPLICIT_HEADER, _U32 = struct.Struct("<HH2sH"), struct.Struct("<HHI"), struct.Struct("<I")
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
#: pydicom's ``stop_before_pixels`` stops at any of these: Float, Double Float and Pixel Data.
_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
_CHARSET, _TRANSFER_SYNTAX = 0x00080005, 0x00020010
_META_START = 132
_PYDICOM_SYNTAXES = frozenset({ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian})


class _Unsupported(Exception):
    """The fast reader does not handle this file; pydicom's reader will."""


def _header(data: bytes, offset: int, implicit: bool) -> tuple[int, str | None, int, int]:
    """(tag, VR, length, value offset) of the element at ``offset``; struct.error past the end."""
    if implicit:
        group, element, length = _IMPLICIT_HEADER.unpack_from(data, offset)
        return (group << 16) | element, None, length, offset + 8
    group, element, vr, length = _EXPLICIT_HEADER.unpack_from(data, offset)
    if group == 0xFFFE:  # item and delimiter tags carry no VR, whatever the transfer syntax
        return (group << 16) | element, None, _U32.unpack_from(data, offset + 4)[0], offset + 8
    name = _VR_NAMES.get(vr)
    if name is None:
        raise _Unsupported
    if vr in _LONG_VRS:
        return (group << 16) | element, name, _U32.unpack_from(data, offset + 8)[0], offset + 12
    return (group << 16) | element, name, length, offset + 8


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
    which is consumed); the offset where reading stopped. An element that runs past ``end`` is
    _Unsupported, so a file read here is never truncated inside its header."""
    elements: dict[int, RawDataElement] = {}
    while offset + 8 <= end:
        tag, vr, length, value = _header(data, offset, implicit)
        if stop_at_pixels and tag in _PIXEL_TAGS:
            break
        if tag == stop_tag:
            return elements, value
        if length == _UNDEFINED:  # a sequence; explicit VR UN of undefined length holds implicit VR items
            offset = _skip_undefined(data, value, implicit or vr == "UN", _SEQUENCE_END)
            content = data[value:offset - 8]  # the items, without the sequence delimiter
            length = len(content)
        else:
            offset = value + length
            content = data[value:offset]
        if offset > end:
            raise _Unsupported  # cut short; pydicom's reader tells where
        elements[tag] = RawDataElement(BaseTag(tag), vr, length, content, value, implicit, True)
    if stop_tag is not None:
        raise _Unsupported  # the delimiter is missing
    return elements, offset


@dataclass(frozen=True)
class Header:
    """What the fast reader read: the elements before the pixel data by tag, how they are
    encoded, and the offset where the pixel data element starts (or where reading stopped)."""

    elements: dict[int, RawDataElement]
    transfer_syntax: str
    implicit: bool
    charset: list[str]  # Python codecs of the Specific Character Set
    stop: int


def read_header(data: bytes) -> Header | None:
    """The header of a little-endian Part 10 file, or None to use pydicom's reader instead."""
    try:
        tag, vr, length, value = _header(data, _META_START, False)
        if tag != 0x00020000 or vr != "UL" or length != 4:
            return None
        meta_end = value + 4 + _U32.unpack_from(data, value)[0]
        if meta_end > len(data):
            return None
        meta, _ = _elements(data, _META_START, meta_end, False, stop_at_pixels=False)
        syntax_element = meta.get(_TRANSFER_SYNTAX)
        if syntax_element is None:
            return None
        syntax = syntax_element.value.decode("ascii", "replace").strip(" \x00")
        if syntax in _PYDICOM_SYNTAXES:
            return None
        implicit = syntax == ImplicitVRLittleEndian
        elements, stop = _elements(data, meta_end, len(data), implicit, stop_at_pixels=True)
    except (_Unsupported, struct.error):
        return None
    charset = elements.get(_CHARSET)
    return Header(elements, syntax, implicit, list(_codecs(charset.value if charset else b"")), stop)


@lru_cache(maxsize=64)
def _codecs(value: bytes) -> tuple[str, ...]:
    """Python codecs of a Specific Character Set value (a series repeats the same value)."""
    names = [v.strip() for v in value.decode("ascii", "replace").split("\\")] if value else None
    return tuple(convert_encodings(names))


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
            items.append(elements)
    except (_Unsupported, struct.error):
        return None
    return items
