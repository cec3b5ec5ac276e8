"""The nightly pipeline's stages as plain functions (lake I/O at the edges, library logic inside).

Prefect never appears here: `tasks/` wraps each stage in a task, `flows/` composes them. Each
stage takes a `RunContext` and returns a small summary that the flow passes on.
"""
from trialake.pipeline.context import RunContext, list_landing_areas, open_run, open_storage

__all__ = ["RunContext", "list_landing_areas", "open_run", "open_storage"]
