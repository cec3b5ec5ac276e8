"""Acceptance checks for one landing DICOM file. Each returns None (pass) or a PHI-free reason that
tells the data manager what is wrong and what to do; none echoes a value from the file."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import get_decoder
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from trialake.dicom.elements import RawView, tag_of
from trialake.dicom.reader import read_header

_PREAMBLE, _MAGIC = 128, b"DICM"
_UNDEFINED = 0xFFFFFFFF
_ROWS, _COLUMNS, _BITS_ALLOCATED, _BITS_STORED = map(tag_of, ("Rows", "Columns", "BitsAllocated", "BitsStored"))
_SAMPLES, _NUMBER_OF_FRAMES, _PHOTOMETRIC, _PLANAR, _PIXEL_REPRESENTATION = map(tag_of, (
    "SamplesPerPixel", "NumberOfFrames", "PhotometricInterpretation", "PlanarConfiguration", "PixelRepresentation"))
_SOP_CLASS, _IMAGE_TYPE, _BURNED_IN, _TEMPORAL_MODIFIED = map(tag_of, (
    "SOPClassUID", "ImageType", "BurnedInAnnotation", "LongitudinalTemporalInformationModified"))

#: SOP classes accepted, by family (PS3.4 B.5).
SOP_CLASS_FAMILIES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.2": "CT", "1.2.840.10008.5.1.4.1.1.2.1": "CT",
    "1.2.840.10008.5.1.4.1.1.2.2": "CT",
    "1.2.840.10008.5.1.4.1.1.4": "MR", "1.2.840.10008.5.1.4.1.1.4.1": "MR",
    "1.2.840.10008.5.1.4.1.1.4.3": "MR", "1.2.840.10008.5.1.4.1.1.4.4": "MR",
    "1.2.840.10008.5.1.4.1.1.128": "PET", "1.2.840.10008.5.1.4.1.1.128.1": "PET",
    "1.2.840.10008.5.1.4.1.1.130": "PET",
    "1.2.840.10008.5.1.4.1.1.7": "SC", "1.2.840.10008.5.1.4.1.1.7.1": "SC",
    "1.2.840.10008.5.1.4.1.1.7.2": "SC", "1.2.840.10008.5.1.4.1.1.7.3": "SC",
    "1.2.840.10008.5.1.4.1.1.7.4": "SC",
}
#: Transfer syntaxes ingested: native, and the image compressions whose frames the ingest can
#: search for embedded text (see ``pixels.py``) or that carry none (RLE).
SUPPORTED_TRANSFER_SYNTAXES = frozenset({
    "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203",
})
_SCREENSHOT_TYPES = frozenset({"SCREEN SHOT", "SCREENSHOT", "SCREEN CAPTURE"})
_RESEND = "ask the site to re-send the file"


class Rejected(Exception):
    """A file failed a check; ``reason`` is PHI-free and actionable. ``retry_on_key_change``: the
    file may pass once the subject key changes (its patient was unknown or ambiguous)."""

    def __init__(self, stage: str, reason: str, *, retry_on_key_change: bool = False) -> None:
        super().__init__(reason)
        self.stage, self.reason, self.retry_on_key_change = stage, reason, retry_on_key_change


def check_part10(data: bytes) -> str | None:
    """A Part 10 file: 128-byte preamble, then ``DICM``. Data without that header is rejected,
    not guessed at: its transfer syntax would have to be inferred, and a wrong guess mis-reads
    every attribute, including the ones that must be removed."""
    if not data:
        return "empty file (0 bytes): the transfer was interrupted or the export failed; " + _RESEND
    if data[_PREAMBLE:_PREAMBLE + 4] == _MAGIC:
        return None
    first_group = int.from_bytes(data[:2], "little")
    if data[:4] == _MAGIC or first_group in (0x0002, 0x0008):
        return ("DICOM data without the Part 10 file header (no 128-byte preamble and 'DICM' "
                "marker): re-export it from the scanner or PACS as a DICOM Part 10 file")
    if len(data) < _PREAMBLE + 4:
        return f"file too short to be DICOM ({len(data)} bytes): truncated or not DICOM; " + _RESEND
    return ("not a DICOM file (no 'DICM' marker at byte 128): remove it from the DICOM landing "
            "area or replace it with the DICOM export")


@dataclass(frozen=True)
class Part10File:
    """A parsed file: the header (every attribute before the pixel data) and where the encoded
    Pixel Data element lies in the file bytes, so it can be verified and copied without being
    converted or decoded. Attributes after the pixel data (digital signatures, trailing padding)
    are not read and never copied."""

    view: RawView  # the header's elements and values
    transfer_syntax: str
    pixel_start: int  # offset of the (7FE0,0010) tag; equal to pixel_end when there is no pixel data
    value_start: int
    pixel_end: int
    encapsulated: bool

    @property
    def has_pixels(self) -> bool:
        return self.pixel_end > self.pixel_start


def parse_part10(data: bytes) -> Part10File:
    """Parse the header of a Part 10 file (fast reader, else pydicom) and locate its pixel data;
    raise Rejected when the file is corrupt, truncated or uses the deflated transfer syntax."""
    fast = read_header(data)
    if fast is not None:
        view = RawView.of_elements(fast.elements, implicit=fast.implicit, little=True, charset=fast.charset)
        syntax, stop = fast.transfer_syntax, fast.stop
    else:
        stream = io.BytesIO(data)
        try:
            ds = pydicom.dcmread(stream, stop_before_pixels=True)
        except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, OSError, NotImplementedError) as exc:
            raise Rejected("ingest_dicom", f"cannot be parsed as DICOM ({type(exc).__name__}): corrupt or "
                           f"truncated file; {_RESEND}") from None
        view, syntax, stop = RawView(ds), _transfer_syntax(ds.file_meta), stream.tell()
        _fail_if_truncated(view)
    if syntax is None:
        raise Rejected("ingest_dicom", "file meta information has no Transfer Syntax UID (0002,0010): "
                       "re-export the file as DICOM Part 10")
    if syntax == DeflatedExplicitVRLittleEndian:
        raise Rejected("ingest_dicom", "deflated transfer syntax is not supported: re-export the images "
                       "uncompressed or with an image compression (RLE, JPEG lossless, JPEG-LS, JPEG 2000)")
    if syntax not in SUPPORTED_TRANSFER_SYNTAXES:
        name = UID(syntax).name if UID(syntax).type == "Transfer Syntax" else "an unregistered transfer syntax"
        raise Rejected("ingest_dicom", f"transfer syntax {name} is not supported: re-export the images "
                       "uncompressed or with an image compression (RLE, JPEG lossless, JPEG-LS, JPEG 2000)")
    return _locate_pixels(view, syntax, data, stop)


def _fail_if_truncated(view: RawView) -> None:
    """pydicom reads a file that ends inside an attribute without complaint (the fast reader
    hands such files to it)."""
    for tag, raw in view.elements.items():
        if raw.is_raw and raw.length not in (0, _UNDEFINED) and len(raw.value or b"") != raw.length:
            raise Rejected("ingest_dicom", f"file is truncated (ends inside attribute "
                           f"({tag >> 16:04X},{tag & 0xFFFF:04X})); {_RESEND}")


def _transfer_syntax(meta: Dataset) -> str | None:
    """The Transfer Syntax UID of the file meta, read without converting the element."""
    elem = meta.get_item(0x00020010)
    if elem is None:
        return None
    value = elem.value
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value or "")
    return text.strip(" \x00") or None


def _locate_pixels(view: RawView, syntax: str, data: bytes, start: int) -> Part10File:
    order = "little" if view.little else "big"
    if len(data) - start < 8 or _tag_at(data, start, order) != 0x7FE00010:
        return Part10File(view, syntax, start, start, start, False)
    header = 8 if view.implicit else 12
    length = int.from_bytes(data[start + header - 4:start + header], order)
    value_start = start + header
    if length != _UNDEFINED:
        if value_start + length > len(data):
            raise Rejected("ingest_dicom", f"file is truncated (pixel data ends {value_start + length - len(data)} "
                           f"bytes after the end of the file); {_RESEND}")
        return Part10File(view, syntax, start, value_start, value_start + length, False)
    offset = value_start
    while offset + 8 <= len(data):
        tag, item_length = _tag_at(data, offset, "little"), int.from_bytes(data[offset + 4:offset + 8], "little")
        if tag == 0xFFFEE0DD:
            return Part10File(view, syntax, start, value_start, offset + 8, True)
        if tag != 0xFFFEE000 or item_length == _UNDEFINED:
            break
        offset += 8 + item_length
    raise Rejected("ingest_dicom", f"encapsulated pixel data is truncated or malformed (no valid item "
                   f"structure up to the sequence delimiter); {_RESEND}")


def _tag_at(data: bytes, offset: int, order: str) -> int:
    group = int.from_bytes(data[offset:offset + 2], order)
    return (group << 16) | int.from_bytes(data[offset + 2:offset + 4], order)


def check_sop_class(view: RawView) -> str | None:
    """CT, MR, PET and secondary-capture image storage classes only."""
    sop_class = view.text(_SOP_CLASS) or ""
    if sop_class in SOP_CLASS_FAMILIES:
        return None
    if not sop_class:
        return "no SOP Class UID (0008,0016), so the object type is unknown (file truncated or not an image); " + _RESEND
    name = UID(sop_class).name if UID(sop_class).type else "an unregistered or private SOP class"
    return (f"unsupported object type {name}: only CT, MR, PET and secondary-capture images are "
            "ingested; remove it from the landing area if it is not needed")


def check_dates_not_modified(view: RawView) -> str | None:
    """Dates already shifted by another tool cannot be aligned with the clinical data."""
    if (view.text(_TEMPORAL_MODIFIED) or "").upper() == "MODIFIED":
        return ("dates were already modified by another de-identification tool (0028,0303 MODIFIED), so "
                "they cannot be aligned with the clinical data: send the original export")
    return None


def check_burned_in(view: RawView) -> str | None:
    """Burned-in annotation: YES is rejected; secondary captures and screenshots need proof of NO."""
    flag = (view.text(_BURNED_IN) or "").upper()
    if flag == "YES":
        return ("image has burned-in annotation (0028,0301 YES), which may show patient identity; it "
                "cannot be cleaned automatically: remove it or send a version without annotation")
    image_type = {v.upper() for v in view.values(_IMAGE_TYPE)}
    screenshot = SOP_CLASS_FAMILIES.get(view.text(_SOP_CLASS) or "") == "SC" or bool(image_type & _SCREENSHOT_TYPES)
    if screenshot and flag != "NO":
        return ("secondary capture or screenshot without BurnedInAnnotation (0028,0301) NO: it may show "
                "patient identity in the pixels; remove it, or have the site confirm it is clean and "
                "set BurnedInAnnotation to NO")
    return None


def check_pixel_data(part10: Part10File, data: bytes, *, decode: bool, high_bits: bool = True) -> str | None:
    """Pixel data present and complete; compressed pixel data decodes with an installed plugin
    and (``high_bits``) has no bit set outside the stored range, which could hold an overlay
    that only re-encoding could remove. Native pixel data is checked by length, which needs no
    decoding (its unused bits are cleared on the copy)."""
    view = part10.view
    if not part10.has_pixels:
        return "no Pixel Data (7FE0,0010): file truncated or not an image; " + _RESEND
    rows, columns, bits = (view.integer(t) for t in (_ROWS, _COLUMNS, _BITS_ALLOCATED))
    if not (rows and columns and bits):
        return "Rows, Columns or Bits Allocated missing or zero: the image cannot be read; " + _RESEND
    if not part10.encapsulated:
        frames = view.integer(_NUMBER_OF_FRAMES) or 1
        expected = (rows * columns * (view.integer(_SAMPLES) or 1) * frames * bits + 7) // 8
        actual = part10.pixel_end - part10.value_start
        if actual not in (expected, expected + 1):
            return (f"pixel data has {actual} bytes where the image size implies {expected}: "
                    f"truncated or corrupt file; {_RESEND}")
        return None
    if not decode:
        return None
    syntax = UID(part10.transfer_syntax)
    options = {
        "rows": rows, "columns": columns, "bits_allocated": bits, "pixel_keyword": "PixelData",
        "bits_stored": view.integer(_BITS_STORED), "pixel_representation": view.integer(_PIXEL_REPRESENTATION),
        "samples_per_pixel": view.integer(_SAMPLES) or 1, "number_of_frames": view.integer(_NUMBER_OF_FRAMES) or 1,
        "photometric_interpretation": view.text(_PHOTOMETRIC), "planar_configuration": view.integer(_PLANAR) or 0,
    }
    stored_range = _stored_range(view) if high_bits else None
    outside = False
    try:  # decoding every frame is the check; the header dataset is not touched, frames are not kept
        for frame, _meta in get_decoder(syntax).iter_array(
                data[part10.value_start:part10.pixel_end], raw=True, **options):
            if stored_range is not None and frame.size:
                outside |= int(frame.min()) < stored_range[0] or int(frame.max()) > stored_range[1]
    except Exception as exc:  # any plugin failure means the pixels are unusable
        return (f"compressed pixel data ({syntax.name}) cannot be decoded ({type(exc).__name__}): "
                f"corrupt data or a compression without an installed decoder; ask the site to re-send "
                f"it uncompressed or losslessly compressed")
    if outside:
        return (f"compressed pixel data ({syntax.name}) has bits set outside Bits Stored/High Bit, where an "
                "overlay or annotation may be drawn; it cannot be removed without re-encoding the image: ask "
                "the site to re-send the images uncompressed")
    return None


def _stored_range(view: RawView) -> tuple[int, int] | None:
    """(lowest, highest) pixel value that Bits Stored allows, when it is narrower than Bits
    Allocated; None otherwise."""
    allocated, stored = view.integer(_BITS_ALLOCATED), view.integer(_BITS_STORED)
    if not allocated or not stored or stored >= allocated:
        return None
    if view.integer(_PIXEL_REPRESENTATION):
        return -(1 << (stored - 1)), (1 << (stored - 1)) - 1
    return 0, (1 << stored) - 1
