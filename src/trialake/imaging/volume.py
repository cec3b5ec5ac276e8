"""CT volumes in Hounsfield units, the conversion from stored values, and the measurement error."""
from __future__ import annotations

import mmap
import re
from dataclasses import dataclass

import numpy as np

#: HU given to padding and to values below the physical minimum (outside the reconstruction circle).
PADDING_HU = -1024.0


class NotMeasurable(Exception):
    """A series that cannot be measured; ``reason`` is a short PHI-free explanation for the lake."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CTVolume:
    """An axial CT volume.

    hu: HU, float32 or int16, shape (z, y, x); x runs towards the patient's left, y towards
    posterior, z from head to feet (as ``load_series`` returns it; the measurement itself does not
    depend on the z direction). spacing_mm: voxel spacing (z, y, x) in mm. origin_mm: patient
    (DICOM LPS) position of voxel (0, 0, 0), used only for the NIfTI affine.
    """

    hu: np.ndarray
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    kernel: str | None = None
    tilt_deg: float = 0.0

    def __post_init__(self) -> None:
        if self.hu.ndim != 3 or min(self.hu.shape) < 1:
            raise ValueError(f"CTVolume.hu: expected a non-empty 3-D array (z, y, x), got shape {self.hu.shape}")
        if self.hu.dtype not in (np.float32, np.int16):
            raise ValueError(f"CTVolume.hu: expected float32 or int16, got {self.hu.dtype}")
        if len(self.spacing_mm) != 3 or not all(np.isfinite(s) and s > 0 for s in self.spacing_mm):
            raise ValueError(f"CTVolume.spacing_mm: expected three positive numbers, got {self.spacing_mm!r}")

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.spacing_mm)) / 1000.0


def compute_mapped_zeros(shape: tuple[int, ...], dtype: type = bool) -> np.ndarray:
    """A zero-filled array in an anonymous memory map, for the large arrays of a series (the volume,
    its masks).

    Its pages are the kernel's default (4 KiB), each backed when first written; numpy asks for
    2 MiB pages for large arrays, whose first touch costs several times more on virtual machines
    whose host backs memory lazily (seen here: 0.04-1.3 s to write a 150 MB volume, against a
    steady 0.11 s), and a write anywhere in 2 MiB backs all of it.
    """
    count = int(np.prod(shape))
    buffer = mmap.mmap(-1, max(1, count * np.dtype(dtype).itemsize))
    return np.frombuffer(buffer, dtype=dtype, count=count).reshape(shape)


def compute_hu(stored: np.ndarray, slope: float = 1.0, intercept: float = 0.0,
               padding_value: float | None = None) -> np.ndarray:
    """HU (float32) from stored pixel values: ``stored * slope + intercept``.

    Voxels equal to ``padding_value`` (DICOM PixelPaddingValue, a stored value) and voxels below
    -1024 HU (scanner fill outside the reconstruction circle) are set to ``PADDING_HU`` so they
    read as outside air; values above 32767 HU (no tissue comes near) are clipped so the result
    fits int16.
    """
    if not (np.isfinite(slope) and slope != 0 and np.isfinite(intercept)):
        raise ValueError(f"compute_hu: rescale slope {slope!r} / intercept {intercept!r} unusable")
    hu = stored.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    if padding_value is not None:
        hu[stored == padding_value] = PADDING_HU
    np.clip(hu, np.float32(PADDING_HU), np.float32(32767.0), out=hu)
    return hu


#: Reconstruction kernels by vendor naming (ConvolutionKernel), sharp (edge-enhancing, lung or bone)
#: or soft (standard, body). Siemens B/Br/Bl/Bv/I/Hr/Qr + number and Canon FC + number are sharp
#: from 50 and 30 on; GE and Philips use names or letters.
_SHARP_WORDS = ("LUNG", "BONE", "EDGE", "SHARP", "DETAIL", "HIGH", "YA", "YB", "YC", "YD")
_SOFT_WORDS = ("STANDARD", "STND", "SOFT", "SMOOTH", "BODY", "ABDOMEN", "MEDIASTIN", "BRAIN")


def compute_kernel_class(kernel: str | None) -> str:
    """"sharp", "soft" or "unknown" for a ConvolutionKernel value (see the table above)."""
    if not kernel:
        return "unknown"
    name = kernel.strip().upper()
    match = re.match(r"^(BR|BL|BV|HR|QR|B|I|FC)(\d+)", name)
    if match:
        prefix, number = match.group(1), int(match.group(2))
        return "sharp" if number >= (30 if prefix == "FC" else 50) else "soft"
    if name in ("D", "E", "L", "Y-SHARP") or any(w in name for w in _SHARP_WORDS):
        return "sharp"
    if name in ("A", "B", "C") or any(w in name for w in _SOFT_WORDS):
        return "soft"
    return "unknown"
