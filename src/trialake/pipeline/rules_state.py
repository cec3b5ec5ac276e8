"""Which de-identification rules and settings wrote the data of each landing area in a lake.

Data de-identified under other rules (an older version of this code) or other settings (another
date-shift range, shifting switched on or off) is ingested again by the next run. The lake secret
is the same, so every pseudonym and date offset is the same as before for the same settings: an
upgrade cleans more, it does not re-identify or rename anything.
"""
from __future__ import annotations

import json

from trialake.lake import read_object, write_object
from trialake.pipeline.context import RunContext

STATE = "_state/deid_{area}"


def compute_rules_fingerprint(ctx: RunContext, version: str) -> str:
    """The rules version and the trial's de-identification settings, as one string."""
    return json.dumps({"rules": version, "deidentification": ctx.settings.trial.deidentification.model_dump()},
                      sort_keys=True)


def is_written_under_other_rules(ctx: RunContext, area: str, version: str) -> bool:
    """Whether the area's data in the lake was de-identified under other rules or settings (or by a
    version that did not record them, or never)."""
    marker = STATE.format(area=area)
    if not ctx.lake.fs.exists(ctx.lake.path(marker)):
        return True
    return read_object(ctx.lake, marker).decode() != compute_rules_fingerprint(ctx, version)


def mark_rules(ctx: RunContext, area: str, version: str) -> None:
    """Record that the area's data is de-identified under the current rules and settings."""
    write_object(ctx.lake, STATE.format(area=area), compute_rules_fingerprint(ctx, version).encode())
