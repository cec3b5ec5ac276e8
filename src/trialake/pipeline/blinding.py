"""Publishing and reading tables in a blinded lake (see :mod:`trialake.blinding`).

``publish_blinded`` publishes a table whose treatment variables must not leave the unblinded
zone: in a blinded lake they go, validated by the expectations that read them, to
``unblinded/<name>``, and the rest of the table to its own place; in an unblinded lake the table
is published whole. ``read_with_treatment`` joins them back for the stages that need the arms.
The outcomes of unblinded-zone validations are returned without their Data Docs (whose value
sets would name the arms).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import polars as pl

from trialake.blinding import UNBLINDED_ZONE, expectation_columns, split_suite, split_treatment, treatment_columns
from trialake.lake import delete_partition, read_table, scan_table, table_exists, write_table
from trialake.pipeline.context import RunContext
from trialake.pipeline.quality import QualityGate, publish_checked
from trialake.quality import ValidationOutcome

ZONE = UNBLINDED_ZONE


def unblinded_table(table: str) -> str:
    """The unblinded zone's table for ``table`` (``silver/subjects`` -> ``unblinded/subjects``)."""
    return f"{ZONE}/{table.split('/', 1)[1]}"


def publish_blinded(
    ctx: RunContext,
    gate: QualityGate,
    table: str,
    frame: pl.DataFrame,
    *,
    keys: Sequence[str],
    source_sha256: str | None = None,
    **write_options: Any,
) -> list[ValidationOutcome]:
    """Validate and publish ``frame`` as ``table``, its treatment variables (with ``keys``) in the
    unblinded zone when the lake is blinded. Returns the outcomes to report: the public table's,
    and the unblinded part's only when it was held back (without Data Docs). When the unblinded
    part is held back, neither part is published; rows it quarantines (an arm not configured) are
    kept out of the public part too. ``write_options`` go to ``publish_checked`` for both parts."""
    if not ctx.settings.trial.blinded:
        return _present([publish_checked(ctx, gate, table, frame, source_sha256=source_sha256, **write_options)])
    hidden_table = unblinded_table(table)
    suite = gate.suites.get(table)
    public_suite, hidden_suite = split_suite(suite, unblinded_table=hidden_table) if suite else (None, None)
    public, hidden = split_treatment(frame, keys=keys, extra=expectation_columns(hidden_suite))
    outcomes = []
    if hidden is not None:
        hidden_gate = replace(gate, suites={hidden_table: hidden_suite} if hidden_suite else {})
        outcome = publish_checked(ctx, hidden_gate, hidden_table, hidden, source_sha256=source_sha256, **write_options)
        if outcome is not None and not outcome.should_publish:
            return [replace(outcome, gx_result=None)]
        if outcome is not None and outcome.quarantined:  # the two parts share their row order
            public = public.with_row_index("_dq_position").filter(
                ~pl.col("_dq_position").is_in(list(outcome.quarantined))).drop("_dq_position")
    public_gate = replace(gate, suites={table: public_suite} if public_suite else {})
    outcomes.append(publish_checked(ctx, public_gate, table, public, source_sha256=source_sha256, **write_options))
    return _present(outcomes)


def publish_public(ctx: RunContext, gate: QualityGate, table: str, frame: pl.DataFrame) -> ValidationOutcome | None:
    """Validate and publish ``frame`` without its treatment variables (a blinded lake's gold
    tables: their treatment part is published only when the trial is unblinded)."""
    suite = gate.suites.get(table)
    public, _ = split_treatment(frame, keys=[])
    public_suite = split_suite(suite, unblinded_table=unblinded_table(table))[0] if suite else None
    return publish_checked(ctx, replace(gate, suites={table: public_suite} if public_suite else {}), table, public)


def read_with_treatment(ctx: RunContext, table: str, *, keys: Sequence[str]) -> pl.DataFrame:
    """``table`` with its treatment variables joined back from the unblinded zone (when there)."""
    frame = read_table(ctx.lake, table)
    hidden_table = unblinded_table(table)
    if frame.is_empty() or not table_exists(ctx.lake, hidden_table):
        return frame
    hidden = read_table(ctx.lake, hidden_table)
    added = [c for c in hidden.columns if c not in frame.columns]
    if not added:
        return frame
    return frame.join(hidden.select(*keys, *added), on=list(keys), how="left", nulls_equal=True)


def delete_unblinded_partition(ctx: RunContext, table: str, partition: dict[str, str]) -> None:
    """Remove the unblinded zone's partition of ``table`` that goes with a removed one."""
    delete_partition(ctx.lake, unblinded_table(table), partition)


def blind_existing(ctx: RunContext, table: str, *, keys: Sequence[str]) -> bool:
    """In a blinded lake, move the treatment variables of an already published ``table`` (a lake
    written unblinded before) to the unblinded zone. Returns whether anything moved."""
    if not ctx.settings.trial.blinded or not table_exists(ctx.lake, table):
        return False
    if not treatment_columns(scan_table(ctx.lake, table).collect_schema().names()):  # footers only
        return False
    public, hidden = split_treatment(read_table(ctx.lake, table), keys=keys)
    write_table(ctx.lake, unblinded_table(table), hidden)
    write_table(ctx.lake, table, public)
    return True


def _present(outcomes: list[ValidationOutcome | None]) -> list[ValidationOutcome]:
    return [o for o in outcomes if o is not None]
