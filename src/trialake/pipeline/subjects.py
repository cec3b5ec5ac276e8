"""The subject key (site MRN -> USUBJID) and the per-subject date shifts, kept in restricted/."""
from __future__ import annotations

import io

import polars as pl

from trialake.dicom import SubjectKey
from trialake.dicom.subject_key import KEY_COLUMNS
from trialake.lake import read_landing_bytes, write_table
from trialake.pipeline.context import RunContext
from trialake.pipeline.inventory import KEY_PATH
from trialake.pseudonym import compute_date_shift_days


class SubjectKeyError(ValueError):
    """The subject key cannot be used; the message names the file and the problem (no values)."""


def parse_subject_key(data: bytes) -> pl.DataFrame:
    """SITEID, PATIENT_ID, USUBJID as trimmed strings, validated by `SubjectKey.from_frame`."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SubjectKeyError(f"{KEY_PATH}: not UTF-8 text (byte {exc.start})") from exc
    frame = pl.read_csv(io.StringIO(text), infer_schema=False)
    frame = frame.rename({c: c.strip().upper() for c in frame.columns})
    missing = [c for c in KEY_COLUMNS if c not in frame.columns]
    if missing:
        raise SubjectKeyError(f"{KEY_PATH}: missing column(s) {', '.join(missing)}")
    frame = frame.select(pl.col(c).str.strip_chars() for c in KEY_COLUMNS).sort("USUBJID")
    try:
        SubjectKey.from_frame(frame)
    except ValueError as exc:
        raise SubjectKeyError(f"{KEY_PATH}: {exc}") from exc
    return frame


def compute_date_shifts(key: pl.DataFrame, secret: bytes, *, enabled: bool, max_days: int) -> pl.DataFrame:
    """USUBJID -> shift_days (0 for everyone when date shifting is off)."""
    subjects = key["USUBJID"].unique().sort().to_list()
    shifts = [compute_date_shift_days(secret, s, max_days=max_days) if enabled else 0 for s in subjects]
    return pl.DataFrame({"USUBJID": subjects, "shift_days": shifts}, schema={"USUBJID": pl.String, "shift_days": pl.Int64})


def load_subject_key(ctx: RunContext) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read the landing key, publish it and the date shifts to restricted/; returns both."""
    data = read_landing_bytes(ctx.landing, [KEY_PATH]).get(KEY_PATH) if ctx.landing.fs.exists(ctx.landing.path(KEY_PATH)) else None
    if data is None:
        raise SubjectKeyError(f"{KEY_PATH}: not found in the landing area")
    key = parse_subject_key(data)
    deid = ctx.settings.trial.deidentification
    shifts = compute_date_shifts(key, ctx.secret, enabled=deid.shift_dates, max_days=deid.max_shift_days)
    write_table(ctx.lake, "restricted/subject_key", key)
    write_table(ctx.lake, "restricted/date_shifts", shifts)
    return key, shifts
