"""``generate_trial``: write a synthetic trial's landing area and its ground truth.

This module is the generator's only I/O edge: everything else renders bytes.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trialake.synth import clinical, ct, effects, labs, mess
from trialake.synth.clinical import Pair
from trialake.synth.formats import Cell, render_csv
from trialake.synth.identity import Identity, PhiLedger, compute_age, make_identity
from trialake.synth.model import SubjectPlan, compute_date_for_day, plan_trial
from trialake.synth.params import SynthParams
from trialake.synth.phantom import Phantom, PhantomSpec, make_chest_phantom

TRUTH_VOLUMES = ("lung_volume_ml", "lesion_volume_ml", "ggo_volume_ml", "solid_volume_ml", "lesion_pct", "ggo_pct",
                 "solid_pct", "left_lung_volume_ml", "right_lung_volume_ml")
CT_COLUMNS = (
    "USUBJID", "SITEID", "ARMCD", "VISIT", "window", "VISITNUM", "ADY", "ADT", "analysis", "StudyInstanceUID",
    "SeriesInstanceUID", "folder", "n_files", "rows", "columns", "pixel_spacing_mm", "slice_spacing_mm",
    "slice_thickness_mm", "feet_first", "pixel_dtype", "rescale_intercept", "rescale_slope", "fov_mm", "noise_hu",
    "blur_mm", "body_scale", "target_lesion_pct", "target_solid_share", "chest_wall_consolidation", "phantom_seed",
    *TRUTH_VOLUMES,
)
SUBJECT_COLUMNS = ("USUBJID", "SITEID", "ARMCD", "ARM", "SEX", "AGE", "RFICDTC", "RFSTDTC", "RFENDTC", "n_ct_series")
CT_PARAMS = {"LUNGVOL": ("lung_volume_ml", "mL"), "LESVOL": ("lesion_volume_ml", "mL"),
             "GGOVOL": ("ggo_volume_ml", "mL"), "SOLVOL": ("solid_volume_ml", "mL"), "LESPCT": ("lesion_pct", "%"),
             "GGOPCT": ("ggo_pct", "%"), "SOLPCT": ("solid_pct", "%")}
ENDPOINT_COLUMNS = ("USUBJID", "ARMCD", "PARAMCD", "AVISIT", "ADY", "ADT", "AVAL", "AVALU", "BASE", "CHG", "PCHG")


@dataclass(frozen=True)
class GeneratedTrial:
    """What ``generate_trial`` wrote."""

    landing: Path
    truth: Path
    n_subjects: int
    arms: tuple[tuple[str, int], ...]  # (ARMCD, subjects)
    n_sites: int
    n_series: int
    n_dicom_files: int
    n_lab_rows: int
    n_bad_lab_rows: int

    def describe(self) -> str:
        """One line for the console."""
        arms = ", ".join(f"{n} {armcd}" for armcd, n in self.arms)
        return (f"{self.n_subjects} subjects ({arms}) at {self.n_sites} sites; {self.n_series} CT series, "
                f"{self.n_dicom_files} DICOM files; {self.n_lab_rows} lab rows "
                f"({self.n_bad_lab_rows} deliberately bad)")


def _check(name: str, ok: bool, problem: str) -> None:
    if not ok:
        raise ValueError(f"{name}: {problem}")


def _put(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _prepare(out_dir: Path, overwrite: bool) -> tuple[Path, Path]:
    landing, truth = out_dir / "landing", out_dir / "truth"
    for target in (landing, truth):
        if target.exists() and any(target.iterdir()):
            _check("out_dir", overwrite, f"{target} exists and is not empty (pass overwrite=True to replace it)")
            shutil.rmtree(target)
    return landing, truth


def _phantom_spec(subject: SubjectPlan, scan_index: int, matrix: int, slices: int, params: SynthParams) -> PhantomSpec:
    scan = subject.scans[scan_index]
    return PhantomSpec(
        matrix=matrix, slices=slices, fov_mm=params.scan.fov_mm, slice_spacing_mm=params.scan.z_extent_mm / slices,
        body_scale=subject.body_scale, lesion_pct=scan.lesion_pct, solid_share=scan.solid_share,
        chest_wall_consolidation=subject.chest_wall_consolidation, feet_first=subject.feet_first,
        noise_hu=params.scan.noise_hu, blur_mm=params.scan.blur_mm, seed=scan.phantom_seed,
    )


def _ct_row(
    subject: SubjectPlan, scan_index: int, spec: PhantomSpec, phantom: Phantom, folder: str, uids: ct.SeriesUids
) -> dict[str, Cell]:
    scan = subject.scans[scan_index]
    storage = ct.SITE_STORAGE[subject.site_index]
    dz, dy, dx = phantom.spacing_mm
    return {
        "USUBJID": subject.usubjid, "SITEID": subject.siteid, "ARMCD": subject.arm.armcd, "VISIT": scan.visit,
        "window": scan.window, "VISITNUM": f"{scan.visitnum:g}", "ADY": scan.study_day, "ADT": f"{scan.date:%Y-%m-%d}",
        "analysis": "Y" if scan.analysis else "N", "StudyInstanceUID": uids.study, "SeriesInstanceUID": uids.series,
        "folder": folder, "n_files": phantom.hu.shape[0], "rows": phantom.hu.shape[1], "columns": phantom.hu.shape[2],
        "pixel_spacing_mm": dy, "slice_spacing_mm": dz, "slice_thickness_mm": dz,
        "feet_first": "Y" if spec.feet_first else "N",
        "pixel_dtype": np.dtype(storage.dtype).name, "rescale_intercept": storage.intercept,
        "rescale_slope": storage.slope, "fov_mm": spec.fov_mm, "noise_hu": spec.noise_hu, "blur_mm": spec.blur_mm,
        "body_scale": spec.body_scale, "target_lesion_pct": spec.lesion_pct,
        "target_solid_share": spec.solid_share,
        "chest_wall_consolidation": "Y" if spec.chest_wall_consolidation else "N",
        "phantom_seed": spec.seed, **{k: phantom.truth[k] for k in TRUTH_VOLUMES},
    }


@dataclass(frozen=True)
class _SeriesJob:
    """One scan to synthesize and write (picklable, for worker processes)."""

    landing: Path
    subject: SubjectPlan
    identity: Identity
    scan_index: int
    seed: int
    matrix: int
    slices: int
    params: SynthParams


def _run_series_job(job: _SeriesJob) -> dict[str, Cell]:
    """Phantom -> DICOM files on disk; returns the scan's truth row."""
    spec = _phantom_spec(job.subject, job.scan_index, job.matrix, job.slices, job.params)
    phantom = make_chest_phantom(spec)
    for relpath, data in ct.render_series(job.subject, job.identity, job.scan_index, phantom, job.seed):
        _put(job.landing / relpath, data)
    uids = ct.compute_series_uids(job.seed, job.subject.usubjid, job.scan_index)
    folder = ct.compute_series_folder(job.subject, job.identity, job.scan_index)
    return _ct_row(job.subject, job.scan_index, spec, phantom, folder, uids)


def _write_ct(jobs: Sequence[_SeriesJob], workers: int) -> list[dict[str, Cell]]:
    """Run the series jobs, in ``workers`` processes when more than one (results in job order)."""
    if workers <= 1:
        return [_run_series_job(job) for job in jobs]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return list(pool.map(_run_series_job, jobs, chunksize=max(1, len(jobs) // (8 * workers))))


def _table(columns: Sequence[str], rows: Sequence[dict[str, Cell]]) -> bytes:
    return render_csv(columns, [[row[c] for c in columns] for row in rows])


def _subject_rows(pairs: Sequence[Pair], params: SynthParams) -> list[dict[str, Cell]]:
    rows = []
    for s, i in pairs:
        last = compute_date_for_day(s.first_dose_date, max(params.dosing_days))
        rows.append({"USUBJID": s.usubjid, "SITEID": s.siteid, "ARMCD": s.arm.armcd, "ARM": s.arm.arm, "SEX": s.sex,
                     "AGE": compute_age(i.birth_date, s.consent_date), "RFICDTC": f"{s.consent_date:%Y-%m-%d}",
                     "RFSTDTC": f"{s.first_dose_date:%Y-%m-%d}", "RFENDTC": f"{last:%Y-%m-%d}",
                     "n_ct_series": len(s.scans)})
    return rows


def _write_clinical(
    landing: Path, truth: Path, pairs: Sequence[Pair], seed: int, n_sites: int, params: SynthParams, ledger: PhiLedger
) -> list[dict[str, Cell]]:
    """Key, EDC domains and site lab files, with the configured mess (``params.mess``); writes
    truth/quarantine.csv, truth/mess.json and truth/late_dm.csv. Returns the lab truth rows."""
    _put(landing / "keys/subject_key.csv", clinical.render_subject_key(pairs, ledger))
    plan = mess.plan_mess(params.mess, seed, [s.usubjid for s, _ in pairs])
    consent = {s.usubjid: s.consent_date for s, _ in pairs}
    edc = {"dm": clinical.build_dm_table(pairs, params, ledger), "ex": clinical.build_ex_table(pairs, params),
           "sv": clinical.build_sv_table(pairs, params), "ft": clinical.build_ft_table(pairs, params),
           "re": clinical.build_re_table(pairs, params, n_sites), "ae": clinical.build_ae_table(pairs, params, seed, ledger)}
    quarantine: list[dict[str, Cell]] = []
    added: list[dict[str, Cell]] = []
    for domain, table in edc.items():
        (header, rows), late, rejected, copies = mess.apply_to_table(plan, domain, table, consent)
        added += copies
        _put(landing / f"clinical/{domain}.csv", render_csv(header, rows))
        if late is not None:
            _put(truth / "late_dm.csv", render_csv(*late))
        quarantine += rejected
    lab_truth: list[dict[str, Cell]] = []
    for site_index in range(n_sites):
        site_pairs = [(s, i) for s, i in pairs if s.site_index == site_index]
        rows = labs.build_site_lab_rows(site_index, site_pairs, params.lab_visits, seed)
        data, site_truth = labs.render_site_lab_file(site_index, mess.apply_to_lab_rows(plan, site_index, rows, consent), ledger)
        _put(landing / f"clinical/{labs.LAB_FILE_NAMES[site_index]}", data)
        lab_truth += site_truth
    quarantine += mess.lab_quarantine_truth(lab_truth)
    _put(truth / "quarantine.csv", _table(mess.QUARANTINE_COLUMNS, quarantine))
    _put(truth / "mess.json", (json.dumps(mess.describe(plan, added + mess.lab_added_rows(lab_truth)), indent=1) + "\n").encode())
    return lab_truth


def _write_truth(
    truth: Path,
    pairs: Sequence[Pair],
    ct_rows: Sequence[dict[str, Cell]],
    lab_rows: Sequence[dict[str, Cell]],
    n_sites: int,
    params: SynthParams,
    generator: dict[str, int],
) -> None:
    """truth/: subjects, ct_series, labs, endpoints (CSV) and effects (JSON); phi.json is written last."""
    functional = clinical.measurement_rows(pairs, n_sites)
    endpoint_rows = effects.build_endpoint_rows(pairs, ct_rows, functional, params, CT_PARAMS)
    _put(truth / "subjects.csv", _table(SUBJECT_COLUMNS, _subject_rows(pairs, params)))
    _put(truth / "ct_series.csv", _table(CT_COLUMNS, ct_rows))
    _put(truth / "labs.csv", _table(labs.TRUTH_COLUMNS, lab_rows))
    _put(truth / "endpoints.csv", _table(ENDPOINT_COLUMNS, endpoint_rows))
    doc = effects.build_effects(params, endpoint_rows, generator)
    _put(truth / "effects.json", (json.dumps(doc, indent=1, default=str) + "\n").encode())


def _validate(subjects: int, matrix: int, slices: int, sites: int, params: SynthParams) -> None:
    _check("sites", sites in (2, 3), f"must be 2 or 3, got {sites}")
    _check("subjects", sites <= subjects <= 999 * sites, f"must be in {sites}..{999 * sites}, got {subjects}")
    _check("matrix", 32 <= matrix <= 1024, f"must be in 32..1024, got {matrix}")
    min_slices = int(np.ceil(params.scan.z_extent_mm / 20.0))  # the phantom allows up to 20 mm between slices
    _check("slices", min_slices <= slices <= 2000, f"must be in {min_slices}..2000, got {slices}")


def generate_trial(
    out_dir: Path,
    *,
    subjects: int = 100,
    seed: int = 0,
    matrix: int = 64,
    slices: int = 40,
    sites: int = 3,
    params: SynthParams | None = None,
    overwrite: bool = False,
    workers: int | None = None,
) -> GeneratedTrial:
    """Write ``out_dir/landing`` (DESIGN.md landing CONTRACT) and ``out_dir/truth``; same seed, same bytes.

    ``matrix`` x ``matrix`` pixels and ``slices`` slices per CT series (the scanned length is
    ``params.scan.z_extent_mm``, so at least 15 slices); ``sites`` is 2 or 3. An existing non-empty
    landing or truth folder is an error unless ``overwrite``. CT series are made in ``workers``
    processes (default: one per CPU, up to 4, when there are at least 32 series); the bytes written
    do not depend on it.
    """
    params = params or SynthParams()
    _validate(subjects, matrix, slices, sites, params)
    landing, truth = _prepare(Path(out_dir), overwrite)
    pairs = [(plan, make_identity(plan, seed)) for plan in plan_trial(subjects, sites, seed, params)]
    jobs = [_SeriesJob(landing, s, i, k, seed, matrix, slices, params) for s, i in pairs for k in range(len(s.scans))]
    if workers is None:
        workers = min(4, os.cpu_count() or 1) if len(jobs) >= 32 else 1
    ct_rows = _write_ct(jobs, workers)
    ledger = PhiLedger()
    for job in jobs:
        ct.record_series_phi(ledger, job.subject, job.identity, job.scan_index, seed, slices)
    lab_rows = _write_clinical(landing, truth, pairs, seed, sites, params, ledger)
    generator = {"subjects": subjects, "seed": seed, "matrix": matrix, "slices": slices, "sites": sites}
    _write_truth(truth, pairs, ct_rows, lab_rows, sites, params, generator)
    _put(truth / "phi.json", ledger.render_json())
    arms = Counter(s.arm.armcd for s, _ in pairs)
    return GeneratedTrial(
        landing=landing, truth=truth, n_subjects=subjects, arms=tuple((a.armcd, arms[a.armcd]) for a in params.arms),
        n_sites=sites, n_series=len(ct_rows), n_dicom_files=len(ct_rows) * slices, n_lab_rows=len(lab_rows),
        n_bad_lab_rows=sum(r["status"] == "rejected" for r in lab_rows),
    )
