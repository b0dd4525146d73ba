"""`python -m harness.report [RESULTS_DIR]`: after the pytest runs, before `allure generate`.

Writes the sign-off summary (harness/report/summary.py) of an allure-results directory
holding every target's results to reports/summary.md and prints its compact form. For
the report it also adds the journeys side by side to each result of a test run on more
than one target (harness/report/journey_map.py), puts the summary in as a global
attachment and labels the results of the tests whose outcome differs between targets.
`--read-only` only writes and prints the summary (`.ci/test`, which makes no report).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.report import journey_map
from harness.report import summary as signoff


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.report", description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", type=Path, default=Path("reports/allure-results"),
                        help="the allure-results directory of the runs (default: %(default)s)")
    parser.add_argument("--summary", type=Path, default=Path("reports/summary.md"),
                        help="where to write the summary (default: %(default)s)")
    parser.add_argument("--read-only", action="store_true",
                        help="write and print the summary only; change nothing in RESULTS")
    args = parser.parse_args(argv)
    try:
        summary = signoff.read(args.results)
    except FileNotFoundError as err:
        print(f"python -m harness.report: {err}", file=sys.stderr)
        return 1
    text = signoff.markdown(summary)
    args.summary.parent.mkdir(parents=True, exist_ok=True)
    args.summary.write_text(text)
    if not args.read_only:
        paired = journey_map.add_side_by_side(args.results)
        signoff.write_into_report(summary, text)
        print(f"journeys side by side added to {paired} results in {args.results}")
    signoff.print_compact(summary, args.summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
