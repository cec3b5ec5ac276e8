"""The volumetry's fast paths give the same answer as the plain ones: masks kept in the lungs' box
(in arrays from anonymous memory maps; the QC outputs and the SEG's frames built from them), the
doubling box opening against scipy's filters and binary opening, the cross dilation against scipy's
binary dilation, label sizes counted slice by slice against one bincount."""
from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage

from trialake.imaging import CTVolume, measure_volume
from trialake.imaging.morphology import compute_cross_dilation, compute_rect_opening
from trialake.imaging.qc import LABELS, compute_label_map, compute_qc_slices
from trialake.imaging.segment import MASK_FIELDS, ClassicalSegmenter, LungMasks, compute_label_sizes
from trialake.imaging.volume import compute_mapped_zeros
from trialake.pipeline.ct_results import _SegmentStack
from trialake.synth.phantom import PhantomSpec, make_chest_phantom

MASKS = hnp.arrays(bool, hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=14))


def _scipy_rect_opening(mask: np.ndarray, sides: tuple[int, int, int]) -> np.ndarray:
    """The opening by separable scipy filters (erosion centred, the dilation's even window shifted back by one)."""
    m = mask.view(np.uint8)
    for axis, size in enumerate(sides):
        if size > 1:
            m = ndimage.minimum_filter1d(m, size, axis=axis, mode="constant", cval=0)
    for axis, size in enumerate(sides):
        if size > 1:
            m = ndimage.maximum_filter1d(m, size, axis=axis, mode="constant", cval=0, origin=-1 if size % 2 == 0 else 0)
    return m.view(bool)


@settings(max_examples=150, deadline=None)
@given(mask=MASKS, sides=st.tuples(*(st.integers(1, 18),) * 3))
def test_rect_opening_equals_scipy_filters(mask, sides):
    assert np.array_equal(compute_rect_opening(mask, sides), _scipy_rect_opening(mask, sides))


@settings(max_examples=100, deadline=None)
@given(mask=MASKS)
def test_plane_opening_equals_scipy_binary_opening(mask):
    # the padding mask's 3x3 opening within each slice
    assert np.array_equal(compute_rect_opening(mask, (1, 3, 3)),
                          ndimage.binary_opening(mask, structure=np.ones((1, 3, 3), bool)))


@settings(max_examples=100, deadline=None)
@given(mask=MASKS)
def test_cross_dilation_equals_scipy(mask):
    plane = np.zeros((3, 3, 3), bool)
    plane[1] = ndimage.generate_binary_structure(2, 1)
    assert np.array_equal(compute_cross_dilation(mask), ndimage.binary_dilation(mask, structure=plane))
    assert np.array_equal(compute_cross_dilation(mask, axes=(0, 1, 2)),
                          ndimage.binary_dilation(mask, structure=ndimage.generate_binary_structure(3, 1)))


def test_boxed_and_expanded_masks_round_trip():
    lung = np.zeros((6, 8, 9), bool)
    lung[2:4, 3:5, 1:7] = True
    effusion = np.zeros_like(lung)
    effusion[4, 6, 7] = True
    full = LungMasks(lung=lung, left=lung & (np.arange(9) < 4), right=lung & (np.arange(9) >= 4),
                     airway=np.zeros_like(lung), effusion=effusion)
    boxed = full.boxed()
    # the box of lung and fluid together, one voxel wider, inside the array
    assert boxed.box == (slice(1, 6), slice(2, 8), slice(0, 9)) and boxed.shape == lung.shape
    assert boxed.lung.shape == (5, 6, 9) and boxed.pneumothorax is None
    back = boxed.expanded()
    for name in MASK_FIELDS:
        a, b = getattr(full, name), getattr(back, name)
        assert (a is None and b is None) or np.array_equal(a, b)
    assert boxed.boxed() is boxed and full.expanded() is full


@dataclasses.dataclass(frozen=True)
class _FullSizeClassical:
    """The classical segmenter handing its masks over on the whole volume, as a plug-in does."""

    name: str = "classical"
    version: str = ClassicalSegmenter.version

    def segment_lungs(self, volume: CTVolume) -> LungMasks:
        masks = ClassicalSegmenter().segment_lungs(volume)
        assert masks.box is not None  # the classical segmenter keeps its masks in the box
        return masks.expanded()


@pytest.mark.parametrize("spec, exercised", [
    # noise 80 HU: the lesion bands read smoothed HU, up to the smoothing's margin outside the box
    (PhantomSpec(matrix=128, slices=40, lesion_pct=15.0, noise_hu=80.0, blur_mm=0.4, seed=41), "smoothing_mm"),
    # pleural fluid widens the box beyond the lung
    (PhantomSpec(matrix=128, slices=40, lesion_pct=5.0, effusion_mm=30.0, seed=42), "effusion_volume_ml"),
], ids=["sharp-kernel", "effusion"])
def test_measuring_in_the_box_equals_measuring_the_whole_volume(spec, exercised):
    ph = make_chest_phantom(spec)
    volume = CTVolume(ph.hu, ph.spacing_mm)
    boxed = measure_volume(volume)
    full = measure_volume(volume, segmenter=_FullSizeClassical())
    assert boxed.to_record() == full.to_record()
    assert boxed.boxed_lungs.box != tuple(slice(0, n) for n in ph.hu.shape)  # the box is smaller than the volume
    for name in ("lung", "left", "right", "effusion", "put_back"):
        assert np.array_equal(getattr(boxed.lungs, name), getattr(full.lungs, name)), name
    assert np.array_equal(boxed.ggo, full.ggo) and np.array_equal(boxed.solid, full.solid)
    assert getattr(boxed, exercised) > 0


def test_qc_outputs_and_seg_slices_from_the_box_equal_those_of_whole_volume_masks():
    """The label map, the QC picture's slices and the SEG's frames are built from the boxed masks;
    here against the same built from the whole-volume masks (a phantom with pleural fluid, so the
    box is wider than the lung; its pleural-air mask taken away, as a plug-in segmenter may hand none)."""
    ph = make_chest_phantom(PhantomSpec(matrix=128, slices=40, lesion_pct=5.0, effusion_mm=30.0, seed=42))
    measured = measure_volume(CTVolume(ph.hu, ph.spacing_mm))
    assert not measured.boxed_lungs.pneumothorax.any()
    r = dataclasses.replace(measured, boxed_lungs=dataclasses.replace(measured.boxed_lungs, pneumothorax=None))
    assert r.lungs.effusion.any()
    full = {"lung": r.lungs.lung, "ggo": r.ggo, "solid": r.solid, "effusion": r.lungs.effusion,
            "pneumothorax": np.zeros_like(r.lungs.lung)}
    expected = np.zeros(ph.hu.shape, np.uint8)
    for name in ("lung", "ggo", "solid", "effusion"):  # later labels win, as in the exported map
        expected[full[name]] = LABELS[name]
    assert np.array_equal(compute_label_map(r), expected)
    focus = full["ggo"] | full["solid"] | full["effusion"]
    assert compute_qc_slices(r) == (int(np.argmax(focus.sum(axis=(1, 2)))), int(np.argmax(focus.sum(axis=(0, 2)))))
    for name, mask in full.items():
        rows = r.boxed_lungs.box[1]
        for y in (0, rows.start, rows.stop - 1, ph.hu.shape[1] - 1):
            assert np.array_equal(r.mask_slice(name, 1, y), mask[:, y]), (name, y)
    stack = np.stack([full["lung"], full["ggo"], full["solid"]], axis=-1)
    seg = _SegmentStack(r)
    assert seg.shape == stack.shape
    assert all(np.array_equal(seg[k], stack[k]) for k in range(stack.shape[0]))


def test_mapped_zeros_are_an_ordinary_zeroed_array():
    a = compute_mapped_zeros((3, 4, 5), np.int16)
    assert a.shape == (3, 4, 5) and a.dtype == np.int16 and a.flags.writeable and a.flags.c_contiguous
    assert not a.any()
    a[1, 2, 3] = -1024
    copy = pickle.loads(pickle.dumps(a))  # as it travels to a Dask worker
    assert copy[1, 2, 3] == -1024 and int(np.count_nonzero(copy)) == 1
    assert compute_mapped_zeros((0, 4)).shape == (0, 4)


@settings(max_examples=50, deadline=None)
@given(mask=MASKS)
def test_label_sizes_equal_bincount(mask):
    labels, n = ndimage.label(mask)
    assert np.array_equal(compute_label_sizes(labels, n), np.bincount(labels.ravel(), minlength=n + 1))
