"""Running a scenario on the mock and on the netns lab, comparing, shrinking.

Each run is a fresh DUT of its target with the addressing plan's router, the
scenario's setup and its frames (`journey trace`'s trace_on()); `journey diff`'s
render_diff() compares the two. A setup one target refuses and the other takes is
a divergence too; a setup both refuse is an invalid scenario, counted apart.
FreshTargets hands out those DUTs: the netns lab's next one is made while the
current scenario runs, so a scenario waits neither for its namespaces nor for the
last one's teardown, and no state of one scenario's kernel reaches another's.
"""
from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from harness.cli.diff import render_diff
from harness.cli.trace import SetupFailed, Trace, fresh_target, trace_on
from harness.diff.explained import Explanation, explain
from harness.diff.scenario import Scenario
from harness.diff.state import SAME, State, read_state, state_lines
from harness.target import Target
from harness.testing import plan_router

TARGETS = ("mock", "dut")


@dataclass
class Result:
    scenario: Scenario
    traces: dict[str, Trace]  # by target, for the targets whose setup passed
    refused: dict[str, str]  # by target: the setup error
    differences: int
    text: str
    explained: Explanation | None = None  # explained.py's, for a divergence it explains
    states: dict[str, State] = field(default_factory=dict)  # by target: counters and conntrack after the frames

    @property
    def invalid(self) -> bool:
        """Both targets refused the setup: the grammar drew what neither takes."""
        return len(self.refused) == len(TARGETS)

    @property
    def diverges(self) -> bool:
        """An unexplained difference."""
        return not self.invalid and (bool(self.refused) or self.differences > 0) and self.explained is None


def run_on_one_cpu(cpu: int | None = None) -> int:
    """Confine the calling thread, which sends the scenarios' frames and collects
    what leaves, to one CPU (the last it may use, unless `cpu` names one): the netns
    lab then tells when the DUT is done with the frames without waiting out its
    negative timeout (drivers/dut.py, Settling). The CPU chosen."""
    allowed = os.sched_getaffinity(0)
    chosen = max(allowed) if cpu is None else cpu
    if chosen not in allowed:
        raise ValueError(f"CPU {cpu} is not one this process may run on ({sorted(allowed)})")
    os.sched_setaffinity(0, {chosen})
    return chosen


def planned_target(name: str) -> Target:
    """A fresh DUT of target `name` with the addressing plan's router."""
    target = fresh_target(name)
    try:
        plan_router(target)
    except BaseException:
        target.close()
        raise
    return target


class FreshTargets:
    """A fresh planned DUT of each target for every run (take(), then give_back()).

    The netns lab's DUTs are made and closed by `ahead` threads of their own, that
    many made ahead: making one is mostly waiting for `ip`, `sysctl` and `ethtool` in
    new namespaces, and closing one for their deletion, so that runs while the
    current scenario's DUT is used. The mock's are made when taken (the mock is
    Python: a thread would only take turns with it)."""

    def __init__(self, ahead: int = 2) -> None:
        self._ahead = ahead
        # the makers run where this thread could when they were made, wherever it is pinned later
        self._makers = ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="netns lab maker",
                                          initializer=os.sched_setaffinity, initargs=(0, os.sched_getaffinity(0)))
        self._made: deque[Future[Target]] = deque()

    def take(self, name: str) -> Target:
        if name == "mock":
            return planned_target(name)
        ready = self._made.popleft() if self._made else self._makers.submit(planned_target, name)
        while len(self._made) < self._ahead:
            self._made.append(self._makers.submit(planned_target, name))
        return ready.result()

    def give_back(self, target: Target) -> None:
        if target.name == "mock":
            target.close()
        else:
            self._makers.submit(target.close)

    def close(self) -> None:
        """Close the DUTs made ahead and wait for every close."""
        for future in self._made:
            if not future.cancel():
                future.add_done_callback(_close_made)
        self._made.clear()
        self._makers.shutdown(wait=True)

    def __enter__(self) -> FreshTargets:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _close_made(made: Future[Target]) -> None:
    if made.exception() is None:
        made.result().close()


def run(scenario: Scenario, targets: FreshTargets) -> Result:
    traces, refused, states = {}, {}, {}
    for name in TARGETS:
        target = targets.take(name)
        try:
            with scenario.sockets_on(target):
                # with programs, a send per frame: the lab counts their runs per send
                traces[name] = trace_on(target, scenario.port, list(scenario.frames), scenario.setup(), "<scenario>",
                                        one_send_each=bool(scenario.programs))
                states[name] = read_state(target, with_counters=bool(scenario.chains or scenario.xtables), ipv6=scenario.ipv6)
        except SetupFailed as exc:
            refused[name] = str(exc)
        finally:
            targets.give_back(target)
    if refused:
        text = "".join(f"{target} refused the setup: {error}\n" for target, error in refused.items())
        return Result(scenario, traces, refused, 0 if len(refused) == len(TARGETS) else 1, text)
    text, differences = render_diff(traces["mock"], traces["dut"])
    explained = explain(traces["mock"], traces["dut"]) if differences else None
    lines = state_lines(states["mock"], states["dut"], "mock", "dut",
                        nat_ports_random=explained is not None and explained.name == "nat-port-random")
    state_differences = sum(not line.startswith(SAME) for line in lines)
    if state_differences:
        explained = None  # an explanation covers frames and journeys, never a counter or an entry
    text = _with_state(text, lines, differences + state_differences)
    return Result(scenario, traces, refused, differences + state_differences, text, explained, states)


def _with_state(text: str, lines: list[str], differences: int) -> str:
    """`journey diff`'s text with the counters and conntrack entries before its last line."""
    body = text.rstrip("\n").rsplit("\n", 1)[0]
    total = f"{differences} difference{'' if differences == 1 else 's'}" if differences else "same on mock and dut"
    section = "\n".join(["", "counters and conntrack (entry timeouts masked: explained.CONNTRACK_MASKS)",
                         *(f"  {line}" for line in lines or ["  (no counter, no entry)"])])
    return f"{body}{section}\n\n{total}\n"


def smaller(scenario: Scenario) -> Iterator[Scenario]:
    """Every scenario one part smaller: a frame, a command, a chain, a rule, an iptables
    line, a program or a socket less."""
    for i in range(len(scenario.frames)):
        if len(scenario.frames) > 1:
            yield replace(scenario, frames=scenario.frames[:i] + scenario.frames[i + 1:])
    for i in range(len(scenario.chains)):
        yield replace(scenario, chains=scenario.chains[:i] + scenario.chains[i + 1:])
    for i in range(len(scenario.commands)):
        yield replace(scenario, commands=scenario.commands[:i] + scenario.commands[i + 1:])
    for i, chain in enumerate(scenario.chains):
        for j in range(len(chain.rules)):
            fewer = replace(chain, rules=chain.rules[:j] + chain.rules[j + 1:])
            yield replace(scenario, chains=scenario.chains[:i] + (fewer,) + scenario.chains[i + 1:])
        if chain.policy == "drop":
            yield replace(scenario, chains=scenario.chains[:i] + (replace(chain, policy="accept"),)
                          + scenario.chains[i + 1:])
    for i in range(len(scenario.xtables)):
        yield replace(scenario, xtables=scenario.xtables[:i] + scenario.xtables[i + 1:])
    for i in range(len(scenario.programs)):
        yield replace(scenario, programs=scenario.programs[:i] + scenario.programs[i + 1:])
    for i in range(len(scenario.sockets)):
        yield replace(scenario, sockets=scenario.sockets[:i] + scenario.sockets[i + 1:])


def shrink(result: Result, runner: Callable[[Scenario], Result],
           still: Callable[[Result], bool] = lambda r: r.diverges) -> Result:
    """The smallest scenario reached by taking parts away one at a time while it
    still diverges (a greedy delta debugging: each step keeps the first smaller
    scenario that still diverges, until none does)."""
    while True:
        for candidate in smaller(result.scenario):
            attempt = runner(candidate)
            if still(attempt):
                result = attempt
                break
        else:
            return result
