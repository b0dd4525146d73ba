"""The whole dut suite, run after run, while a CPU hog spins on every core: the flakes
only a loaded machine shows. Prints each run's counts and a total; exit status 1 if
any run had a failure or an error. The hogs stop when the runs end, fail or are
interrupted.

    sudo python3 .ci/loaded_dut.py                  # 10 runs of `pytest suites --target=dut -n 4`
    sudo python3 .ci/loaded_dut.py --runs 2 --workers 2 --hogs 1
    sudo python3 .ci/loaded_dut.py --runs 3 --workers 2 --lab LAB.yaml   # a lab's stations
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTCOME = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)")


def spin() -> None:
    """A hog: one core kept busy."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it
    while True:
        pass


def run_suite(workers: int, lab: str | None) -> tuple[dict[str, int], float, str]:
    """One run: its outcome counts, seconds, and pytest's last lines."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", "suites", "--target=dut", "-n", str(workers), "-q",
                           "-p", "no:cacheprovider", *([f"--lab={lab}"] if lab else [])],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    tail = "\n".join(done.stdout.strip().splitlines()[-15:])
    counts = {kind.rstrip("s") if kind.startswith("error") else kind: int(n)
              for n, kind in OUTCOME.findall(done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "")}
    if done.returncode not in (0, 1) and not counts:
        counts["error"] = 1  # pytest itself failed: usage error, interrupted, crashed
    return counts, time.monotonic() - started, tail


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4, help="pytest-xdist workers (-n)")
    parser.add_argument("--hogs", type=int, default=os.cpu_count(), help="busy processes (default: one per core)")
    parser.add_argument("--lab", metavar="LAB.yaml", help="run on this lab file's stations (at least --workers)")
    args = parser.parse_args()
    hogs = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.hogs)]
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))  # through the finally below
    bad_runs = 0
    try:
        for hog in hogs:
            hog.start()
        for run in range(1, args.runs + 1):
            counts, seconds, tail = run_suite(args.workers, args.lab)
            shown = ", ".join(f"{n} {kind}" for kind, n in counts.items()) or "no outcome"
            print(f"run {run}/{args.runs}: {shown} in {seconds:.0f} s", flush=True)
            if counts.get("failed") or counts.get("error") or not counts.get("passed"):
                bad_runs += 1
                print(tail, flush=True)
    finally:
        for hog in hogs:
            hog.terminate()
        for hog in hogs:
            hog.join()
    print(f"{args.runs - bad_runs} of {args.runs} runs clean under {args.hogs} CPU hogs, -n {args.workers}")
    return 1 if bad_runs else 0


if __name__ == "__main__":
    sys.exit(main())
