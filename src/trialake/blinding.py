"""Blinding: which variables reveal the treatment assignment, and how a table and its quality
suite are split into a public part and a part for the unblinded zone.

In a blinded lake (trial configuration ``blinding: blinded``) the treatment assignment and every
arm-level result live only under ``<lake>/unblinded/``: a table with a variable of
``TREATMENT_VARIABLES`` is published without it, and those variables, with the keys that join
them back, go to ``unblinded/<table name>``. Doses count as treatment variables: a dose of 0 is a
placebo.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

import polars as pl

from trialake.quality.spec import SuiteSpec

UNBLINDED_ZONE = "unblinded"
"""The lake prefix of the treatment assignment and arm-level results (access granted separately)."""
TREATMENT_VARIABLES = frozenset({
    # SDTM DM and EX
    "ARMCD", "ARM", "ACTARMCD", "ACTARM", "ARMNRS", "ACTARMUD", "EXTRT", "EXDOSE", "EXDOSU", "EXDOSTXT",
    # ADaM
    "TRT01P", "TRT01PN", "TRT01A", "TRT01AN", "TRTP", "TRTPN", "TRTA", "TRTAN", "TRTSEQP", "TRTSEQA",
})


def treatment_columns(columns: Iterable[str]) -> list[str]:
    """The columns among ``columns`` that reveal the treatment assignment, in their order."""
    return [c for c in columns if c in TREATMENT_VARIABLES]


def split_treatment(
    frame: pl.DataFrame, *, keys: Sequence[str], extra: Iterable[str] = ()
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """(``frame`` without its treatment columns, the keys + ``extra`` + treatment columns), the
    second None when ``frame`` has no treatment column. Raises ValueError for a missing key."""
    missing = [k for k in keys if k not in frame.columns]
    if missing:
        raise ValueError(f"keys: {missing} not in the frame's columns")
    hidden = treatment_columns(frame.columns)
    if not hidden:
        return frame, None
    kept = list(dict.fromkeys([*keys, *(c for c in extra if c in frame.columns and c not in hidden), *hidden]))
    return frame.drop(hidden), frame.select(kept)


def split_suite(suite: SuiteSpec, *, unblinded_table: str) -> tuple[SuiteSpec, SuiteSpec | None]:
    """(the suite without anything that reads a treatment variable, the expectations that do as a
    suite of ``unblinded_table``; None when there are none).

    Neither part keys its failing rows by a treatment variable, so that no arm code reaches
    silver/dq_results. The second part keeps the context joins and derivations (the validation
    skips those whose inputs are absent).
    """
    reads_treatment = [bool(e.columns() & TREATMENT_VARIABLES) for e in suite.expectations]
    keys = tuple(k for k in suite.keys if k not in TREATMENT_VARIABLES)
    public = replace(
        suite,
        keys=keys,
        expectations=tuple(e for e, hidden in zip(suite.expectations, reads_treatment) if not hidden),
        schema={c: t for c, t in suite.schema.items() if c not in TREATMENT_VARIABLES},
    )
    if not any(reads_treatment):
        return public, None
    expectations = tuple(e for e, hidden in zip(suite.expectations, reads_treatment) if hidden)
    columns = set(keys).union(*(e.columns() for e in expectations))
    treatment = replace(
        suite,
        table=unblinded_table,
        keys=keys,
        expectations=expectations,
        schema={c: t for c, t in suite.schema.items() if c in columns},
        description=f"{suite.description} (treatment variables, unblinded zone)".strip(),
    )
    return public, treatment


def expectation_columns(suite: SuiteSpec | None) -> frozenset[str]:
    """Every column the expectations of ``suite`` read (empty for None)."""
    return frozenset().union(*(e.columns() for e in suite.expectations)) if suite else frozenset()
