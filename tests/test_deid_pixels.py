"""Pixel-borne text: comment and application segments of compressed frames are removed without
re-encoding (the image decodes to the same pixels), bits outside the stored range of native
pixels are cleared (every pixel value unchanged), and compressed pixels with such bits are refused."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import polars as pl
import pydicom
import pydicom.data
import pytest
from dicom_factory import encode, synthesize_ct_series
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.pixels import get_encoder
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit

from trialake.dicom import DeidParams, SubjectKey, ingest_dicom_batch
from trialake.dicom.pixels import PixelTextError, compute_clean_encapsulated
from trialake.dicom.profile import SAFEGUARDS

SECRET = b"trialake-test-secret-0123456789ab"
KEY = SubjectKey.from_frame(pl.DataFrame({"SITEID": ["01"], "PATIENT_ID": ["MRN0042"], "USUBJID": ["T-01-001"]}))
CANARIES = (b"Quixwell", b"Zebulon", b"MRN0042")


def _ingest(data: bytes, params: DeidParams = DeidParams()):
    result = ingest_dicom_batch([("dicom/x.dcm", data)], key=KEY, secret=SECRET, run_id="r", params=params)
    return result, [a.data for a in result.accepted]


def _native(stored: np.ndarray, *, bits_stored: int, high_bit: int, signed: bool) -> pydicom.Dataset:
    ds = synthesize_ct_series(patient_id="MRN0042", n_slices=1, rows=stored.shape[0], columns=stored.shape[1])[0]
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits_stored, high_bit, int(signed)
    ds.PixelData = stored.astype(np.int16 if signed else np.uint16).tobytes()
    return ds


def _copy_words(copy: bytes, signed: bool) -> np.ndarray:
    ds = pydicom.dcmread(io.BytesIO(copy))
    return np.frombuffer(ds.PixelData, dtype=np.int16 if signed else np.uint16)


def test_overlay_bits_above_high_bit_are_cleared_and_pixel_values_kept() -> None:
    values = np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) * 15 % 4096  # 12 bits stored
    overlay = values | np.where(np.eye(16, dtype=bool), 0x2000, 0).astype(np.uint16)  # an overlay plane in bit 13
    original = _native(overlay, bits_stored=12, high_bit=11, signed=False)
    _, [copy] = _ingest(encode(original))
    np.testing.assert_array_equal(_copy_words(copy, False), values.ravel())
    np.testing.assert_array_equal(pydicom.dcmread(io.BytesIO(copy)).pixel_array, original.pixel_array)


def test_signed_pixels_are_sign_extended_from_high_bit() -> None:
    values = (np.arange(16 * 16).reshape(16, 16) * 17 % 4096 - 2048).astype(np.int16)  # -2048..2047: 12 bits signed
    words = values.view(np.uint16).copy()
    words[::3] ^= 0x4000  # flip a bit above High Bit: an overlay in a negative pixel clears it, in a positive sets it
    original = _native(words.view(np.int16), bits_stored=12, high_bit=11, signed=True)
    _, [copy] = _ingest(encode(original))
    np.testing.assert_array_equal(_copy_words(copy, True), values.ravel())


def test_unused_low_bits_are_cleared_when_high_bit_is_above_bits_stored() -> None:
    values = (np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) % 4096) << 4  # stored in bits 4..15
    noisy = values | 0x0005
    _, [copy] = _ingest(encode(_native(noisy, bits_stored=12, high_bit=15, signed=False)))
    np.testing.assert_array_equal(_copy_words(copy, False), values.ravel())


def test_pixels_without_unused_bits_are_copied_untouched() -> None:
    original = _native(np.full((16, 16), 1000, np.uint16), bits_stored=12, high_bit=11, signed=False)
    data = encode(original)
    _, [copy] = _ingest(data)
    assert copy.endswith(data[data.index(b"\xe0\x7f\x10\x00"):])


def test_without_the_high_bit_safeguard_the_overlay_would_stay() -> None:
    overlay = np.full((16, 16), 0x2000 | 100, np.uint16)
    _, [copy] = _ingest(encode(_native(overlay, bits_stored=12, high_bit=11, signed=False)),
                        DeidParams(safeguards=SAFEGUARDS - {"pixel-high-bits"}))
    assert (_copy_words(copy, False) & 0x2000).all()


def _jpeg_frame() -> tuple[bytes, np.ndarray]:
    """A baseline JPEG with a comment, an Exif block and bytes after EOI, all with canaries."""
    pixels = (np.arange(32 * 32).reshape(32, 32) * 7 % 256).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, "JPEG", quality=95, comment=b"Quixwell Zebulon MRN0042",
                                          exif=b"Exif\x00\x00MM\x00*Quixwell exif text")
    return buffer.getvalue() + b"Zebulon trailing", pixels


def _compressed(frame: bytes, syntax: str, *, bits: int, rows: int = 32) -> pydicom.Dataset:
    ds = synthesize_ct_series(patient_id="MRN0042", n_slices=1, rows=rows, columns=rows)[0]
    ds.file_meta.TransferSyntaxUID = syntax
    ds.BitsAllocated = bits
    ds.BitsStored, ds.HighBit = (8, 7) if bits == 8 else (12, 11)
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    return ds


def test_jpeg_comments_and_app_segments_are_removed_and_the_image_decodes_the_same() -> None:
    frame, _ = _jpeg_frame()
    assert all(c in frame for c in CANARIES)
    original = _compressed(frame, JPEGBaseline8Bit, bits=8)
    _, [copy] = _ingest(encode(original))
    assert not any(c.lower() in copy.lower() for c in CANARIES)
    out = pydicom.dcmread(io.BytesIO(copy))
    np.testing.assert_array_equal(out.pixel_array, pydicom.dcmread(io.BytesIO(encode(original))).pixel_array)


def test_without_the_comment_safeguard_the_jpeg_comment_would_stay() -> None:
    frame, _ = _jpeg_frame()
    _, [copy] = _ingest(encode(_compressed(frame, JPEGBaseline8Bit, bits=8)),
                        DeidParams(safeguards=SAFEGUARDS - {"pixel-comments"}))
    assert b"Quixwell" in copy


def _j2k_frame(pixels: np.ndarray, *, bits_stored: int) -> bytes:
    return get_encoder(JPEG2000Lossless).encode(
        pixels, rows=pixels.shape[0], columns=pixels.shape[1], bits_allocated=16, bits_stored=bits_stored,
        pixel_representation=0, samples_per_pixel=1, photometric_interpretation="MONOCHROME2", number_of_frames=1)


def _with_j2k_comments(codestream: bytes) -> bytes:
    """COM segments in the main header (after SIZ) and in the first tile-part header (Psot fixed)."""
    def com(text: bytes) -> bytes:
        return b"\xff\x64" + (len(text) + 4).to_bytes(2, "big") + b"\x00\x01" + text

    siz_end = 4 + int.from_bytes(codestream[4:6], "big")  # SOC and SIZ markers (2 + 2), then Lsiz bytes
    stream = codestream[:siz_end] + com(b"Quixwell main header") + codestream[siz_end:]
    sot = stream.index(b"\xff\x90")
    psot = int.from_bytes(stream[sot + 6:sot + 10], "big")
    tile_comment = com(b"Zebulon tile part MRN0042")
    stream = (stream[:sot + 6] + (psot + len(tile_comment)).to_bytes(4, "big") + stream[sot + 10:sot + 12]
              + tile_comment + stream[sot + 12:])
    return stream + b"\x00Quixwell after EOC"


def test_jpeg2000_comments_are_removed_and_the_image_decodes_the_same() -> None:
    pixels = (np.arange(32 * 32).reshape(32, 32) * 3 % 4096).astype(np.uint16)
    frame = _with_j2k_comments(_j2k_frame(pixels, bits_stored=12))
    original = _compressed(frame, JPEG2000Lossless, bits=16)
    np.testing.assert_array_equal(pydicom.dcmread(io.BytesIO(encode(original))).pixel_array, pixels)
    _, [copy] = _ingest(encode(original))
    assert not any(c.lower() in copy.lower() for c in CANARIES)
    np.testing.assert_array_equal(pydicom.dcmread(io.BytesIO(copy)).pixel_array, pixels)


def test_compressed_pixels_with_bits_above_high_bit_are_refused() -> None:
    pixels = (np.arange(32 * 32).reshape(32, 32) % 4096).astype(np.uint16) | 0x4000
    result, copies = _ingest(encode(_compressed(_j2k_frame(pixels, bits_stored=16), JPEG2000Lossless, bits=16)))
    assert copies == [] and "outside Bits Stored/High Bit" in result.rejections[0]["reason"]


def test_a_frame_that_cannot_be_followed_is_an_error_not_a_copy() -> None:
    items = encapsulate([b"\xff\xd8\xff\xfe\xff\xff broken"])  # COM segment length runs past the frame
    with pytest.raises(PixelTextError):
        compute_clean_encapsulated(items + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00", JPEGBaseline8Bit, number_of_frames=1)


def _compressed_test_files() -> list[Path]:
    root = Path(pydicom.data.__file__).parent
    files = []
    for path in sorted(p for p in root.rglob("*.dcm") if p.is_file()):
        ds = pydicom.dcmread(path, force=True)
        meta = ds.get("file_meta")
        if meta is not None and str(meta.get("TransferSyntaxUID", "")) in _TEXT_CARRYING and "PixelData" in ds:
            files.append(path)
    return files


_TEXT_CARRYING = frozenset({JPEGBaseline8Bit, "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
                            "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81",
                            JPEG2000Lossless, "1.2.840.10008.1.2.4.91"})


@pytest.mark.parametrize("path", _compressed_test_files(), ids=lambda p: p.name)
def test_real_codestreams_are_followed_and_decode_the_same_after_cleaning(path: Path) -> None:
    """pydicom's JPEG, JPEG-LS and JPEG 2000 test images (several encoders): every frame is
    parsed, and where segments were removed, the image decodes to exactly the same pixels."""
    ds = pydicom.dcmread(path)
    syntax = str(ds.file_meta.TransferSyntaxUID)
    cleaned = compute_clean_encapsulated(ds.PixelData + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00", syntax,
                                         number_of_frames=int(ds.get("NumberOfFrames") or 1))
    if cleaned is None:
        return  # nothing to remove: the copy keeps the bytes as they are
    try:
        before = ds.pixel_array
    except RuntimeError:  # no installed decoder for this one (the ingest refuses such files)
        before = None
    ds.PixelData = cleaned[:-8]
    if before is not None:
        np.testing.assert_array_equal(ds.pixel_array, before)
