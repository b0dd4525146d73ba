"""The campaign loop: executions under a watchdog, crashes and hangs recorded.

Every execution of a target's case runs under a per-execution time budget
(`signal.setitimer`: ITIMER_PROF for CPU time, ITIMER_REAL for wall-clock time):
a case still running when either expires is a hang, stopped where it stands by
`Hang` (a BaseException, so no `except Exception` in the mock swallows it; where
Python itself swallows it, in a gc callback, the alarm fires again half a second
later). Any other exception out of `execute()` is a crash. Crashes
and hangs are told apart by where they happen (exception type and the innermost
frame in harness/), each distinct one recorded once with the first case that
found it (as JSON, the target's `describe()`) and its traceback, in `--out`.

Engines: "hypothesis" draws the targets' structured cases (generation only: a
crash is kept, not shrunk, so the campaign goes on; the pytest sample in
tests/test_fuzz.py shrinks what it finds); "atheris" is libFuzzer's coverage
guidance over raw bytes that each target decodes (`from_bytes()`), in a process of
its own per target since atheris.Fuzz() never returns.
"""
from __future__ import annotations

import hashlib
import json
import random
import signal
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed as hypothesis_seed, settings

from harness.fuzz.targets import FuzzTarget

BUDGET = 10.0  # CPU seconds one execution may take before it is a hang (far above any case's time)
WALL_BUDGET = 600.0  # and wall-clock seconds, for one that blocks without spending CPU
REARM = 0.5  # an alarm raised where Python swallows exceptions (a gc callback) fires again this soon


class Hang(BaseException):
    """The watchdog's alarm: an execution outlived its time budget."""


@dataclass
class Finding:
    kind: str  # "crash" or "hang"
    target: str
    where: str  # exception type and the innermost harness frame
    case: str
    trace: str
    count: int = 1


@dataclass
class Campaign:
    """Execute cases on targets; count executions; keep the distinct findings."""

    budget: float = BUDGET
    out: Path | None = None
    execs: Counter = field(default_factory=Counter)
    findings: dict[tuple[str, str], Finding] = field(default_factory=dict)

    wall_budget: float = WALL_BUDGET
    _running: bool = False

    def _alarm(self, signum, frame) -> None:
        if self._running:
            signal.setitimer(signal.ITIMER_PROF if signum == signal.SIGPROF else signal.ITIMER_REAL, REARM)
            raise Hang()

    def run_one(self, target: FuzzTarget, case: Any) -> Finding | None:
        """One execution of `case` on `target` under the watchdog: `budget` seconds
        of CPU (ITIMER_PROF: a loaded machine does not make a slow case a hang) and
        `wall_budget` of wall clock (ITIMER_REAL: a case blocked in a system call)."""
        previous = signal.signal(signal.SIGPROF, self._alarm), signal.signal(signal.SIGALRM, self._alarm)
        signal.setitimer(signal.ITIMER_PROF, self.budget)
        signal.setitimer(signal.ITIMER_REAL, self.wall_budget)
        self._running = True
        try:
            target.execute(case)
            return None
        except Hang:
            self._running = False
            return self._record("hang", target, case)
        except Exception:
            self._running = False
            return self._record("crash", target, case)
        finally:
            self._running = False
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGPROF, previous[0])
            signal.signal(signal.SIGALRM, previous[1])
            self.execs[target.name] += 1

    def _record(self, kind: str, target: FuzzTarget, case: Any) -> Finding:
        trace = traceback.format_exc()
        where = _where(trace)
        key = (target.name, where)
        if key in self.findings:
            self.findings[key].count += 1
            return self.findings[key]
        finding = Finding(kind, target.name, where, target.describe(case), trace)
        self.findings[key] = finding
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            name = f"{kind}-{target.name}-{hashlib.sha1(where.encode()).hexdigest()[:10]}.json"
            (self.out / name).write_text(json.dumps(finding.__dict__, indent=1) + "\n")
        return finding

    def hypothesis(self, target: FuzzTarget, executions: int, seed: int, deadline: float | None = None,
                   fanout: int = 0) -> None:
        """`executions` cases drawn by hypothesis from `target.strategy` (seeded),
        fewer if `deadline` (time.monotonic()) comes first; each drawn case is
        followed by `fanout` havoc variants of it (target.mutate()), seeded from
        the case, since drawing a case costs more than running several."""
        done = self.execs[target.name] + executions

        @hypothesis_seed(seed)
        @settings(max_examples=-(-executions // (fanout + 1)), database=None, phases=[Phase.generate], deadline=None,
                  suppress_health_check=list(HealthCheck))
        @given(target.strategy)
        def run(case):
            rng = random.Random(target.describe(case))
            for variant in range(fanout + 1):
                if self.execs[target.name] >= done or (deadline is not None and time.monotonic() >= deadline):
                    return
                self.run_one(target, case if variant == 0 else target.mutate(case, rng))

        while self.execs[target.name] < done and (deadline is None or time.monotonic() < deadline):
            before = self.execs[target.name]
            run()
            if self.execs[target.name] == before:
                break  # the strategy is exhausted
            seed += 1
            run = hypothesis_seed(seed)(run)

    def figures(self) -> dict[str, int]:
        kinds = Counter(f.kind for f in self.findings.values())
        return {"execs": sum(self.execs.values()), "crashes": kinds["crash"], "hangs": kinds["hang"]}

    def report(self) -> str:
        lines = [f"{name}: {n} executions" for name, n in sorted(self.execs.items())]
        for finding in self.findings.values():
            lines.append(f"{finding.kind} in {finding.target} ({finding.count}x) at {finding.where}\n  case: "
                         f"{finding.case[:400]}")
        return "\n".join(lines)


def _where(trace: str) -> str:
    """The exception's type and message head with the innermost frame in harness/
    (outside this module: a hang is raised here, and found where it stood)."""
    frames = [line.strip() for line in trace.splitlines() if line.strip().startswith('File "') and "/harness/" in line
              and "/harness/fuzz/campaign.py" not in line]
    last = trace.strip().splitlines()[-1]
    head = last.split(":")[0]
    return f"{head} at {frames[-1] if frames else '?'}"
