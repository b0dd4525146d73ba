"""`python -m harness.fuzz`: a fuzzing campaign over the mock (docs/fuzzing.md).

    python -m harness.fuzz --execs 1000000                 # every target, hypothesis, shared out
    python -m harness.fuzz --targets frames,nft --seconds 600
    python -m harness.fuzz --engine atheris --targets frames --execs 200000

Prints `figure fuzz.execs N count`, `figure fuzz.crashes N count` and `figure
fuzz.hangs N count`, and each distinct crash or hang with the case that found it
(also written to --out, one JSON file each). Exits 1 when it found any.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
import types
from collections.abc import Sequence
from pathlib import Path

from harness.fuzz.campaign import BUDGET, Campaign, Finding
from harness.fuzz.targets import TARGETS, FramesTarget

DEFAULT_OUT = Path(__file__).resolve().parent.parent.parent / "reports" / "fuzz"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated (default: all: %(default)s)")
    parser.add_argument("--engine", choices=("hypothesis", "atheris"), default="hypothesis")
    parser.add_argument("--execs", type=int, default=10_000, help="executions in all, shared out over the targets")
    parser.add_argument("--seconds", type=float, help="stop after this long, whatever --execs says")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=BUDGET,
                        help="CPU seconds one execution may take (a hang after; wall clock: 600)")
    parser.add_argument("--batch", type=int, default=2000, help="hypothesis: executions per target before the next")
    parser.add_argument("--fanout", type=int, default=16, help="hypothesis: havoc variants run after each drawn case")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where crash and hang records go")
    parser.add_argument("--replay", type=Path, nargs="+", help="run the cases of these crash or hang records again")
    parser.add_argument("--atheris-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = args.targets.split(",")
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        parser.error(f"unknown target {unknown[0]!r}; have {', '.join(TARGETS)}")
    if args.replay:
        return _replay(args.replay, args.seed)
    if args.atheris_child:
        return _atheris_child(names[0], args)
    campaign = Campaign(args.budget, args.out)
    deadline = time.monotonic() + args.seconds if args.seconds else None
    if args.engine == "atheris":
        _atheris_parent(campaign, names, args, deadline)
    else:
        _hypothesis(campaign, names, args, deadline)
    print(campaign.report())
    for name, value in campaign.figures().items():
        print(f"figure fuzz.{name} {value} count")
    return 1 if campaign.findings else 0


def _replay(records: list[Path], seed: int) -> int:
    """Each record's case on a fresh target, raising what it raises."""
    for record in records:
        finding = json.loads(record.read_text())
        target = TARGETS[finding["target"]](seed)
        print(f"{record}: {finding['where']}", file=sys.stderr)
        target.execute(target.from_json(json.loads(finding["case"])))
    return 0


def _hypothesis(campaign: Campaign, names: list[str], args, deadline: float | None) -> None:
    """Round robin over the targets, --batch executions each, until --execs or --seconds."""
    targets = [TARGETS[name](args.seed) for name in names]
    share = max(1, args.execs // len(targets))
    for target in targets:
        if isinstance(target, FramesTarget):  # every length from 0 to 9,216 bytes once, first
            for case in target.length_sweep():
                campaign.run_one(target, case)
    round_ = 0
    while any(campaign.execs[t.name] < share for t in targets) and (deadline is None or time.monotonic() < deadline):
        for target in targets:
            left = share - campaign.execs[target.name]
            if left > 0:
                campaign.hypothesis(target, min(args.batch, left), args.seed * 1_000_003 + round_, deadline,
                                    args.fanout)
                print(f"{target.name}: {campaign.execs[target.name]} executions, "
                      f"{len(campaign.findings)} findings", file=sys.stderr, flush=True)
        round_ += 1


def _atheris_parent(campaign: Campaign, names: list[str], args, deadline: float | None) -> None:
    """One child process per target (atheris.Fuzz() never returns), one at a time."""
    share = max(1, args.execs // len(names))
    for name in names:
        status = args.out / f"atheris-{name}.status.json"
        seconds = [] if deadline is None else ["--seconds", str(max(1.0, (deadline - time.monotonic()) / len(names)))]
        subprocess.run([sys.executable, "-m", "harness.fuzz", "--atheris-child", status.name, "--targets", name,
                        "--execs", str(share), "--seed", str(args.seed), "--budget", str(args.budget),
                        "--out", str(args.out), *seconds], check=False)
        if status.exists():
            child = json.loads(status.read_text())
            campaign.execs[name] += child["execs"]
            for record in child["findings"]:
                campaign.findings[(name, record["where"])] = Finding(**record)


def _instrument_harness(atheris) -> None:
    """Coverage instrumentation of the harness's own functions, already imported
    (atheris.instrument_all() would take every loaded library too, for minutes)."""
    for obj in gc.get_objects():
        if isinstance(obj, types.FunctionType) and (obj.__module__ or "").startswith("harness.mockkernel"):
            atheris.instrument_func(obj)


def _atheris_child(name: str, args) -> int:
    """Run atheris on one target; write counts and findings to the status file as it goes."""
    import atheris  # an optional dependency: pip install atheris (docs/fuzzing.md)

    target = TARGETS[name](args.seed)
    _instrument_harness(atheris)
    campaign = Campaign(args.budget, args.out)
    status = args.out / args.atheris_child
    args.out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.seconds if args.seconds else None

    def save() -> None:
        status.write_text(json.dumps({"execs": campaign.execs[name],
                                      "findings": [f.__dict__ for f in campaign.findings.values()]}))

    def one_input(data: bytes) -> None:
        campaign.run_one(target, target.from_bytes(data))
        done = campaign.execs[name]
        if done % 1000 == 0 or done >= args.execs or (deadline is not None and time.monotonic() > deadline):
            save()
            if done >= args.execs or (deadline is not None and time.monotonic() > deadline):
                os._exit(0)

    atheris.Setup([sys.argv[0], f"-seed={args.seed or 1}", "-max_len=9219", "-len_control=0", "-rss_limit_mb=4096"],
                  one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
