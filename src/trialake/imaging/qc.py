"""Reviewable outputs of a volumetry: a QC picture and the label map as compressed NIfTI."""
from __future__ import annotations

import gzip
import io

import nibabel as nib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from trialake.imaging.volume import CTVolume
from trialake.imaging.volumetry import VolumetryResult

#: Label values of the exported mask.
LABELS = {"lung": 1, "ggo": 2, "solid": 3, "effusion": 4, "pneumothorax": 5}
_OUTLINES = (("lung", "#3fa7ff"), ("ggo", "#ffd23f"), ("solid", "#ff3f3f"), ("effusion", "#c04fff"),
             ("pneumothorax", "#3fff7a"))


def compute_label_map(result: VolumetryResult) -> np.ndarray:
    """uint8 (z, y, x): 0 outside, 1 lung, 2 ground glass, 3 solid, 4 pleural fluid, 5 pleural air."""
    labels = np.zeros(result.boxed_lungs.shape, np.uint8)
    inner = labels[result.boxed_lungs.box]
    for name, mask in result.boxed_masks.items():
        inner[mask] = LABELS[name]
    return labels


def compute_qc_slices(result: VolumetryResult) -> tuple[int, int]:
    """(axial z, coronal y) indices: the slices with the most lesion (or pleural fluid or air), else the most lung."""
    masks = result.boxed_masks
    focus = masks["ggo"] | masks["solid"] | masks["effusion"] | masks["pneumothorax"]
    focus = focus if focus.any() else masks["lung"]
    z0, y0 = (b.start for b in result.boxed_lungs.box[:2])
    return z0 + int(np.argmax(focus.sum(axis=(1, 2)))), y0 + int(np.argmax(focus.sum(axis=(0, 2))))


def render_qc_png(volume: CTVolume, result: VolumetryResult, *, subject: str | None = None, day: int | None = None,
                  dpi: int = 80) -> bytes:
    """PNG with an axial and a coronal slice (lung window) and lung / GGO / solid / pleural outlines.

    The title gives the subject's trial identifier (pseudonymous), the study day and the slices
    shown; a flagged series carries a red banner with its flags. Nothing else is written, and the
    file has no text chunks.
    """
    z, y = compute_qc_slices(result)
    sz, sy, sx = volume.spacing_mm
    views = ((f"axial, slice {z + 1} of {volume.hu.shape[0]}", volume.hu[z],
              {name: result.mask_slice(name, 0, z) for name in LABELS}, sy / sx),
             (f"coronal, row {y + 1} of {volume.hu.shape[1]}", volume.hu[:, y],
              {name: result.mask_slice(name, 1, y) for name in LABELS}, sz / sx))
    fig = Figure(figsize=(10, 6.0), dpi=dpi)  # Agg canvas, no pyplot state
    axes = fig.subplots(1, 2)
    for ax, (title, image, outlines, aspect) in zip(axes, views):
        ax.imshow(image, cmap="gray", vmin=-1200, vmax=200, aspect=aspect, interpolation="nearest")
        for name, colour in _OUTLINES:
            if outlines[name].any():
                ax.contour(outlines[name].astype(np.uint8), levels=[0.5], colors=colour, linewidths=0.9)
        ax.set_title(title)
        ax.set_axis_off()
    who = " ".join(part for part in (subject, None if day is None else f"day {day}") if part)
    fig.suptitle(f"{who}   {result.status}" if who else result.status, fontsize=11)
    if result.qc_flags:
        fig.text(0.5, 0.89, "FLAGGED: " + result.qc_flags.replace(",", ", "), ha="center", color="white", fontsize=10,
                 bbox={"facecolor": "#c0392b", "edgecolor": "none", "pad": 4})
    handles = [Line2D([], [], color=c, label=n) for n, c in _OUTLINES]
    fig.legend(handles=handles, loc="lower center", ncol=5, frameon=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def compute_nifti_affine(volume: CTVolume) -> np.ndarray:
    """RAS affine for data stored as (x, y, z) from the canonical (z head->feet, y posterior, x left) volume."""
    sz, sy, sx = volume.spacing_mm
    ox, oy, oz = volume.origin_mm  # DICOM LPS
    return np.array([[-sx, 0.0, 0.0, -ox],
                     [0.0, -sy, 0.0, -oy],
                     [0.0, 0.0, -sz, oz],
                     [0.0, 0.0, 0.0, 1.0]])


def write_masks_nifti(volume: CTVolume, result: VolumetryResult) -> bytes:
    """The label map (see ``compute_label_map``) as gzip-compressed NIfTI-1 bytes (.nii.gz)."""
    image = nib.Nifti1Image(np.ascontiguousarray(compute_label_map(result).transpose(2, 1, 0)),
                            compute_nifti_affine(volume))
    image.header.set_xyzt_units("mm")
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    return gzip.compress(image.to_bytes(), compresslevel=6, mtime=0)
