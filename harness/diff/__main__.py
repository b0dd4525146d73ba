"""`python -m harness.diff`: generated scenarios on the mock and the netns lab, compared.

`--scenarios N --seed S`: N scenarios drawn by hypothesis from seed S, each run on
the mock and on the netns lab (root); every divergence is shrunk, printed, and with
--cases written there as a regression case. Prints `figure diff.scenarios N count`,
`figure diff.invalid N count` (setups both targets refused), `figure diff.explained N
count` (differences harness/diff/explained.py explains) and `figure diff.divergences
N count`. `--cpu C`: the CPU the sending thread keeps to (runner.run_on_one_cpu());
`--minutes M`: a time budget, after which no scenario starts."""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from harness.diff.cases import case_json
from harness.diff.runner import FreshTargets, Result, run, run_on_one_cpu, shrink
from harness.diff.scenario import scenarios

PROGRESS_EVERY = 250  # scenarios between two lines on stderr


def campaign(count: int, seed: int, targets: FreshTargets, each, until: float = math.inf) -> None:
    """Hand `each` the result of `count` scenarios drawn from `seed` (reproducible:
    hypothesis draws the same scenarios from the same seed and grammar), each run on
    DUTs from `targets`; none starts after time.monotonic() `until` (the rest are
    drawn, not run)."""
    @hypothesis_seed(seed)
    @settings(max_examples=count, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(scenarios())
    def one(scenario):
        if time.monotonic() < until:
            each(run(scenario, targets))
    one()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.diff", description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=100, help="how many scenarios (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis's seed (default: %(default)s)")
    parser.add_argument("--cases", type=Path, help="write each shrunk divergence here as a regression case")
    parser.add_argument("--no-shrink", action="store_true", help="report divergences as drawn")
    parser.add_argument("--cpu", type=int, help="the one CPU the run keeps to (default: the last it may use)")
    parser.add_argument("--minutes", type=float, default=math.inf,
                        help="a time budget: no scenario starts after it; the figures count those run")
    args = parser.parse_args(argv)
    until = time.monotonic() + 60 * args.minutes
    counts = {"scenarios": 0, "invalid": 0, "explained": 0, "divergences": 0}

    def each(result: Result) -> None:
        counts["scenarios"] += 1
        if counts["scenarios"] % PROGRESS_EVERY == 0:
            print(f"{counts['scenarios']} scenarios, {counts['divergences']} divergences", file=sys.stderr, flush=True)
        counts["invalid"] += result.invalid
        if result.explained is not None:
            counts["explained"] += 1
            print(f"explained ({result.explained.name}), scenario {counts['scenarios']}", flush=True)
        if not result.diverges:
            return
        counts["divergences"] += 1
        if not args.no_shrink:
            result = shrink(result, lambda scenario: run(scenario, targets))
        print(f"divergence {counts['divergences']} (scenario {counts['scenarios']}):\n{result.scenario.setup_text()}"
              f"frames into {result.scenario.port}: {[f.hex() for f in result.scenario.frames]}\n{result.text}",
              flush=True)
        if args.cases is not None:
            args.cases.mkdir(parents=True, exist_ok=True)
            path = args.cases / f"seed{args.seed}_{counts['scenarios']}.json"
            path.write_text(json.dumps(case_json(result), indent=1) + "\n")

    with FreshTargets() as targets:  # made first: its maker thread runs on every CPU
        try:
            run_on_one_cpu(args.cpu)
        except ValueError as exc:
            parser.error(str(exc))
        campaign(args.scenarios, args.seed, targets, each, until)
    for name, value in counts.items():
        print(f"figure diff.{name} {value} count")
    return 0


if __name__ == "__main__":
    sys.exit(main())
