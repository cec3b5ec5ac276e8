"""The synthetic trial generator: allocation, CT truth = phantom masks, DICOM geometry, PHI ledger,
lab truth recomputed from independently written conversion factors, determinism.

Expected values come from the generator's ground truth (phantom masks, phi.json) or from tables
written here by hand (unit factors, standard units, visit windows), never from the code under test.
"""
from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import openpyxl
import pydicom
import pytest

from trialake.synth import SynthParams, generate_trial
from trialake.synth.model import plan_trial
from trialake.synth.phantom import PhantomSpec, make_chest_phantom

from conftest import SMALL_GENERATED as SMALL

pytestmark = pytest.mark.xdist_group("generator")

# Written by hand from DESIGN.md (standard units) and textbook conversions: standard = site x factor.
STANDARD_UNITS = {
    "CRP": "mg/L", "WBC": "10^9/L", "LYM": "10^9/L", "NEUT": "10^9/L", "PLAT": "10^9/L", "HGB": "g/L",
    "ALB": "g/L", "CREAT": "umol/L", "BILI": "umol/L", "GLUC": "mmol/L", "ALT": "U/L", "AST": "U/L",
    "LDH": "U/L", "DDIMER": "mg/L FEU", "FERRITIN": "ug/L", "IL6": "ng/L", "PCT": "ug/L", "TROPI": "ng/L",
}
FACTORS = {
    ("CRP", "mg/dL"): 10.0, ("CRP", "mg/L"): 1.0,
    **{(t, u): f for t in ("WBC", "LYM", "NEUT", "PLAT") for u, f in (("10^3/uL", 1.0), ("10^9/L", 1.0),
                                                                       ("/uL", 1e-3))},
    ("HGB", "g/dL"): 10.0, ("HGB", "g/L"): 1.0, ("ALB", "g/dL"): 10.0, ("ALB", "g/L"): 1.0,
    ("CREAT", "mg/dL"): 88.4, ("CREAT", "µmol/L"): 1.0, ("CREAT", "umol/L"): 1.0,
    ("BILI", "mg/dL"): 17.1, ("BILI", "µmol/L"): 1.0, ("GLUC", "mg/dL"): 0.0555, ("GLUC", "mmol/L"): 1.0,
    **{(t, u): f for t in ("ALT", "AST", "LDH") for u, f in (("U/L", 1.0), ("µkat/L", 60.0))},
    ("DDIMER", "ug/mL FEU"): 1.0, ("DDIMER", "mg/L FEU"): 1.0, ("DDIMER", "ng/mL DDU"): 0.002,
    ("FERRITIN", "ng/mL"): 1.0, ("FERRITIN", "ug/L"): 1.0, ("IL6", "pg/mL"): 1.0, ("IL6", "ng/L"): 1.0,
    ("PCT", "ng/mL"): 1.0, ("PCT", "ug/L"): 1.0, ("TROPI", "ng/mL"): 1000.0, ("TROPI", "ng/L"): 1.0,
    ("TROPI", "pg/mL"): 1.0,
}
BAD_CATEGORIES = {"unknown_test", "unknown_unit", "unparseable_value", "unknown_subject", "invalid_date"}
WINDOWS = {"Baseline": (-2, 1, 1), "Day 10": (7, 13, 10), "Day 28": (21, 35, 28)}


@pytest.fixture(scope="module")
def trial(small_generated: Path) -> Path:
    return small_generated


def _csv(path: Path, **kwargs) -> list[dict[str, str]]:
    encoding = kwargs.pop("encoding", "utf-8")
    with open(path, newline="", encoding=encoding) as handle:
        return list(csv.DictReader(handle, **kwargs))


def _dicom_files(trial: Path) -> list[Path]:
    return sorted(p for p in (trial / "landing/dicom").rglob("*") if p.is_file())


def _study_day(day: date, first_dose: date) -> int:
    delta = (day - first_dose).days
    return delta + 1 if delta >= 0 else delta


@pytest.mark.parametrize("n", range(3, 41))
def test_allocation_is_two_to_one_within_one_subject(n: int) -> None:
    counts = Counter(s.arm.armcd for s in plan_trial(n, 3, seed=n, params=SynthParams()))
    assert abs(counts["UCMSC"] - 2 * n / 3) <= 1
    assert counts["UCMSC"] + counts["PBO"] == n


def test_subjects_key_and_dm_agree(trial: Path) -> None:
    truth = _csv(trial / "truth/subjects.csv")
    key = _csv(trial / "landing/keys/subject_key.csv")
    dm = {r["USUBJID"]: r for r in _csv(trial / "landing/clinical/dm.csv")}
    assert Counter(r["ARMCD"] for r in truth) == {"UCMSC": 4, "PBO": 2}  # 6 subjects, exactly 2:1
    assert {r["SITEID"] for r in truth} == {"S01", "S02", "S03"}
    assert sorted(r["USUBJID"] for r in key) == sorted(dm) == sorted(r["USUBJID"] for r in truth)
    assert len({r["PATIENT_ID"] for r in key}) == len(key)
    for row in truth:
        assert dm[row["USUBJID"]]["RFSTDTC"] == row["RFSTDTC"] and dm[row["USUBJID"]]["ARMCD"] == row["ARMCD"]
    ex = _csv(trial / "landing/clinical/ex.csv")
    for row in truth:
        first = date.fromisoformat(row["RFSTDTC"])
        days = sorted(_study_day(date.fromisoformat(e["EXSTDTC"]), first) for e in ex if e["USUBJID"] == row["USUBJID"])
        assert days == [1, 4, 7]


def test_scans_fall_in_their_windows_and_the_analysis_scan_is_nearest() -> None:
    subjects = plan_trial(400, 3, seed=3, params=SynthParams())
    repeats = missed = 0
    for s in subjects:
        by_window: dict[str, list] = {}
        for scan in s.scans:
            low, high, _ = WINDOWS[scan.window]
            assert low <= scan.study_day <= high and scan.study_day != 0
            assert _study_day(scan.date, s.first_dose_date) == scan.study_day
            by_window.setdefault(scan.window, []).append(scan)
        for window, scans in by_window.items():
            target = WINDOWS[window][2]
            best = min(scans, key=lambda sc: abs(sc.study_day - target))
            assert [sc for sc in scans if sc.analysis] == [best]
            repeats += len(scans) > 1
        missed += 3 - len(by_window)
    assert repeats > 0 and missed > 0  # the messiness the brief asks for is actually there


def test_effects_json_matches_a_simulation_of_the_plans(trial: Path) -> None:
    effects = json.loads((trial / "truth/effects.json").read_text())["population_effects"]
    defaults = SynthParams()
    on_target = replace(defaults, visits=tuple(replace(v, jitter_sd_days=0.0, p_repeat=0.0) for v in defaults.visits))
    lesion_chg: dict[bool, list[float]] = {True: [], False: []}
    solid_pchg: dict[bool, list[float]] = {True: [], False: []}
    for s in plan_trial(1500, 3, seed=11, params=on_target):
        scans = {sc.window: sc for sc in s.scans}
        if "Baseline" in scans and "Day 28" in scans:
            base, last = scans["Baseline"], scans["Day 28"]
            lesion_chg[s.arm.treated].append(last.lesion_pct - base.lesion_pct)
            solid = (last.lesion_pct * last.solid_share, base.lesion_pct * base.solid_share)
            solid_pchg[s.arm.treated].append(100.0 * (solid[0] - solid[1]) / solid[1])
    for paramcd, values, tolerance in (("LESPCT", lesion_chg, 1.5), ("SOLPCT", solid_pchg, 3.0)):
        simulated = np.mean(values[True]) - np.mean(values[False])
        assert effects[paramcd]["difference"] == pytest.approx(simulated, abs=tolerance)
    assert -16.0 < effects["LESPCT"]["difference"] < -10.0  # the reference trial's size: -13.3 points
    assert -20.0 < effects["SOLPCT"]["difference"] < -10.0  # -15.5 %
    assert effects["SIXMW"]["difference"] == pytest.approx(27.0)


def test_ct_truth_equals_phantom_masks_and_pixels(trial: Path) -> None:
    rows = _csv(trial / "truth/ct_series.csv")
    picked = {r["SITEID"]: r for r in rows} | {"FFS": r for r in rows if r["feet_first"] == "Y"}
    for row in picked.values():
        spec = PhantomSpec(
            matrix=int(row["rows"]), slices=int(row["n_files"]), fov_mm=float(row["fov_mm"]),
            slice_spacing_mm=float(row["slice_spacing_mm"]), body_scale=float(row["body_scale"]),
            lesion_pct=float(row["target_lesion_pct"]), solid_share=float(row["target_solid_share"]),
            chest_wall_consolidation=row["chest_wall_consolidation"] == "Y", feet_first=row["feet_first"] == "Y",
            noise_hu=float(row["noise_hu"]), blur_mm=float(row["blur_mm"]), seed=int(row["phantom_seed"]),
        )
        phantom = make_chest_phantom(spec)
        voxel_ml = float(row["pixel_spacing_mm"]) ** 2 * float(row["slice_spacing_mm"]) / 1000.0
        counts = {k: int(np.count_nonzero(m)) for k, m in phantom.masks.items()}
        assert float(row["lung_volume_ml"]) == pytest.approx(counts["lung"] * voxel_ml)
        assert float(row["ggo_volume_ml"]) == pytest.approx(counts["ggo"] * voxel_ml)
        assert float(row["solid_volume_ml"]) == pytest.approx(counts["solid"] * voxel_ml)
        assert float(row["lesion_volume_ml"]) == pytest.approx((counts["ggo"] + counts["solid"]) * voxel_ml)
        assert float(row["lesion_pct"]) == pytest.approx(100.0 * (counts["ggo"] + counts["solid"]) / counts["lung"])
        assert float(row["left_lung_volume_ml"]) == pytest.approx(counts["lung_left"] * voxel_ml)
        files = sorted((trial / "landing" / row["folder"]).iterdir())
        slices = sorted((pydicom.dcmread(f) for f in files), key=lambda ds: int(ds.InstanceNumber))
        hu = np.stack([ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in slices])
        np.testing.assert_array_equal(hu, phantom.hu)


def test_dicom_files_have_the_expected_geometry(trial: Path) -> None:
    rows = _csv(trial / "truth/ct_series.csv")
    assert sum(int(r["n_files"]) for r in rows) == len(_dicom_files(trial))
    sop_uids: set[str] = set()
    in_name_order = 0
    for row in rows:
        files = list((trial / "landing" / row["folder"]).iterdir())
        assert len(files) == int(row["n_files"])
        by_name = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(files)]
        in_name_order += [int(d.InstanceNumber) for d in by_name] == list(range(1, len(files) + 1))
        headers = sorted(by_name, key=lambda d: int(d.InstanceNumber))
        spacing, n = float(row["slice_spacing_mm"]), int(row["n_files"])
        z = np.array([float(d.ImagePositionPatient[2]) for d in headers])
        step = spacing if row["feet_first"] == "Y" else -spacing
        np.testing.assert_allclose(np.diff(z), step, atol=1e-6)
        for d in headers:
            assert d.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2" and d.Modality == "CT"
            assert [float(v) for v in d.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
            assert [float(v) for v in d.PixelSpacing] == pytest.approx([float(row["pixel_spacing_mm"])] * 2)
            assert float(d.SliceThickness) == pytest.approx(spacing)
            assert (d.Rows, d.Columns) == (int(row["rows"]), int(row["columns"]))
            assert float(d.ImagePositionPatient[0]) == pytest.approx(-(d.Columns - 1) / 2 * float(d.PixelSpacing[1]))
            assert d.StudyInstanceUID == row["StudyInstanceUID"] and d.SeriesInstanceUID == row["SeriesInstanceUID"]
            assert d.StudyDate == row["ADT"].replace("-", "")
            assert float(d.RescaleIntercept) == float(row["rescale_intercept"])
            assert d.PixelRepresentation == (1 if row["pixel_dtype"] == "int16" else 0)
            sop_uids.add(d.SOPInstanceUID)
        assert len(z) == n
    assert len(sop_uids) == len(_dicom_files(trial))
    assert in_name_order < len(rows) / 2  # file names do not give the slice order


def test_spliced_dicom_bytes_equal_a_full_pydicom_write(trial: Path) -> None:
    for path in _dicom_files(trial)[::25]:
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, pydicom.dcmread(path), enforce_file_format=True)
        assert buffer.getvalue() == path.read_bytes()


def _landing_text(trial: Path) -> tuple[bytes, str]:
    """All landing bytes (DICOM and CSV), and the text of paths and XLSX cells."""
    files = sorted(p for p in (trial / "landing").rglob("*") if p.is_file() and p.suffix != ".xlsx")
    blob = b"".join(p.read_bytes() for p in files)
    text = [str(p.relative_to(trial / "landing")) for p in (trial / "landing").rglob("*")]
    for book in (trial / "landing").rglob("*.xlsx"):
        for row in openpyxl.load_workbook(book, read_only=True).active.iter_rows(values_only=True):
            text += [str(v) for v in row if v is not None]
    return blob, "\n".join(text)


def test_every_phi_value_appears_in_the_landing_area(trial: Path) -> None:
    phi = json.loads((trial / "truth/phi.json").read_text(encoding="utf-8"))
    blob, text = _landing_text(trial)
    missing = [
        v for v in phi["values"]
        if v.encode("utf-8") not in blob and v.encode("latin-1", "ignore") not in blob and v not in text
    ]
    assert missing == []
    assert {p["value"] for p in phi["placements"]} == set(phi["values"])
    assert min(len(v) for v in phi["values"]) >= 5  # long enough not to match by accident


def test_phi_ledger_covers_the_identifying_dicom_elements(trial: Path) -> None:
    values = set(json.loads((trial / "truth/phi.json").read_text(encoding="utf-8"))["values"])
    for path in _dicom_files(trial)[::50]:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        found = [
            str(ds.PatientName), ds.PatientID, ds.PatientBirthDate, ds.AccessionNumber, ds.InstitutionName,
            ds.InstitutionAddress, str(ds.ReferringPhysicianName), str(ds.OperatorsName), ds.StudyID,
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.FrameOfReferenceUID,
            ds.OtherPatientIDsSequence[0].PatientID, ds.RequestAttributesSequence[0].RequestedProcedureID,
            ds.RequestAttributesSequence[0].ScheduledProcedureStepID, str(ds.PerformingPhysicianName),
            ds.InstitutionalDepartmentName,
            ds[0x0029, 0x1010].value, ds[0x0029, 0x1011].value,
        ]
        assert [v for v in found if v not in values] == []
        family, given = str(ds.PatientName).split("^")
        assert family in ds.StudyDescription and family in ds.SeriesDescription and given in ds.StudyDescription
        assert family in ds.RequestAttributesSequence[0].RequestedProcedureDescription
        assert given in ds[0x0029, 0x1012].value and str(ds.ReferringPhysicianName) in ds[0x0029, 0x1012].value
        assert f"{family}_{given}_{ds.PatientID}" in path.parts[-4]
    key = _csv(trial / "landing/keys/subject_key.csv")
    assert {r["PATIENT_ID"] for r in key} <= values
    dm = _csv(trial / "landing/clinical/dm.csv")
    assert {r["BRTHDTC"] for r in dm} | {r["INVNAM"] for r in dm} <= values


def _lab_rows(trial: Path) -> dict[str, list[dict[str, object]]]:
    clinical = trial / "landing/clinical"
    book = openpyxl.load_workbook(clinical / "lb_site3.xlsx", read_only=True).active
    header, *data = list(book.iter_rows(values_only=True))
    return {
        "lb_site1.csv": _csv(clinical / "lb_site1.csv", encoding="utf-8-sig"),
        "lb_site2.csv": _csv(clinical / "lb_site2.csv", encoding="latin-1", delimiter=";"),
        "lb_site3.xlsx": [dict(zip(header, row, strict=True)) for row in data],
    }


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) else float(str(value).replace(",", "."))


def _lab_date(value: object) -> date:
    if isinstance(value, (int, float)):
        return date(1899, 12, 30) + timedelta(days=int(value))
    return date.fromisoformat(str(value)[:10])


def test_lab_files_have_the_site_formats(trial: Path) -> None:
    clinical = trial / "landing/clinical"
    assert (clinical / "lb_site1.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    site2 = (clinical / "lb_site2.csv").read_bytes()
    assert "Proteína C reactiva".encode("latin-1") in site2 and b"\xc3" not in site2
    rows = _lab_rows(trial)
    assert any("," in r["LBORRES"] for r in rows["lb_site2.csv"])
    assert all(isinstance(r["LBDTC"], float) for r in rows["lb_site3.xlsx"] if r["LBDTC"] != "31/04/2020")
    assert {r["LBORRESU"] for rows_ in rows.values() for r in rows_} >= {"mg/dL", "µkat/L", "/uL", "ng/mL DDU"}


def test_lab_truth_is_recomputable_from_the_landing_rows(trial: Path) -> None:
    truth = _csv(trial / "truth/labs.csv")
    key = {(r["SITEID"], r["PATIENT_ID"]) for r in _csv(trial / "landing/keys/subject_key.csv")}
    landing = _lab_rows(trial)
    assert Counter(t["file"] for t in truth) == {f: len(rows) for f, rows in landing.items()}
    for t in truth:
        row = landing[t["file"]][int(t["source_row"]) - 1]
        assert (row["LBTEST"], str(row["PATIENT_ID"])) == (t["LBTEST"], t["PATIENT_ID"])
        assert ((row["SITEID"], row["PATIENT_ID"]) in key) == (t["category"] != "unknown_subject")
        if t["status"] == "rejected":
            assert t["LBSTRESN"] == ""
            continue
        testcd, unit = t["LBTESTCD"], row["LBORRESU"]
        factor = FACTORS[(testcd, unit)]
        assert float(t["factor"]) == factor and t["LBSTRESU"] == STANDARD_UNITS[testcd]
        assert _lab_date(row["LBDTC"]) == date.fromisoformat(t["LBDT"])
        assert float(t["LBSTNRHI"]) == pytest.approx(_number(row["LBORNRHI"]) * factor, rel=1e-12)
        if str(row["LBORRES"]).startswith("<"):
            assert t["censored"] == "Y" and t["LBSTRESN"] == ""
            assert float(t["censor_limit"]) == pytest.approx(_number(str(row["LBORRES"])[1:]) * factor, rel=1e-12)
        else:
            value = _number(row["LBORRES"]) * factor
            assert float(t["LBSTRESN"]) == pytest.approx(value, rel=1e-12)
            low = _number(row["LBORNRLO"]) * factor if row["LBORNRLO"] not in ("", None) else -np.inf
            high = _number(row["LBORNRHI"]) * factor
            assert t["LBNRIND"] == ("LOW" if value < low else "HIGH" if value > high else "NORMAL")
    for name in landing:
        categories = Counter(t["category"] for t in truth if t["file"] == name and t["status"] == "rejected")
        assert categories == {c: 1 for c in BAD_CATEGORIES}
    assert {t["LBTESTCD"] for t in truth if t["status"] == "ok"} == set(STANDARD_UNITS)
    assert any(t["censored"] == "Y" for t in truth)


def test_endpoint_truth_uses_the_analysis_scans_and_standard_units(trial: Path) -> None:
    endpoints = _csv(trial / "truth/endpoints.csv")
    scans = {(r["USUBJID"], r["window"]): r for r in _csv(trial / "truth/ct_series.csv") if r["analysis"] == "Y"}
    re_rows = {(r["USUBJID"], r["RETESTCD"], r["VISIT"]): r for r in _csv(trial / "landing/clinical/re.csv")}
    re_factor = {"L": 1.0, "mL": 0.001, "mmol/min/kPa": 1.0, "mL/min/mmHg": 0.3348}
    for e in endpoints:
        if e["PARAMCD"] == "LESPCT":
            assert float(e["AVAL"]) == float(scans[(e["USUBJID"], e["AVISIT"])]["lesion_pct"])
        if e["PARAMCD"] in ("FVC", "MVC", "DLCO"):
            source = re_rows[(e["USUBJID"], e["PARAMCD"], e["AVISIT"])]
            assert float(e["AVAL"]) == pytest.approx(float(source["REORRES"]) * re_factor[source["REORRESU"]])
        if e["BASE"] and e["AVISIT"] != "Baseline":
            assert float(e["CHG"]) == pytest.approx(float(e["AVAL"]) - float(e["BASE"]))


def test_generation_is_deterministic_and_independent_of_workers(trial: Path, tmp_path: Path) -> None:
    generate_trial(tmp_path, workers=2, **SMALL)
    first = {p.relative_to(trial): p.read_bytes() for p in trial.rglob("*") if p.is_file()}
    second = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"sites": 4}, "sites"), ({"subjects": 2}, "subjects"), ({"slices": 10}, "slices"), ({"matrix": 8}, "matrix")],
)
def test_bad_arguments_are_named(tmp_path: Path, kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name}: "):
        generate_trial(tmp_path, **kwargs)


def test_refuses_to_overwrite_without_permission(trial: Path) -> None:
    with pytest.raises(ValueError, match="out_dir: .*not empty"):
        generate_trial(trial, **SMALL)
