"""Series assembly and geometry QC (silver/ct_series) from ingested instances."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
from dicom_factory import encode, synthesize_ct_series

from trialake.dicom import SubjectKey, ingest_dicom_batch
from trialake.dicom import REJECTION_SCHEMA
from trialake.dicom.series import (
    SeriesQcParams,
    compute_orientation_label,
    compute_spacing_qc,
    derive_ct_series,
    derive_series_rejections,
)
from trialake.pseudonym import compute_date_shift_days
from trialake.dicom import DeidParams

SECRET = b"trialake-test-secret-0123456789ab"
USUBJID = "T-01-001"
KEY = SubjectKey.from_frame(pl.DataFrame({"SITEID": ["01"], "PATIENT_ID": ["MRN0042"], "USUBJID": [USUBJID]}))
SHIFT = compute_date_shift_days(SECRET, USUBJID)
SCAN_DAY = dt.date(2020, 3, 1)  # synthesize_ct_series default study date
PARAMS = SeriesQcParams(min_slices=8)


def _instances(*series_lists) -> pl.DataFrame:
    files = [(f"folder/{i}", encode(ds)) for i, ds in enumerate(ds for series in series_lists for ds in series)]
    result = ingest_dicom_batch(files, key=KEY, secret=SECRET, run_id="run-1", params=DeidParams())
    assert not result.rejections
    return result.instances_frame()


def _subjects(first_dose: dt.date) -> pl.DataFrame:
    return pl.DataFrame({"USUBJID": [USUBJID], "RFSTDT": [first_dose + dt.timedelta(days=SHIFT)]})


def _series(n: int = 10, **kwargs):
    return synthesize_ct_series(patient_id="MRN0042", n_slices=n, **kwargs)


def _qc(*series_lists, first_dose: dt.date = SCAN_DAY - dt.timedelta(days=9)) -> pl.DataFrame:
    return derive_ct_series(_instances(*series_lists), _subjects(first_dose), run_id="run-1", params=PARAMS)


def test_complete_series_is_usable_and_ordered_by_position_not_instance_number() -> None:
    series = _series(10)
    for ds, number in zip(series, [7, 3, 10, 1, 9, 2, 8, 4, 6, 5]):
        ds.InstanceNumber = number
    instances = _instances(series[::-1])  # files arrive in reverse
    (row,) = derive_ct_series(instances, _subjects(SCAN_DAY - dt.timedelta(days=9)), run_id="run-1",
                              params=PARAMS).to_dicts()
    assert (row["status"], row["qc_reasons"], row["stack_kind"], row["orientation"]) == ("usable", "", "axial_volume", "axial")
    assert (row["n_instances"], row["rows"], row["columns"]) == (10, 16, 16)
    assert row["slice_spacing_mm"] == pytest.approx(2.0) and row["pixel_spacing_mm"] == pytest.approx(0.7)
    assert row["gantry_tilt_deg"] == pytest.approx(0.0, abs=1e-6)
    z_by_name = dict(zip(instances["object_name"], instances["position_z"]))
    assert [z_by_name[n] for n in row["object_names"]] == [2.0 * i for i in range(10)]
    assert row["acquisition_date"] == SCAN_DAY + dt.timedelta(days=SHIFT)
    assert row["ADY"] == 10  # 9 days after the first dose: day 10


@pytest.mark.parametrize(("days_after_dose", "ady"), [(0, 1), (-1, -1), (-10, -10), (27, 28)])
def test_study_day_has_no_day_zero(days_after_dose: int, ady: int) -> None:
    row = _qc(_series(8), first_dose=SCAN_DAY - dt.timedelta(days=days_after_dose)).row(0, named=True)
    assert row["ADY"] == ady


def test_subject_without_first_dose_gets_null_study_day() -> None:
    instances = _instances(_series(8))
    subjects = pl.DataFrame({"USUBJID": ["OTHER"], "RFSTDT": [dt.date(2020, 1, 1)]})
    assert derive_ct_series(instances, subjects, run_id="r", params=PARAMS)["ADY"].to_list() == [None]


def test_missing_slice_makes_the_series_unusable() -> None:
    z = [0, 2, 4, 8, 10, 12, 14, 16, 18]  # the slice at 6 mm is missing
    row = _qc(_series(positions_z=z)).row(0, named=True)
    assert row["status"] == "unusable" and "1 missing slice(s)" in row["qc_reasons"]
    assert row["slice_spacing_mm"] == pytest.approx(2.0)


def test_unusable_axial_stacks_become_series_qc_rejections() -> None:
    localizer = _series(1, seed="loc", rows=32, columns=16)[0]
    localizer.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    table = _qc(_series(positions_z=[0, 2, 4, 8, 10, 12, 14, 16, 18]), _series(8, seed="ok"), [localizer])
    rejections = derive_series_rejections(table)
    assert dict(rejections.schema) == REJECTION_SCHEMA
    (row,) = rejections.to_dicts()
    broken = table.filter(pl.col("status") == "unusable", pl.col("stack_kind") == "axial_volume").row(0, named=True)
    assert (row["stage"], row["source_row"], row["source_sha256"]) == ("series_qc", None, broken["source_sha256"])
    assert row["reason"].startswith("series of this file (stack 1, 9 files) cannot be measured: 1 missing")
    assert broken["series_id"] not in row["reason"]  # reasons carry no UID, not even a pseudonym


def test_duplicate_positions_are_flagged() -> None:
    z = [0, 2, 4, 4, 6, 8, 10, 12, 14]
    assert "1 duplicate slice position(s)" in _qc(_series(positions_z=z))["qc_reasons"][0]


def test_uneven_spacing_is_flagged() -> None:
    z = [0, 2, 4, 6, 7.1, 9.1, 11.1, 13.1, 15.1]
    reasons = _qc(_series(positions_z=z))["qc_reasons"][0]
    assert "uneven slice spacing (1.10 to 2.00 mm)" in reasons and "missing" not in reasons


@pytest.mark.parametrize("degrees, usable", [(12.0, True), (35.0, False)])
def test_gantry_tilt_is_measured_from_positions(degrees: float, usable: bool) -> None:
    series = _series(10)
    for ds in series:  # tilted gantry: each slice shifts in y by z * tan(tilt)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y + z * math.tan(math.radians(degrees)), z]
    row = _qc(series).row(0, named=True)
    assert row["gantry_tilt_deg"] == pytest.approx(degrees, abs=1e-6)
    # a moderate tilt shears the voxels without changing volumes: measured, and the tilt recorded
    assert (row["status"] == "usable") is usable
    assert ("gantry tilt 35.0 deg" in row["qc_reasons"]) is not usable


def test_missing_rescale_and_too_few_slices() -> None:
    series = _series(4)
    del series[1].RescaleSlope
    reasons = _qc(series)["qc_reasons"][0]
    assert "too few slices (4 < 8)" in reasons and "RescaleSlope/RescaleIntercept missing in 1 instance(s)" in reasons


def test_mixed_series_in_one_folder_and_localizer_in_the_same_series() -> None:
    axial = _series(8, seed="one")
    other = _series(9, seed="two", slice_spacing_mm=3.0)
    localizer = _series(1, seed="one", rows=32, columns=16)[0]
    localizer.SOPInstanceUID = localizer.file_meta.MediaStorageSOPInstanceUID = "1.2.3.999"
    localizer.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    localizer.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # coronal topogram
    table = _qc(axial, other, [localizer]).sort("n_instances")
    assert table["n_instances"].to_list() == [1, 8, 9]
    assert table["series_id"].n_unique() == 2
    assert table["stack_kind"].to_list() == ["localizer", "axial_volume", "axial_volume"]
    assert table["status"].to_list() == ["unusable", "usable", "usable"]
    assert table["slice_spacing_mm"].to_list()[1:] == pytest.approx([2.0, 3.0])
    assert table.filter(pl.col("n_instances") == 1)["stack"].item() == 2  # second stack of the series


def test_coronal_reformat_is_excluded() -> None:
    series = _series(8)
    for i, ds in enumerate(series):
        ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
        ds.ImagePositionPatient = [0, 2.0 * i, 0]
    row = _qc(series).row(0, named=True)
    assert (row["orientation"], row["stack_kind"], row["status"]) == ("coronal", "non_axial", "unusable")


def test_orientation_label() -> None:
    assert compute_orientation_label(np.array([0, 0, 1.0]), oblique_limit_deg=30) == "axial"
    assert compute_orientation_label(np.array([1.0, 0, 0]), oblique_limit_deg=30) == "sagittal"
    tilted = np.array([0, math.sin(math.radians(40)), math.cos(math.radians(40))])
    assert compute_orientation_label(tilted, oblique_limit_deg=30) == "oblique"


def test_spacing_qc_counts_gaps_as_multiples_of_the_median() -> None:
    spacing, reasons = compute_spacing_qc(np.array([0, 1, 2, 5, 6, 7, 8, 9.0]), SeriesQcParams())
    assert spacing == 1.0 and reasons == [
        "2 missing slice(s) (gap up to 3.00 mm where spacing is 1.00 mm): ask the site to re-send the complete series"]


def test_subjects_without_first_dose_column_is_an_error() -> None:
    with pytest.raises(ValueError, match="subjects: missing column"):
        derive_ct_series(_instances(_series(8)), pl.DataFrame({"USUBJID": [USUBJID]}), run_id="r")
