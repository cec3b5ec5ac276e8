"""The trial configuration's de-identification section reaches the DICOM ingest: a subject's
DICOM and clinical dates move by the same offset for any valid shift range, and switching
shifting off leaves both unshifted. Also: a lake de-identified under other rules or settings is
upgraded by the next run, with the same pseudonyms and offsets (no churn)."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import polars as pl
import pydicom
from dicom_factory import encode, synthesize_ct_series
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trialake.config import Settings, load_trial_config
from trialake.config.trial import DeidConfig
from trialake.lake import read_object, read_table
from trialake.pipeline import open_run
from trialake.pipeline.clinical import ingest_clinical_bronze
from trialake.pipeline.dicom import ingest_dicom_chunk, plan_dicom, publish_dicom
from trialake.pipeline.quality import QualityGate
from trialake.pipeline.subjects import load_subject_key

NO_SUITES = QualityGate(suites={}, config_context={})
USUBJID, MRN = "T-01-001", "MRN0042"
STUDY_DAY = dt.date(2020, 3, 5)


def _landing(root: Path) -> Path:
    (root / "keys").mkdir(parents=True)
    (root / "keys" / "subject_key.csv").write_text(f"SITEID,PATIENT_ID,USUBJID\n01,{MRN},{USUBJID}\n")
    (root / "clinical").mkdir()
    (root / "clinical" / "sv.csv").write_text(f"USUBJID,VISITNUM,VISIT,SVSTDTC\n{USUBJID},1,Baseline,{STUDY_DAY}\n")
    (root / "dicom").mkdir()
    for i, ds in enumerate(synthesize_ct_series(patient_id=MRN, n_slices=2, study_date=STUDY_DAY)):
        (root / "dicom" / f"{i}.dcm").write_bytes(encode(ds))
    return root


def _run(landing: Path, lake: Path, deid: DeidConfig):
    """The DICOM and clinical bronze stages of a nightly run (no Prefect) under ``deid``."""
    trial = load_trial_config().model_copy(update={"deidentification": deid})
    ctx = open_run(Settings(landing=str(landing), lake=str(lake), trial=trial), run_id="run")
    key, shifts = load_subject_key(ctx)
    plan = plan_dicom(ctx)
    outcomes = [ingest_dicom_chunk(ctx, chunk, key, plan) for chunk in plan.chunks]
    ingest_clinical_bronze(ctx, NO_SUITES, key, shifts)
    publish_dicom(ctx, NO_SUITES, plan, outcomes)
    return ctx


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(max_days=st.integers(1, 3650), shift=st.booleans())
def test_dicom_and_clinical_dates_move_by_the_same_offset(tmp_path_factory, max_days: int, shift: bool) -> None:
    root = tmp_path_factory.mktemp("shift")
    ctx = _run(_landing(root / "landing"), root / "lake", DeidConfig(shift_dates=shift, max_shift_days=max_days))
    clinical = read_table(ctx.lake, "bronze/sv")["SVSTDT"].to_list()
    instances = read_table(ctx.lake, "bronze/dicom_instances")
    offsets = {(d - STUDY_DAY).days for d in instances["study_date"].to_list() + clinical}
    assert len(offsets) == 1
    offset = offsets.pop()
    assert (-max_days <= offset <= -1) if shift else offset == 0
    copy = pydicom.dcmread(io.BytesIO(read_object(ctx.lake, f"bronze/dicom/{instances['object_name'][0]}")))
    assert copy.LongitudinalTemporalInformationModified == ("MODIFIED" if shift else "UNMODIFIED")


def test_a_lake_written_under_older_rules_is_upgraded_by_a_rerun_without_churn(tmp_path: Path, monkeypatch) -> None:
    """A lake written by a version that kept unregistered UIDs under the DICOM root and code
    meanings (simulated with those safeguards off, and no rules marker): the next run replaces
    every copy, with the pseudonyms and date offsets a fresh lake with the same secret has; a
    copy whose landing file is gone is cleaned again in place."""
    import trialake.pipeline.dicom as stage
    from trialake.dicom import DeidParams
    from trialake.dicom.profile import SAFEGUARDS
    from trialake.pipeline.rules_state import STATE

    landing = _landing(tmp_path / "landing")
    for path in sorted((landing / "dicom").iterdir()):
        ds = pydicom.dcmread(path)
        ds.FrameOfReferenceUID = "1.2.840.10008.99.7.4455667788"
        code = pydicom.Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "113072", "DCM", "MPR by Dr Ravensworth"
        ds.DerivationCodeSequence = [code]
        path.write_bytes(encode(ds))
    old = DeidParams(safeguards=SAFEGUARDS - {"registered-uids", "code-items"})
    with monkeypatch.context() as patch:
        patch.setattr(stage, "deid_params", lambda deid: old)
        ctx = _run(landing, tmp_path / "lake", DeidConfig())
    for area in ("dicom", "clinical"):  # what a previous version left: no record of its rules
        ctx.lake.fs.rm(ctx.lake.path(STATE.format(area=area)))
    before = read_table(ctx.lake, "bronze/dicom_instances").sort("source_sha256")
    assert (before["frame_of_reference_id"] == "1.2.840.10008.99.7.4455667788").all()

    gone = sorted((landing / "dicom").iterdir())[0]
    gone.unlink()  # its copy must be cleaned from the lake's own copy
    _run(landing, tmp_path / "lake", DeidConfig())
    after = read_table(ctx.lake, "bronze/dicom_instances").sort("source_sha256")

    columns = ["source_sha256", "USUBJID", "study_id", "series_id", "sop_id", "study_date", "acquisition_date"]
    # no churn: the same files, instance and series pseudonyms and dates as before the upgrade
    assert after.select(columns).equals(before.select(columns))
    assert not after["frame_of_reference_id"].str.starts_with("1.2.840.10008.").any()
    copies = sorted(p for p in (tmp_path / "lake" / "bronze" / "dicom").rglob("*.dcm"))
    assert sorted(p.relative_to(tmp_path / "lake" / "bronze" / "dicom").as_posix() for p in copies) == \
        sorted(after["object_name"])
    for path in copies:
        copy = pydicom.dcmread(path)
        assert copy.DerivationCodeSequence[0].CodeMeaning == "Multiplanar reformatting"
        assert copy.FrameOfReferenceUID.startswith("2.25.")
    assert len({pydicom.dcmread(p).FrameOfReferenceUID for p in copies}) == 1  # the orphan got the same pseudonym
