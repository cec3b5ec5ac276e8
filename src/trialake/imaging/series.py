"""Assemble one axial CT series from DICOM files into a ``CTVolume`` (pydicom)."""
from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pydicom

from trialake.imaging.volume import CTVolume, compute_hu, compute_mapped_zeros

#: Largest relative deviation of one slice gap from the median gap before the series is refused.
MAX_GAP_DEVIATION = 0.1
#: The only elements parsed (parsing whole headers costs more than the pixels).
_TAGS = ["SeriesInstanceUID", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness",
         "Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated", "BitsStored", "HighBit",
         "PixelRepresentation", "RescaleSlope", "RescaleIntercept", "PixelPaddingValue", "NumberOfFrames", "PixelData",
         "ConvolutionKernel"]


@dataclass(frozen=True)
class _Slice:
    name: str
    position: np.ndarray
    orientation: np.ndarray
    pixel_spacing: tuple[float, float]
    ds: pydicom.Dataset


def _label(item: str | os.PathLike | bytes, index: int) -> str:
    return f"file #{index}" if isinstance(item, bytes) else os.fspath(item)


def _read(item: str | os.PathLike | bytes, index: int) -> _Slice:
    name = _label(item, index)
    source = io.BytesIO(item) if isinstance(item, bytes) else item
    try:
        ds = pydicom.dcmread(source, specific_tags=_TAGS)
    except Exception as exc:  # pydicom raises several types for non-DICOM input
        raise ValueError(f"{name}: not a readable DICOM file ({type(exc).__name__})") from exc
    required = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "PixelData")
    missing = [k for k in required if k not in ds]
    if missing:
        raise ValueError(f"{name}: missing {', '.join(missing)}")
    return _Slice(name, np.asarray(ds.ImagePositionPatient, float), np.asarray(ds.ImageOrientationPatient, float),
                  (float(ds.PixelSpacing[0]), float(ds.PixelSpacing[1])), ds)


def _check_same(slices: list[_Slice]) -> None:
    first = slices[0]
    for s in slices[1:]:
        if not np.allclose(s.orientation, first.orientation, atol=1e-3):
            raise ValueError(f"{s.name}: ImageOrientationPatient differs from {first.name}")
        if not np.allclose(s.pixel_spacing, first.pixel_spacing, rtol=1e-4):
            raise ValueError(f"{s.name}: PixelSpacing differs from {first.name}")
        if (s.ds.Rows, s.ds.Columns) != (first.ds.Rows, first.ds.Columns):
            raise ValueError(f"{s.name}: matrix {s.ds.Rows}x{s.ds.Columns} differs from {first.name}")
        if s.ds.get("SeriesInstanceUID") != first.ds.get("SeriesInstanceUID"):
            raise ValueError(f"{s.name}: SeriesInstanceUID differs from {first.name} (more than one series)")


def compute_slice_spacing(positions_mm: np.ndarray, names: Sequence[str]) -> float:
    """Median gap between sorted slice positions along the normal; refuses duplicates and uneven gaps."""
    gaps = np.diff(positions_mm)
    if np.any(gaps < 1e-3):
        i = int(np.argmin(gaps))
        raise ValueError(f"{names[i + 1]}: same slice position as {names[i]} (duplicate slice)")
    median = float(np.median(gaps))
    worst = int(np.argmax(np.abs(gaps - median)))
    if abs(gaps[worst] - median) > MAX_GAP_DEVIATION * median:
        raise ValueError(f"uneven slice spacing: gap {gaps[worst]:.3f} mm before {names[worst + 1]} "
                         f"vs median {median:.3f} mm (missing slice?)")
    return median


def load_series(files: Sequence[str | os.PathLike | bytes]) -> CTVolume:
    """Read one axial CT series into a ``CTVolume`` in canonical orientation.

    Slices are sorted by their position along the slice normal (never by InstanceNumber); the
    slice spacing comes from those positions. The result has x towards the patient's left, y
    posterior and z from head to feet; HU are int16 when every slice's rescale is integral,
    float32 otherwise. Raises ValueError naming the file and the problem.
    """
    if not files:
        raise ValueError("load_series: no files given")
    slices = [_read(item, i) for i, item in enumerate(files)]
    _check_same(slices)
    row_dir, col_dir = slices[0].orientation[:3], slices[0].orientation[3:]
    normal = np.cross(row_dir, col_dir)
    if abs(normal[2]) < 0.9:
        raise ValueError(f"{slices[0].name}: not an axial series "
                         f"(ImageOrientationPatient {list(slices[0].orientation)})")
    along = np.array([float(s.position @ normal) for s in slices])
    order = np.argsort(along)
    spacing_z = compute_slice_spacing(along[order], [slices[i].name for i in order]) if len(slices) > 1 else float(
        slices[0].ds.get("SliceThickness", 1.0) or 1.0)
    if normal[2] > 0:  # ascending along the normal runs towards the head: read head first
        order = order[::-1]
    rows, columns = slices[0].ds.Rows, slices[0].ds.Columns
    origin = slices[order[0]].position
    row_mm, col_mm = slices[0].pixel_spacing
    flip = tuple(slice(None, None, -1) if backwards else slice(None) for backwards in (col_dir[1] < 0, row_dir[0] < 0))
    if row_dir[0] < 0:
        origin = origin + (columns - 1) * col_mm * row_dir
    if col_dir[1] < 0:
        origin = origin + (rows - 1) * row_mm * col_dir
    hu = compute_mapped_zeros((len(slices), rows, columns), _hu_dtype(slices))
    for k, i in enumerate(order):
        hu[k] = _slice_hu(slices[i])[flip]
    return CTVolume(hu, (spacing_z, row_mm, col_mm), tuple(float(v) for v in origin),
                    kernel=_kernel(slices), tilt_deg=_tilt_deg([slices[i].position for i in order], normal))


def _kernel(slices: list[_Slice]) -> str | None:
    """The ConvolutionKernel of the first slice that has one (a multi-valued one joined with "\\")."""
    for s in slices:
        value = s.ds.get("ConvolutionKernel")
        if value:
            return "\\".join(value) if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else str(value)
    return None


def _tilt_deg(positions: list[np.ndarray], normal: np.ndarray) -> float:
    """Angle (degrees) between the slice normal and the line from the first to the last slice."""
    direction = positions[-1] - positions[0]
    length = float(np.linalg.norm(direction))
    if length == 0.0:
        return 0.0
    cosine = abs(float(direction @ normal)) / (length * float(np.linalg.norm(normal)))
    return float(np.degrees(np.arccos(min(1.0, cosine))))


def _hu_dtype(slices: list[_Slice]) -> type:
    """int16 when every rescale maps integers to integers, else float32."""
    rescale = {(float(s.ds.get("RescaleSlope", 1.0)), float(s.ds.get("RescaleIntercept", 0.0))) for s in slices}
    integral = all(slope.is_integer() and intercept.is_integer() for slope, intercept in rescale)
    return np.int16 if integral else np.float32


def _stored_pixels(ds: pydicom.Dataset) -> np.ndarray:
    """The stored values; plain 16-bit little-endian frames are viewed directly, others decoded by pydicom."""
    syntax = ds.file_meta.get("TransferSyntaxUID")
    plain = (syntax is not None and not syntax.is_compressed and syntax.is_little_endian
             and ds.get("BitsAllocated") == 16 and ds.get("BitsStored") == 16 and ds.get("SamplesPerPixel", 1) == 1
             and int(ds.get("NumberOfFrames", 1) or 1) == 1)
    if plain and len(ds.PixelData) == 2 * ds.Rows * ds.Columns:
        dtype = "<u2" if ds.PixelRepresentation == 0 else "<i2"
        return np.frombuffer(ds.PixelData, dtype=dtype).reshape(ds.Rows, ds.Columns)
    return ds.pixel_array


def _slice_hu(s: _Slice) -> np.ndarray:
    try:
        stored = _stored_pixels(s.ds)
    except Exception as exc:
        raise ValueError(f"{s.name}: pixel data cannot be decoded ({type(exc).__name__}: {exc})") from exc
    return compute_hu(stored, float(s.ds.get("RescaleSlope", 1.0)), float(s.ds.get("RescaleIntercept", 0.0)),
                      s.ds.get("PixelPaddingValue"))
