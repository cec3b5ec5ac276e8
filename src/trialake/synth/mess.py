"""Deliberate mess in the clinical exports (see ``MessParams``) and the truth of what the lake must
keep out of silver: ``truth/quarantine.csv``, one row per landing row with the stage that rejects
or quarantines it and why.

Mess never changes a row of the clean trial: it adds copies (exact duplicates, copies with an
unknown unit, a month-only date, or a date before consent), leaves an Expected variable out, or
holds DM records back. Rows the clean trial already dates before consent (a baseline visit on the
day before first dose, when consent was the same day) are quarantined too, unless RFICDTC is left
out. Pure: tables and rows in, tables, rows and truth out; the random stream is the generator
seed's own, so a clean trial (all rates 0) is byte for byte what it was without this module.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date, timedelta

import numpy as np

from trialake.synth.clinical import Table
from trialake.synth.formats import Cell
from trialake.synth.labs import LabRow, compute_site_date
from trialake.synth.model import STREAM_MESS
from trialake.synth.params import MessParams

QUARANTINE_COLUMNS = ("file", "source_row", "stage", "rule")
#: Expected variables an export may leave out (none of them changes a value the lake derives).
DROPPABLE = {"dm": ("RFICDTC", "RACE"), "ex": ("EXENDTC",), "sv": ("SVENDTC",), "ft": ("FTTEST",), "re": ("RETEST",),
             "ae": ("AEREL", "AEBODSYS")}
_DATE = {"ex": "EXSTDTC", "sv": "SVSTDTC", "ft": "FTDTC", "re": "REDTC", "ae": "AESTDTC"}
_UNIT = {"ft": "FTORRESU", "re": "REORRESU"}
#: silver table whose suite has a row rule ``not_before_consent`` (AE start: a warning only).
_CONSENT_CHECKED = {"ex": "exposure", "sv": "visits", "ft": "sixmwt", "re": "lung_function"}
#: silver table whose suite quarantines a row without a complete date (elsewhere the derivation rejects it).
_DATE_CHECKED = {"ft": "sixmwt", "re": "lung_function"}
UNKNOWN_UNIT = "mmol/h"  # no mapping converts it to metres or litres
_LAB_STAGE = {"unknown_subject": "clinical_read", "invalid_date": "clinical_read"}


@dataclass(frozen=True)
class Plan:
    """What the mess of one trial does, drawn once: variables left out per export, DM held back."""

    params: MessParams
    rng_seed: int
    dropped: Mapping[str, str]
    late: frozenset[str]

    @property
    def consent_sent(self) -> bool:
        return self.dropped.get("dm") != "RFICDTC"

    def rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng([self.rng_seed, STREAM_MESS, *key])


def plan_mess(params: MessParams, seed: int, usubjids: Sequence[str]) -> Plan:
    """Draw the variables to leave out and the subjects whose DM record arrives late."""
    rng = np.random.default_rng([seed, STREAM_MESS])
    dropped = {}
    for domain, candidates in DROPPABLE.items():
        if rng.random() < params.missing_expected:
            dropped[domain] = candidates[int(rng.integers(len(candidates)))]
    late = frozenset(u for u in usubjids if rng.random() < params.late_dm)
    return Plan(params, seed, dropped, late)


def apply_to_table(
    plan: Plan, domain: str, table: Table, consent: Mapping[str, date]
) -> tuple[Table, Table | None, list[dict[str, Cell]], list[dict[str, Cell]]]:
    """(the export as landed, the DM rows held back for later or None, quarantine truth rows, the
    rows the mess added: file, source_row, kind)."""
    header, rows = table
    rng = plan.rng(_domain_key(domain))
    subject = header.index("USUBJID")
    marked: list[tuple[list[Cell], str | None]] = []
    first_copy_done: set[str] = set()
    for row in rows:
        marked.append((row, None))
        p = plan.params
        if domain in _UNIT and rng.random() < p.unknown_unit:
            marked.append((_with(header, row, _UNIT[domain], UNKNOWN_UNIT), "unknown_unit"))
        if domain in ("ft", "ae") and rng.random() < p.partial_date:
            marked.append((_with(header, row, _DATE[domain], str(row[header.index(_DATE[domain])])[:7]), "partial_date"))
        usubjid = str(row[subject])
        if domain == "ft" and usubjid not in first_copy_done and rng.random() < p.before_consent:
            early = consent[usubjid] - timedelta(days=int(rng.integers(1, 4)))
            marked.append((_with(header, row, _DATE[domain], f"{early:%Y-%m-%d}"), "before_consent"))
        first_copy_done.add(usubjid)
        if rng.random() < p.duplicate:
            marked.append((list(row), "duplicate"))
    late_rows = None
    if domain == "dm":
        late_rows = [row for row, _ in marked if row[subject] in plan.late]
        marked = [(row, mark) for row, mark in marked if row[subject] not in plan.late]
    if domain in plan.dropped:
        keep = [i for i, name in enumerate(header) if name != plan.dropped[domain]]
        header = tuple(header[i] for i in keep)
        marked = [([row[i] for i in keep], mark) for row, mark in marked]
        late_rows = [[row[i] for i in keep] for row in late_rows] if late_rows is not None else None
    truth = [
        {"file": f"{domain}.csv", "source_row": n, "stage": stage, "rule": rule}
        for n, (row, mark) in enumerate(marked, start=1)
        if (verdict := _edc_verdict(plan, domain, header, row, mark, consent)) is not None
        for stage, rule in [verdict]
    ]
    added = [{"file": f"{domain}.csv", "source_row": n, "kind": mark} for n, (_, mark) in enumerate(marked, start=1) if mark]
    landed = (header, [row for row, _ in marked])
    return landed, (header, late_rows) if late_rows is not None else None, truth, added


def _edc_verdict(
    plan: Plan, domain: str, header: tuple[str, ...], row: list[Cell], mark: str | None, consent: Mapping[str, date]
) -> tuple[str, str] | None:
    """(stage, rule) that keeps an EDC row out of silver, in the order the lake applies them:
    exact duplicates and derivation rejections, then rows without a DM record, then row rules."""
    stage = f"clinical_{domain}"
    usubjid = str(row[header.index("USUBJID")])
    if mark in ("duplicate", "unknown_unit") or (mark == "partial_date" and domain not in _DATE_CHECKED):
        return stage, mark
    if domain != "dm" and usubjid in plan.late:
        return stage, "no_dm_record"
    if mark == "partial_date":
        return f"dq_silver_{_DATE_CHECKED[domain]}", "test_date_present"
    if domain in _CONSENT_CHECKED and plan.consent_sent:
        when = date.fromisoformat(str(row[header.index(_DATE[domain])]))
        if when < consent[usubjid]:
            return f"dq_silver_{_CONSENT_CHECKED[domain]}", "not_before_consent"
    return None


def apply_to_lab_rows(plan: Plan, site_index: int, rows: Sequence[LabRow], consent: Mapping[str, date]) -> list[LabRow]:
    """The site's lab rows with copies added (before consent, month-only date, exact duplicate),
    each row's truth carrying ``quarantine``: the rule that keeps it out of silver/labs beyond the
    five bad-row categories (``not_before_consent``, ``result_date_present``, ``duplicate``,
    ``no_dm_record``), or None; and ``added``: the kind of copy, or None for a row of the clean trial."""
    rng = plan.rng(100 + site_index)
    out: list[LabRow] = []
    seen: set[str] = set()
    p = plan.params
    for row in rows:
        out.append(row)
        usubjid = row.truth["USUBJID"]
        if row.truth["status"] != "ok":
            continue
        if rng.random() < p.partial_date:
            out.append(replace(row, dtc=str(row.truth["LBDT"])[:7], truth={**row.truth, "LBDT": None, "added": "partial_date"}))
        if usubjid not in seen and rng.random() < p.before_consent:
            early = consent[usubjid] - timedelta(days=int(rng.integers(1, 4)))
            dtc = compute_site_date(early, 8 * 60, site_index)
            out.append(replace(row, dtc=dtc, truth={**row.truth, "LBDT": f"{early:%Y-%m-%d}", "added": "before_consent"}))
        seen.add(usubjid)
        if rng.random() < p.duplicate:
            out.append(replace(row, truth={**row.truth, "added": "duplicate"}))
    return [replace(r, truth=_lab_truth(plan, r.truth, consent)) for r in out]


def _lab_truth(plan: Plan, truth: Mapping[str, Cell], consent: Mapping[str, date]) -> dict[str, Cell]:
    """A lab row's truth with ``quarantine`` set (see ``apply_to_lab_rows``)."""
    mark, usubjid = truth.get("added"), truth["USUBJID"]
    quarantine = None
    if truth["status"] == "ok":
        if mark == "duplicate":
            quarantine = "duplicate"
        elif usubjid in plan.late:
            quarantine = "no_dm_record"
        elif mark == "partial_date":
            quarantine = "result_date_present"
        elif plan.consent_sent and date.fromisoformat(str(truth["LBDT"])) < consent[str(usubjid)]:
            quarantine = "not_before_consent"
    return {**truth, "added": mark, "quarantine": quarantine}


def lab_quarantine_truth(lab_truth: Sequence[Mapping[str, Cell]]) -> list[dict[str, Cell]]:
    """quarantine.csv rows of the lab files: the five bad-row categories and the quarantined rows."""
    out = []
    for row in lab_truth:
        if row["status"] != "ok":
            out.append({"file": row["file"], "source_row": row["source_row"],
                        "stage": _LAB_STAGE.get(str(row["category"]), "labs"), "rule": row["category"]})
        elif row["quarantine"] is not None:
            stage = "labs" if row["quarantine"] in ("duplicate", "no_dm_record") else "dq_silver_labs"
            out.append({"file": row["file"], "source_row": row["source_row"], "stage": stage, "rule": row["quarantine"]})
    return out


def lab_added_rows(lab_truth: Sequence[Mapping[str, Cell]]) -> list[dict[str, Cell]]:
    """The lab rows the mess added: file, source_row, kind."""
    return [{"file": r["file"], "source_row": r["source_row"], "kind": r["added"]} for r in lab_truth if r["added"]]


def describe(plan: Plan, added: Sequence[Mapping[str, Cell]]) -> dict[str, object]:
    """truth/mess.json: the rates, the variables left out per export (by domain), the subjects
    whose DM record is late, and every row the mess added (file, source_row, kind)."""
    return {"rates": asdict(plan.params), "dropped": dict(plan.dropped), "late_dm": sorted(plan.late), "added": list(added)}


def _with(header: tuple[str, ...], row: list[Cell], column: str, value: Cell) -> list[Cell]:
    copy = list(row)
    copy[header.index(column)] = value
    return copy


def _domain_key(domain: str) -> int:
    return sum(ord(c) << (8 * i) for i, c in enumerate(domain))
