"""What the command line shows while a run works and when it ends.

Progress: the stage tasks log events (``progress_extra``) that a logging handler turns into a rich
progress display on a terminal (current stage, DICOM files ingested of total, series measured of
total) or, when the output is not a terminal, into plain lines. The summary: one screen that says
what the run took in, measured, published and held back, where the reports are, and the exit status.
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from trialake.pipeline.run_report import RunReport

#: The attribute of a log record that carries a progress event ({"task", "total", "advance"}).
PROGRESS_KEY = "trialake_progress"
#: Progress counters people follow, in display order.
DICOM_FILES = "DICOM files ingested"
SERIES = "CT series measured"
#: Exit codes of `trialake run nightly`, as printed by the summary and `--help`.
EXIT_CODES = {
    0: "everything publishable was published (rejected files and rows are in silver/rejections)",
    1: "a table was held back or a stage failed; everything else was published",
    2: "could not start (configuration, landing layout, storage, PACS, lake held by another run); nothing created",
}


def progress_extra(task: str, *, total: int | None = None, advance: int = 0) -> dict[str, Any]:
    """The ``extra`` of a log call that reports progress: ``total`` units of ``task`` to do, or
    ``advance`` units done."""
    return {PROGRESS_KEY: {"task": task, "total": total, "advance": advance}}


class _Display:
    """Where progress goes; ``stage`` names the step now running."""

    def stage(self, name: str) -> None:
        raise NotImplementedError

    def update(self, task: str, total: int | None, advance: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop drawing."""


class PlainDisplay(_Display):
    """One line per stage and per tenth of a counter (and its end), for logs and pipes."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._counters: dict[str, list[int]] = {}  # task -> [done, total, last printed tenth]

    def _print(self, text: str) -> None:
        print(f"progress: {text}", file=self._stream, flush=True)

    def stage(self, name: str) -> None:
        self._print(f"stage {name}")

    def update(self, task: str, total: int | None, advance: int) -> None:
        counter = self._counters.setdefault(task, [0, 0, -1])
        if total is not None:
            counter[1] = total
        counter[0] += advance
        done, of, last = counter
        tenth = 10 * done // of if of else 10
        if of and (tenth > last or done == of) and (advance or done == 0):
            counter[2] = tenth
            self._print(f"{task}: {done} of {of}")


class RichDisplay(_Display):
    """A live rich progress display on the terminal (stage spinner and a bar per counter)."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=Console(file=stream, force_terminal=True), transient=False,
        )
        self._stage = self._progress.add_task("starting", total=None)
        self._tasks: dict[str, Any] = {}
        self._progress.start()

    def stage(self, name: str) -> None:
        self._progress.update(self._stage, description=f"stage: {name}")

    def update(self, task: str, total: int | None, advance: int) -> None:
        if task not in self._tasks:
            self._tasks[task] = self._progress.add_task(task, total=total)
        elif total is not None:
            self._progress.update(self._tasks[task], total=total)
        if advance:
            self._progress.advance(self._tasks[task], advance)

    def close(self) -> None:
        self._progress.update(self._stage, description="done", total=1, completed=1)
        self._progress.stop()


class ProgressHandler(logging.Handler):
    """Turns the orchestrator's task log records into progress: a record of a new task name starts
    a stage; a record carrying ``PROGRESS_KEY`` moves a counter."""

    def __init__(self, display: _Display, quiet_stages: frozenset[str] = frozenset()) -> None:
        super().__init__(logging.INFO)
        self._display = display
        self._quiet = quiet_stages
        self._stage: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            name = getattr(record, "task_name", None)
            if isinstance(name, str) and name not in self._quiet and name != self._stage:
                self._stage = name
                self._display.stage(name)
            event = getattr(record, PROGRESS_KEY, None)
            if isinstance(event, Mapping):
                self._display.update(str(event["task"]), event.get("total"), int(event.get("advance") or 0))
        except Exception:  # a display problem never stops a run
            self.handleError(record)


@contextmanager
def show_progress(
    logger_name: str, *, stream: TextIO | None = None, tty: bool | None = None, quiet_stages: frozenset[str] = frozenset()
) -> Iterator[None]:
    """Show the progress logged under ``logger_name`` while the block runs: rich on a terminal
    (the INFO lines of the console log handlers are held back meanwhile, warnings still show),
    plain lines otherwise. ``quiet_stages``: per-item task names that are not stages."""
    stream = stream or sys.stderr
    tty = stream.isatty() if tty is None else tty
    display: _Display = RichDisplay(stream) if tty else PlainDisplay(stream)
    handler = ProgressHandler(display, quiet_stages)
    logger = logging.getLogger(logger_name)
    quieted = []
    if tty:
        for h in logging.getLogger().handlers:
            if isinstance(h, logging.StreamHandler) and h.level < logging.WARNING:
                quieted.append((h, h.level))
                h.setLevel(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        for h, level in quieted:
            h.setLevel(level)
        display.close()


def format_run_summary(report: RunReport, *, exit_code: int, reports_url: str) -> str:
    """One screen about a nightly run: intake, measurement, publication, data quality, what was
    held back or failed (first few), where the reports are, and the exit status."""
    lines = [f"Nightly run: {report.status().split(':', 1)[0]}"]
    if report.clinical is not None:
        c = report.clinical
        lines.append(f"  clinical   {c.files_new} new files ({c.files_rejected} rejected), {c.files_known} already ingested; "
                     f"{c.rows_loaded} rows loaded, {c.rows_rejected} rows rejected")
    if report.dicom is not None:
        d = report.dicom
        lines.append(f"  DICOM      {d.files_new} new files ({d.files_rejected} rejected), {d.files_known} already ingested; "
                     f"{d.instances_accepted} instances accepted; {d.series} series ({d.series_usable} usable)")
    if report.volumetry is not None:
        v = report.volumetry
        lines.append(f"  volumetry  {v.measured} series measured ({v.flagged} with flags), {v.failed} not measurable")
    if report.ct_results is not None:
        r = report.ct_results
        lines.append(f"  SEG and SR {r.written} series written, {r.failed} not built, {r.pushed_series} pushed")
    if report.gold is not None:
        lines.append(f"  gold       {len(report.gold.tables)} tables")
        if report.gold.primary:
            lines.append(f"  primary    {format_primary(report.gold.primary)}")
    outcomes = report.outcomes
    lines.append(f"  quality    {len(outcomes)} validations: {sum(o.should_publish for o in outcomes)} published, "
                 f"{sum(not o.should_publish for o in outcomes)} held back, "
                 f"{sum(len(o.quarantined) for o in outcomes)} rows quarantined, "
                 f"{sum(bool(o.failed_warnings) for o in outcomes)} with warnings")
    problems = [f"held back {h.table}: {h.reason}" for h in report.held_back]
    problems += [f"stage {f.stage} failed: {f.message}" for f in report.failures]
    for text in problems[:5]:
        lines.append(f"  ! {_clip(text, 150)}")
    if len(problems) > 5:
        lines.append(f"  ! ... and {len(problems) - 5} more (see the nightly summary)")
    lines.append(f"Reports: {reports_url}/nightly_summary.html (data quality: data_docs/index.html, "
                 "endpoints: endpoints.html)")
    lines.append(f"Exit {exit_code}: {EXIT_CODES[exit_code]}")
    return "\n".join(lines)


def format_primary(primary: Mapping[str, Any]) -> str:
    """The primary endpoint in one line: estimate with its CI and P, or the pooled median when blinded."""
    head = f"{primary.get('PARAMCD')} {primary.get('AVAR')} at {primary.get('AVISIT')}"
    unit = f" {primary['unit']}" if primary.get("unit") else ""
    if primary.get("estimate") is None:
        if primary.get("median_all") is not None:
            return f"{head}: median {primary['median_all']:.2f}{unit}, n={primary.get('n_all')} (blinded: pooled)"
        return f"{head}: not estimable"
    p = primary.get("p_value")
    p_text = "-" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")
    return (f"{head}: difference {primary['estimate']:.2f}{unit} (95% CI {primary['ci_low']:.2f} to {primary['ci_high']:.2f}), "
            f"P={p_text}, n={primary.get('n_trt')}/{primary.get('n_ctl')}")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


#: Units of measurement fields, by name suffix: (unit, decimals).
_UNITS = {"_ml": ("mL", 1), "_pct": ("%", 2), "_hu": ("HU", 1), "_mm": ("mm", 1), "_deg": ("deg", 1), "_share": ("", 3)}


def format_measurement(name: str, value: object) -> str:
    """A measurement as people read it: rounded, with its unit (``lung_volume_ml`` 3456.78 ->
    ``3456.8 mL``); text, flags and missing values as they are."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-" if value is None else str(value)
    for suffix, (unit, decimals) in _UNITS.items():
        if name.endswith(suffix):
            return f"{value:.{decimals}f} {unit}".rstrip()
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def format_volumetry(record: Mapping[str, object]) -> str:
    """One measured series, one aligned line per field."""
    width = max(len(name) for name in record)
    return "\n".join(f"{name:<{width}}  {format_measurement(name, value)}" for name, value in record.items())
