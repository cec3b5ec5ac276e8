"""Leak tests on an adversarial corpus (``adversarial.py``): a canary in every category where
de-identification has been seen to leak.

1. Stage level, fast: the corpus through the DICOM ingest and the clinical bronze and silver
   derivations; nothing outside restricted/ carries a canary, and removing any one rule or
   safeguard (parametrized) makes the scan find its canary.
2. The nightly flow, from the command line, with a non-default date-shift range: the generated
   trial plus the corpus; every object outside restricted/ (Parquet, DICOM at every depth and
   pixel bytes, PNG, NIfTI headers, HTML), the console output and the Prefect database are
   scanned for every canary and every fake PHI value of the generator; CT study days agree with
   the generator's truth; ages over 89 are one category everywhere.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pydicom
import pytest
import yaml
from adversarial import (
    CANARIES,
    CAPPED_AGE,
    OLD_AGE,
    REASON_CANARIES,
    add_header_canaries,
    add_overlay_bits,
    clinical_files,
    compressed_slices,
    encode_dicom,
    rejected_slices,
)
from dicom_factory import add_phi, phi_values, synthesize_ct_series
from phi_scan import find_phi_leaks

from trialake.clinical import BronzeConfig, derive_adverse_events, derive_bronze_clinical, derive_labs, derive_subjects
from trialake.clinical.cleaning import CODE, COLUMN_POLICIES
from trialake.clinical.readers import ClinicalFileError, parse_clinical_file
from trialake.config import default_trial_config_path
from trialake.dicom import DeidParams, PrivateTag, SubjectKey, ingest_dicom_batch
from trialake.dicom.profile import SAFEGUARDS
from trialake.dicom.series import derive_ct_series, derive_series_rejections
from trialake.lake import open_lake, read_object, read_table
from trialake.pipeline.context import SECRET_OBJECT
from trialake.pseudonym import compute_date_shift_days, compute_pseudo_uid

SECRET = b"trialake-test-secret-0123456789ab"
USUBJID = "T-01-001"
KEY = pl.DataFrame({"SITEID": ["01"], "PATIENT_ID": ["MRN0042"], "USUBJID": [USUBJID]})
SAFE = PrivateTag("ACME SAFE", 0x0013, 0x02)
DM = f"STUDYID,DOMAIN,USUBJID,SUBJID,INVNAM,BRTHDTC,AGE,AGEU,SEX,RFSTDTC,ARMCD,ARM\nTRIAL,DM,{USUBJID},1001,Ada Blenkinsop,1925-01-02,95,YEARS,F,2020-03-01,UCMSC,UC-MSC\n"


# -- 1. stage level -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus() -> tuple[list[tuple[str, bytes]], dict[str, bytes], list[str]]:
    """(DICOM landing files, clinical landing files, every value that must not leak)."""
    series = synthesize_ct_series(patient_id="MRN0042", n_slices=3)
    for i, ds in enumerate(series):
        add_phi(ds, referenced_sop_uid=series[(i + 1) % 3].SOPInstanceUID)
        add_header_canaries(ds)
    add_overlay_bits(series[0])
    extra = [("dicom/compressed", ds) for ds in compressed_slices(series[1])] + rejected_slices(series[2])
    files = [(f"dicom/series/{i}.dcm", encode_dicom(ds)) for i, ds in enumerate(series)]
    files += [(f"{folder}/{i}.dcm", encode_dicom(ds)) for i, (folder, ds) in enumerate(extra)]
    clinical = clinical_files(USUBJID, "TRIAL") | {"clinical/dm.csv": DM.encode()}
    return files, clinical, sorted(set(CANARIES.values()) | set(phi_values(series)) | {OLD_AGE, "1925-01-02", "Blenkinsop"})


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _stage_outputs(root: Path, corpus, params: DeidParams, bronze: BronzeConfig = BronzeConfig()) -> Path:
    """What the nightly flow writes from the corpus, laid out under ``root`` (restricted/ included)."""
    files, clinical, _ = corpus
    result = ingest_dicom_batch(files, key=SubjectKey.from_frame(KEY), secret=SECRET, run_id="r", params=params)
    for instance in result.accepted:
        target = root / "bronze" / "dicom" / instance.object_name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(instance.data)
    (root / "silver").mkdir(parents=True)
    (root / "restricted").mkdir()
    result.instances_frame().write_parquet(root / "bronze" / "dicom_instances.parquet")
    subjects_frame = pl.DataFrame({"USUBJID": [USUBJID], "RFSTDT": [None]}, schema={"USUBJID": pl.String, "RFSTDT": pl.Date})
    series = derive_ct_series(result.instances_frame(), subjects_frame, run_id="r")
    series.write_parquet(root / "silver" / "ct_series.parquet")
    result.quarantine_frame().write_parquet(root / "restricted" / "quarantine.parquet")
    result.uid_map_frame().write_parquet(root / "restricted" / "uid_map.parquet")
    rejections = [result.rejections_frame(), derive_series_rejections(series)]
    shifts = pl.DataFrame({"USUBJID": [USUBJID], "shift_days": [compute_date_shift_days(SECRET, USUBJID)]})
    bronzes: dict[str, pl.DataFrame] = {}
    for name, data in clinical.items():
        try:
            parsed = parse_clinical_file(name, data)
            frame, rejected = derive_bronze_clinical(parsed, key=KEY, date_shift=shifts, source_sha256=_sha(data),
                                                     run_id="r", config=bronze)
        except ClinicalFileError as exc:
            rejections.append(pl.DataFrame({"source_sha256": [_sha(data)], "source_row": [None], "stage": ["clinical_read"],
                                            "reason": [str(exc)], "run_id": ["r"]}))
            continue
        bronzes[parsed.domain] = pl.concat([bronzes[parsed.domain], frame], how="diagonal") if parsed.domain in bronzes else frame
        rejections.append(rejected)
    for domain, frame in bronzes.items():
        frame.write_parquet(root / "silver" / f"bronze_{domain.lower()}.parquet")
    exposure = pl.DataFrame(schema={"USUBJID": pl.String, "EXSTDT": pl.Date, "EXENDT": pl.Date})
    subjects, rejected_dm = derive_subjects(bronzes["DM"], exposure=exposure)
    labs, rejected_lb = derive_labs(bronzes["LB"], subjects=subjects)
    events, rejected_ae = derive_adverse_events(bronzes["AE"], subjects=subjects)
    for name, frame in {"subjects": subjects, "labs": labs, "adverse_events": events}.items():
        frame.write_parquet(root / "silver" / f"{name}.parquet")
    rejections += [rejected_dm, rejected_lb, rejected_ae]
    pl.concat([r.cast({"source_row": pl.Int64}) for r in rejections], how="diagonal_relaxed").write_parquet(
        root / "silver" / "rejections.parquet")
    assert subjects["AGE"].to_list() == [90]
    return root


def test_the_corpus_leaves_no_canary_outside_restricted(tmp_path: Path, corpus) -> None:
    root = _stage_outputs(tmp_path, corpus, DeidParams(private_tag_allowlist=frozenset({SAFE})))
    _, _, canaries = corpus
    assert find_phi_leaks([root], canaries) == []
    assert find_phi_leaks([root / "restricted"], canaries)  # not a blind scanner: restricted/ holds them
    assert find_phi_leaks([root / "silver" / "rejections.parquet"], REASON_CANARIES.values()) == []
    assert find_phi_leaks([root / "silver" / "bronze_lb.parquet"], REASON_CANARIES.values())  # bronze keeps codes
    copies = [pydicom.dcmread(p) for p in (root / "bronze" / "dicom").rglob("*.dcm")]
    assert len(copies) == 5 and {c.get("PatientAge") for c in copies} == {CAPPED_AGE}


_COPIED = {  # an attribute rule removed (its bytes copied unchecked) -> the canary that comes back
    "SeriesDescription": CANARIES["descriptor digits after a decimal point"],
    "ProtocolName": CANARIES["descriptor month/day fragments"],
    "ImageComments": "23/11/1987",  # the canary 19871123 as the text spells it
    "InstitutionName": CANARIES["identifying attribute written as CS"],
    "OtherPatientIDs": CANARIES["identifying attribute written as IS"],
    "OperatorsName": CANARIES["identifying attribute written as AE"],
    "StudyDate": CANARIES["date with trailing text"],
    "AcquisitionDateTime": CANARIES["date-time with trailing text"],
    "FrameOfReferenceUID": CANARIES["unregistered UID under the DICOM root"],
    "ReferencedSOPInstanceUID": CANARIES["unregistered referenced UID under the DICOM root"],
    "EthnicGroup": CANARIES["ethnic group free text"],
    "PatientAge": OLD_AGE,
}
_UNGUARDED = {  # a safeguard switched off -> the canary that comes back
    "dictionary-vr": CANARIES["identifying attribute written as CS"],
    "strict-values": CANARIES["date with trailing text"],
    "registered-uids": CANARIES["unregistered UID under the DICOM root"],
    "code-items": CANARIES["code meaning"],
    "pixel-comments": CANARIES["JPEG comment"],
    "pixel-high-bits": "OVERLAY BITS SET",
}
_UNCLEANED = {  # a clinical column policy relaxed to "coded value" -> the canary that comes back
    "VISIT": CANARIES["visit free text"], "AESEV": CANARIES["severity free text"], "LBORRES": CANARIES["result free text"],
}


def test_every_safeguard_has_a_negative_control() -> None:
    assert set(_UNGUARDED) == SAFEGUARDS


@pytest.mark.parametrize(("case", "leaked"), [
    *[(("copy", keyword), canary) for keyword, canary in _COPIED.items()],
    *[(("safeguard", name), canary) for name, canary in _UNGUARDED.items()],
    *[(("policy", column), canary) for column, canary in _UNCLEANED.items()],
], ids=lambda value: f"{value[0]}-{value[1]}" if isinstance(value, tuple) else None)
def test_removing_any_one_rule_is_caught(tmp_path: Path, corpus, case: tuple[str, str], leaked: str) -> None:
    kind, name = case
    params, bronze = DeidParams(private_tag_allowlist=frozenset({SAFE})), BronzeConfig()
    if kind == "copy":
        params = DeidParams(private_tag_allowlist=frozenset({SAFE}), copy_keywords=frozenset({name}))
    elif kind == "safeguard":
        params = DeidParams(private_tag_allowlist=frozenset({SAFE}), safeguards=SAFEGUARDS - {name})
    else:
        bronze = BronzeConfig(column_policies={**COLUMN_POLICIES, name: CODE})
    findings = find_phi_leaks([_stage_outputs(tmp_path, corpus, params, bronze)], [*corpus[2], "OVERLAY BITS SET"])
    assert any(leaked.lower() in line.lower() for line in findings), findings
    assert all("/restricted/" not in line for line in findings)


# -- 2. the nightly flow -------------------------------------------------------------------------

MAX_SHIFT_DAYS = 1000  # not the default 365


def _subject_folder(landing: Path, truth: pl.DataFrame) -> tuple[str, Path]:
    """A site-1 subject (unsigned pixels) and the folder of its first scan."""
    row = truth.filter(pl.col("pixel_dtype") == "uint16").sort("USUBJID", "ADY").row(0, named=True)
    return row["USUBJID"], landing / row["folder"]


@pytest.fixture(scope="module")
def adversarial_run(small_trial: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, str]:
    """The generated trial plus the corpus, run by ``trialake run nightly`` with MAX_SHIFT_DAYS;
    (landing, lake, console log, the subject carrying the corpus)."""
    work = tmp_path_factory.mktemp("adversarial")
    landing = work / "landing"
    shutil.copytree(small_trial / "landing", landing)
    truth = pl.read_csv(small_trial / "truth" / "ct_series.csv")
    usubjid, folder = _subject_folder(landing, truth)
    slices = [pydicom.dcmread(p) for p in sorted(folder.iterdir())]
    for path, ds in zip(sorted(folder.iterdir()), slices):
        add_header_canaries(ds)
        add_overlay_bits(ds)
        path.write_bytes(encode_dicom(ds))
    for i, ds in enumerate(compressed_slices(slices[0])):
        (landing / "dicom" / "extra").mkdir(parents=True, exist_ok=True)
        (landing / "dicom" / "extra" / f"c{i}.dcm").write_bytes(encode_dicom(ds))
    for i, (where, ds) in enumerate(rejected_slices(slices[0])):
        (landing / where).mkdir(parents=True, exist_ok=True)
        (landing / where / f"r{i}.dcm").write_bytes(encode_dicom(ds))
    dm = pl.read_csv(landing / "clinical" / "dm.csv", infer_schema=False)
    dm = dm.with_columns(pl.when(pl.col("USUBJID") == usubjid).then(pl.lit("95")).otherwise(pl.col("AGE")).alias("AGE"))
    dm.write_csv(landing / "clinical" / "dm.csv")
    for name, data in clinical_files(usubjid, dm["STUDYID"][0]).items():
        (landing / name).write_bytes(data)
    config = yaml.safe_load(default_trial_config_path().read_text())
    config["deidentification"]["max_shift_days"] = MAX_SHIFT_DAYS
    (work / "trial.yaml").write_text(yaml.safe_dump(config))
    lake, console = work / "lake", work / "console.log"
    with console.open("wb") as out:
        subprocess.run([sys.executable, "-m", "trialake.cli", "run", "nightly", "--landing", str(landing),
                        "--lake", str(lake), "--config", str(work / "trial.yaml")],
                       stdout=out, stderr=subprocess.STDOUT, env=os.environ | {"PREFECT_LOGGING_LEVEL": "DEBUG"})
    return landing, lake, console, usubjid


pytestmark_flow = pytest.mark.xdist_group("prefect-flows")


@pytestmark_flow
def test_no_canary_or_phi_anywhere_outside_restricted(small_trial: Path, adversarial_run) -> None:
    _, lake, console, _ = adversarial_run
    phi = json.loads((small_trial / "truth" / "phi.json").read_text())["values"]
    values = sorted(set(phi) | set(CANARIES.values()) | {OLD_AGE, "OVERLAY BITS SET"})
    prefect_db = list(Path(os.environ["PREFECT_HOME"]).rglob("*.db"))
    assert prefect_db and read_table(open_lake(str(lake)), "bronze/dicom_instances").height > 0
    assert find_phi_leaks([lake, console, *prefect_db], values) == []
    assert find_phi_leaks([lake / "restricted"], values)
    # coded values that stay in bronze are never quoted in reasons, reports, logs or Prefect's database
    assert find_phi_leaks([lake / "silver" / "rejections", lake / "reports", console, *prefect_db],
                          REASON_CANARIES.values()) == []
    assert find_phi_leaks([lake / "bronze" / "lb"], REASON_CANARIES.values())


@pytestmark_flow
def test_every_landing_file_is_ingested_or_rejected(adversarial_run) -> None:
    landing, lake_dir, _, _ = adversarial_run
    lake = open_lake(str(lake_dir))
    shas = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (landing / "dicom").rglob("*") if p.is_file()}
    rejections = read_table(lake, "silver/rejections")
    settled = set(read_table(lake, "bronze/dicom_instances")["source_sha256"]) | set(rejections["source_sha256"])
    assert shas <= settled
    reasons = " ".join(rejections["reason"])
    assert "unregistered or private SOP class" in reasons and "not in the subject key" in reasons


@pytestmark_flow
def test_ct_study_days_and_dates_follow_the_configured_shift_range(small_trial: Path, adversarial_run) -> None:
    """With max_shift_days 1000, DICOM dates move by the same per-subject offset as the clinical
    dates: silver/ct_series study days equal the generator's, and the copies' dates are the
    original ones moved by the offset drawn from -1000..-1."""
    _, lake_dir, _, _ = adversarial_run
    lake = open_lake(str(lake_dir))
    secret = read_object(lake, SECRET_OBJECT)
    truth = pl.read_csv(small_trial / "truth" / "ct_series.csv", try_parse_dates=True).with_columns(
        pl.col("SeriesInstanceUID").map_elements(lambda uid: compute_pseudo_uid(secret, uid), return_dtype=pl.String)
        .alias("series_id"),
        pl.col("USUBJID").map_elements(lambda s: compute_date_shift_days(secret, s, max_days=MAX_SHIFT_DAYS),
                                       return_dtype=pl.Int64).alias("shift"))
    series = read_table(lake, "silver/ct_series").filter(pl.col("stack_kind") == "axial_volume")
    both = truth.join(series, on="series_id", how="left", suffix="_lake")
    assert both["ADY_lake"].to_list() == both["ADY"].to_list()
    expected = both.select(pl.col("ADT") + pl.duration(days=pl.col("shift")))["ADT"]
    assert both["acquisition_date"].to_list() == expected.to_list()
    assert read_table(lake, "restricted/date_shifts").sort("USUBJID")["shift_days"].to_list() == \
        truth.unique("USUBJID").sort("USUBJID")["shift"].to_list()


@pytestmark_flow
def test_ages_over_89_are_one_category_in_images_and_clinical_data(adversarial_run) -> None:
    _, lake_dir, _, usubjid = adversarial_run
    lake = open_lake(str(lake_dir))
    for table in ("bronze/dm", "silver/subjects"):
        ages = read_table(lake, table).filter(pl.col("USUBJID") == usubjid)["AGE"].cast(pl.Int64).to_list()
        assert ages == [90], table
        assert read_table(lake, table)["AGE"].cast(pl.Int64).max() <= 90
    adsl = [p for p in ("gold/adsl", "unblinded/gold/adsl") if (lake_dir / p).exists()]
    assert adsl and all(read_table(lake, p)["AGE"].max() <= 90 for p in adsl)
    copies = [p for p in (lake_dir / "bronze" / "dicom" / usubjid).rglob("*.dcm")]
    ages = {pydicom.dcmread(io.BytesIO(p.read_bytes()), stop_before_pixels=True).PatientAge for p in copies}
    assert CAPPED_AGE in ages and max(ages) == CAPPED_AGE  # the corpus' series said 095Y; the others are younger
