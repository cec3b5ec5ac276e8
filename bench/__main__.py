"""``python -m bench [--only NAME ...] [--quick]``: run the benchmarks and print one table.

Every result is shown with its absolute number, the floors measured in the same run, the ratios to
them, the goal and pass/MISS. A miss is reported, never an error: the command fails only when a
benchmark could not run at all (its row says why).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import traceback
from collections.abc import Sequence

from bench.cases import CASES, QUICK, Sizes
from bench.results import Result, render_table


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Run the benchmarks and print one table of "
                                     "results against floors measured in the same run.")
    parser.add_argument("--only", action="append", choices=list(CASES), metavar="NAME",
                        help=f"run only this case (repeatable): {', '.join(CASES)}")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run; goals are for full sizes)")
    parser.add_argument("--workdir", default=None, help="where temporary data is written (default: the system temp dir)")
    return parser.parse_args(argv)


def machine_line() -> str:
    """CPUs, load averages and Python, for the head of the table."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs, load average {load}, Python {platform.python_version()}"


def run_case(name: str, sizes: Sizes, workdir: str | None) -> tuple[list[Result], bool]:
    """The case's rows and True; or one row naming the error and False."""
    print(f"bench: {name} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        rows = CASES[name](sizes, workdir)
    except Exception as error:  # report and go on with the other cases
        traceback.print_exc()
        return [Result(name, "could not run", None, "", "-", None, shown=f"ERROR {type(error).__name__}: {error}")], False
    print(f"bench: {name} done in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return rows, True


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    before = machine_line()
    start = time.perf_counter()
    results: list[Result] = []
    all_ran = True
    for name in args.only or CASES:
        rows, ran = run_case(name, sizes, args.workdir)
        results.extend(rows)
        all_ran = all_ran and ran
    print(f"\nTrialake benchmarks{' (quick sizes; goals are for full sizes)' if args.quick else ''}")
    print(f"before: {before}\nafter:  {machine_line()}; total {time.perf_counter() - start:.0f} s\n")
    print(render_table(results))
    return 0 if all_ran else 1


if __name__ == "__main__":
    sys.exit(main())
