"""Fast, read-only access to attribute values by tag.

pydicom converts a raw element on first access, which costs tens of microseconds per element and
modifies the dataset. ``RawView`` decodes values straight from the raw bytes instead: ASCII value
representations (UI, CS, DS, IS, DA, TM, DT, AS) are split directly, binary integers are unpacked,
and text is decoded directly for single-byte or UTF-8 character sets (pydicom's converter is used,
without storing its result, for the others). Malformed numbers read as None instead of raising.
"""

from __future__ import annotations

from collections.abc import MutableSequence

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.multival import MultiValue
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

_ASCII_VRS = frozenset({"UI", "CS", "DS", "IS", "DA", "TM", "DT", "AS"})
_TEXT_VRS = frozenset({"AE", "LO", "SH", "PN", "ST", "LT", "UT", "UC", "UR"})
_BINARY_INTS = {"US": (2, False), "SS": (2, True), "UL": (4, False), "SL": (4, True)}
#: pydicom's Python encodings (``Dataset.original_character_set``) that decode without code
#: extensions: default repertoire, ISO_IR 100 and ISO_IR 192.
_DIRECT_CODECS = {"iso8859": "latin-1", "latin_1": "latin-1", "UTF8": "utf-8"}

Charset = str | MutableSequence[str]


def tag_of(keyword: str) -> int:
    """The tag of a DICOM keyword, as a plain int; KeyError for an unknown keyword."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(f"not a DICOM keyword: {keyword}")
    return int(tag)


def dictionary_vr(tag: int) -> str:
    """The data dictionary's VR of a tag ("UN" for a tag the dictionary does not know)."""
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


class RawView:
    """Values of one dataset (or sequence item) by tag. ``charset`` defaults to the dataset's own;
    pass the top-level one for sequence items."""

    def __init__(self, ds: Dataset, *, charset: Charset | None = None) -> None:
        # plain int keys: set and dict lookups with pydicom's BaseTag keys go through a Python __eq__
        implicit, little = ds.original_encoding
        implicit, little = bool(implicit), little is not False
        charset = charset if charset is not None else ds.original_character_set
        elements = {int(tag): elem if elem.is_raw or elem.VR == "SQ" else _raw_again(elem, implicit, little, charset)
                    for tag, elem in ds.items()}
        self._set(ds, elements, implicit=implicit, little=little, charset=charset)

    @classmethod
    def of_elements(cls, elements: dict[int, RawDataElement], *, implicit: bool, little: bool,
                    charset: Charset) -> RawView:
        """A view of raw elements with no pydicom dataset behind them: a sequence item read by
        ``reader.read_items``, or a de-identified copy."""
        view = cls.__new__(cls)
        view._set(None, elements, implicit=implicit, little=little, charset=charset)
        return view

    def _set(self, ds: Dataset | None, elements: dict[int, RawDataElement | DataElement], *, implicit: bool,
             little: bool, charset: Charset) -> None:
        self.ds = ds
        self.elements = elements
        self.implicit = implicit
        self.little = little
        self.charset: Charset = charset
        codecs = [charset] if isinstance(charset, str) else list(charset)
        self._codec = _DIRECT_CODECS.get(codecs[0]) if len(codecs) == 1 else None

    def vr(self, tag: int) -> str:
        """VR of a present element; implicit-VR files carry none, so the dictionary's is used."""
        return self.elements[tag].VR or dictionary_vr(tag)

    def values(self, tag: int, *, vr: str | None = None) -> list[str]:
        """All values as stripped strings ([] when absent or empty). ``vr``: decode the value as
        this VR (the data dictionary's) rather than the one written in the file; a value of VR
        UN is decoded as the dictionary's VR."""
        elem = self.elements.get(tag)
        if elem is None:
            return []
        if elem.is_raw:
            vr, raw = vr or self.vr(tag), elem.value or b""
            if vr == "UN":
                vr = dictionary_vr(tag)
            if vr != elem.VR and vr not in _ASCII_VRS and not (vr in _TEXT_VRS and self._codec):
                elem = RawDataElement(elem.tag, vr, elem.length, elem.value, elem.value_tell, elem.is_implicit_VR,
                                      elem.is_little_endian)
            if vr in _ASCII_VRS or (vr in _TEXT_VRS and self._codec):
                text = raw.decode("ascii" if vr in _ASCII_VRS else self._codec, "replace")
                return [v.strip(" \x00") for v in text.split("\\")] if raw else []
            elem = convert_raw_data_element(elem, encoding=self.charset, ds=self.ds)
        value = elem.value
        if value is None or value == "":
            return []
        if isinstance(value, (MultiValue, list, tuple)):
            return [str(v).strip() for v in value]
        return [str(value).strip()]

    def text(self, tag: int) -> str | None:
        """Values joined with a backslash, or None when absent or empty."""
        joined = "\\".join(self.values(tag))
        return joined or None

    def numbers(self, tag: int) -> list[float | None]:
        """All values as floats (DS, IS or binary integers); None for a malformed value."""
        elem = self.elements.get(tag)
        if elem is None:
            return []
        vr = self.vr(tag)
        if elem.is_raw and vr in _BINARY_INTS:
            size, signed = _BINARY_INTS[vr]
            raw, order = elem.value or b"", "little" if self.little else "big"
            return [float(int.from_bytes(raw[i:i + size], order, signed=signed))
                    for i in range(0, len(raw) - size + 1, size)]
        return [_float(v) for v in self.values(tag)]

    def number(self, tag: int, index: int = 0) -> float | None:
        """The index-th value as a float, or None."""
        numbers = self.numbers(tag)
        return numbers[index] if len(numbers) > index else None

    def integer(self, tag: int) -> int | None:
        """The first value as an int, or None."""
        value = self.number(tag)
        return int(value) if value is not None else None


def _raw_again(elem: DataElement, implicit: bool, little: bool, charset: Charset) -> RawDataElement:
    """An element pydicom already converted (it reads Specific Character Set eagerly) as the raw
    element it was, so that every element of a view is copied the same way."""
    buffer = DicomBytesIO()
    buffer.is_implicit_VR, buffer.is_little_endian = implicit, little
    write_data_element(buffer, elem, [charset] if isinstance(charset, str) else list(charset))
    encoded = buffer.getvalue()
    header = 8 if implicit or elem.VR not in EXPLICIT_VR_LENGTH_32 else 12
    value = encoded[header:]
    return RawDataElement(elem.tag, None if implicit else elem.VR, len(value), value, 0, implicit, little)


def _float(text: str) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None
