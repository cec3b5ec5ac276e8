"""Text that pixel data can carry, removed without re-encoding the image.

- Compressed frames: JPEG comment (COM) and application (APPn) segments, and JPEG 2000 comment
  (COM, 0xFF64) marker segments, are cut out of the codestream; bytes after the end-of-image
  marker are dropped; a JPEG 2000 frame wrapped in a JP2 file keeps only its codestream. The
  entropy-coded data is copied byte for byte, so the image decodes to the same pixels. Frames
  that changed are encapsulated again, one fragment per frame with a Basic Offset Table.
- Native pixel data: the bits outside the stored range (above High Bit, or below it when
  Bits Stored is smaller than High Bit + 1) can hold overlays (retired Overlay Bit Position);
  they are cleared, and for signed pixels set to the sign extension of the stored value, so
  every pixel value is unchanged.

A frame whose structure cannot be followed raises ``PixelTextError``: the file is rejected
rather than copied with text that could not be looked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from pydicom.encaps import encapsulate, generate_fragmented_frames

_JPEG_SYNTAXES = frozenset({
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
})
_JPEG_LS_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"})
_J2K_SYNTAXES = frozenset({
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
})
#: A marker inside entropy-coded data: 0xFF (and fill bytes) followed by neither a stuffed zero
#: nor a restart marker. JPEG-LS stuffs a zero bit instead, so there a marker byte is >= 0x80.
_JPEG_MARKER = re.compile(rb"\xff+(?=[^\x00\xd0-\xd7\xff])")
_JPEG_LS_MARKER = re.compile(rb"\xff+(?=[\x80-\xcf\xd8-\xfe])")
_APP_KEPT = ((0xEE, b"Adobe"), (0xE8, b"mrfx"))  # colour transform flags, no free text
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_J2K_SOC, _J2K_SOT, _J2K_SOD, _J2K_EOC, _J2K_COM, _J2K_TLM = 0xFF4F, 0xFF90, 0xFF93, 0xFFD9, 0xFF64, 0xFF55
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


class PixelTextError(ValueError):
    """Compressed pixel data whose segments cannot be followed, so its text cannot be removed."""


@dataclass(frozen=True)
class NativeLayout:
    """How native pixel values are stored (from the image pixel module)."""

    bits_allocated: int
    bits_stored: int
    high_bit: int
    signed: bool
    little: bool


def compute_clean_native(value: bytes | memoryview, layout: NativeLayout) -> bytes | None:
    """Native pixel data with every bit outside the stored range cleared (signed: sign-extended);
    None when no such bit is set (the data is kept as it is)."""
    bits, stored, high = layout.bits_allocated, layout.bits_stored, layout.high_bit
    lowest = high - stored + 1
    if bits not in (8, 16, 32) or (stored == bits and high == bits - 1):
        return None
    if not (0 < stored <= bits and 0 <= lowest and high < bits):
        raise PixelTextError("Bits Stored and High Bit do not fit in Bits Allocated")
    size = bits // 8
    usable = len(value) - len(value) % size
    order = "<" if layout.little else ">"
    pixels = np.frombuffer(value, dtype=f"{order}u{size}", count=usable // size)
    if lowest == 0 and not layout.signed and int(pixels.max(initial=0)) < (1 << stored):
        return None
    if lowest == 0 and layout.signed:
        signed = pixels.view(f"{order}i{size}")
        if signed.size == 0 or (int(signed.min()) >= -(1 << (stored - 1)) and int(signed.max()) < 1 << (stored - 1)):
            return None
    wide = pixels.astype(np.int64)
    field = (wide >> lowest) & ((1 << stored) - 1)
    if layout.signed:  # the stored two's complement value, written back sign-extended
        field = field - ((field >> (stored - 1)) & 1) * (1 << stored)
    cleaned = ((field << lowest) & ((1 << bits) - 1)).astype(pixels.dtype)
    if np.array_equal(cleaned, pixels):
        return None
    return cleaned.tobytes() + bytes(value[usable:])


def compute_clean_encapsulated(value: bytes | memoryview, transfer_syntax: str, *, number_of_frames: int) -> bytes | None:
    """Encapsulated pixel data (the items after the element header, sequence delimiter included)
    with comment and application segments removed from every frame; None when no frame changed."""
    strip = _strip_jpeg if transfer_syntax in _JPEG_SYNTAXES or transfer_syntax in _JPEG_LS_SYNTAXES else (
        _strip_j2k if transfer_syntax in _J2K_SYNTAXES else None)
    if strip is None:
        return None
    buffer = bytes(value)
    try:
        frames = [b"".join(f) for f in generate_fragmented_frames(buffer, number_of_frames=number_of_frames)]
    except (ValueError, KeyError, IndexError) as exc:
        raise PixelTextError(f"encapsulated frames cannot be split ({type(exc).__name__})") from None
    cleaned = [strip(frame, ls=transfer_syntax in _JPEG_LS_SYNTAXES) for frame in frames]
    if all(c is None for c in cleaned):
        return None
    return encapsulate([c if c is not None else f for c, f in zip(cleaned, frames)], has_bot=True) + _SEQUENCE_DELIMITER


def _strip_jpeg(frame: bytes, *, ls: bool) -> bytes | None:
    """A JPEG or JPEG-LS frame without COM and APPn segments (except colour-transform ones) and
    without bytes after EOI; None when nothing was removed."""
    if frame[:2] != b"\xff\xd8":
        raise PixelTextError("a JPEG frame does not start with SOI")
    marker_pattern = _JPEG_LS_MARKER if ls else _JPEG_MARKER
    parts, pos, changed, end = [frame[:2]], 2, False, len(frame)
    while pos + 2 <= end:
        if frame[pos] != 0xFF:
            raise PixelTextError("JPEG marker expected")
        marker = frame[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # EOI: anything after it (but a padding zero) is dropped
            parts.append(frame[pos:pos + 2])
            changed |= frame[pos + 2:].strip(b"\x00") != b""
            return b"".join(parts) if changed else None
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            parts.append(frame[pos:pos + 2])
            pos += 2
            continue
        if pos + 4 > end:
            raise PixelTextError("JPEG segment cut short")
        length = int.from_bytes(frame[pos + 2:pos + 4], "big")
        segment = frame[pos:pos + 2 + length]
        if length < 2 or len(segment) != 2 + length:
            raise PixelTextError("JPEG segment length runs past the frame")
        if marker == 0xFE or (0xE0 <= marker <= 0xEF and not any(
                marker == kept and segment[4:4 + len(tag)] == tag for kept, tag in _APP_KEPT)):
            changed = True
        else:
            parts.append(segment)
        pos += 2 + length
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next marker
            found = marker_pattern.search(frame, pos)
            if found is None:
                raise PixelTextError("JPEG scan without an end marker")
            parts.append(frame[pos:found.end() - 1])
            pos = found.end() - 1
    raise PixelTextError("JPEG frame without EOI")


def _strip_j2k(frame: bytes, *, ls: bool = False) -> bytes | None:
    """A JPEG 2000 codestream without COM marker segments (main and tile-part headers, tile-part
    lengths adjusted) and without bytes after EOC; a JP2 file is reduced to its codestream."""
    changed = False
    if frame.startswith(_JP2_SIGNATURE):
        frame, changed = _jp2_codestream(frame), True
    if int.from_bytes(frame[:2], "big") != _J2K_SOC:
        raise PixelTextError("a JPEG 2000 frame does not start with SOC")
    parts, pos, end, has_tlm = [frame[:2]], 2, len(frame), False
    while pos + 4 <= end:
        marker = int.from_bytes(frame[pos:pos + 2], "big")
        if marker == _J2K_SOT:
            break
        length = int.from_bytes(frame[pos + 2:pos + 4], "big")
        has_tlm |= marker == _J2K_TLM
        if marker == _J2K_COM:
            changed = True
        else:
            parts.append(frame[pos:pos + 2 + length])
        pos += 2 + length
    while pos + 2 <= end:
        marker = int.from_bytes(frame[pos:pos + 2], "big")
        if marker == _J2K_EOC:
            parts.append(frame[pos:pos + 2])
            changed |= frame[pos + 2:].strip(b"\x00") != b""
            return b"".join(parts) if changed else None
        if marker != _J2K_SOT or pos + 12 > end:
            raise PixelTextError("JPEG 2000 tile-part expected")
        psot = int.from_bytes(frame[pos + 6:pos + 10], "big")
        tile_end = end - 2 if psot == 0 else pos + psot
        tile, removed = _strip_j2k_tile_part(frame[pos:tile_end])
        if removed and has_tlm:
            raise PixelTextError("JPEG 2000 comment inside a tile-part whose length a TLM marker records")
        changed |= removed
        parts.append(tile)
        pos = tile_end
    raise PixelTextError("JPEG 2000 codestream without EOC")


def _strip_j2k_tile_part(tile: bytes) -> tuple[bytes, bool]:
    """One tile-part (from SOT) without COM segments in its header; Psot adjusted."""
    parts, pos, removed = [tile[:12]], 12, False
    while pos + 2 <= len(tile):
        marker = int.from_bytes(tile[pos:pos + 2], "big")
        if marker == _J2K_SOD:
            parts.append(tile[pos:])
            break
        length = int.from_bytes(tile[pos + 2:pos + 4], "big")
        if marker == _J2K_COM:
            removed = True
        else:
            parts.append(tile[pos:pos + 2 + length])
        pos += 2 + length
    else:
        raise PixelTextError("JPEG 2000 tile-part without SOD")
    if not removed:
        return tile, False
    body = b"".join(parts)
    psot = int.from_bytes(tile[6:10], "big")
    if psot:
        body = body[:6] + len(body).to_bytes(4, "big") + body[10:]
    return body, True


def _jp2_codestream(data: bytes) -> bytes:
    """The contiguous codestream box ('jp2c') of a JP2 file."""
    pos = 0
    while pos + 8 <= len(data):
        length, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        header = 8
        if length == 1:
            length, header = int.from_bytes(data[pos + 8:pos + 16], "big"), 16
        elif length == 0:
            length = len(data) - pos
        if kind == b"jp2c":
            return data[pos + header:pos + length]
        if length < header:
            break
        pos += length
    raise PixelTextError("JP2 file without a codestream box")
