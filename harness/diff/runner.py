"""Running a scenario on the mock and on the netns lab, comparing, shrinking.

Each run is a fresh DUT of its target with the addressing plan's router, the
scenario's setup and its frames (`journey trace`'s run_trace()); `journey diff`'s
render_diff() compares the two. A setup one target refuses and the other takes is
a divergence too; a setup both refuse is an invalid scenario, counted apart.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from harness.cli.diff import render_diff
from harness.cli.trace import SetupFailed, Trace, run_trace
from harness.diff.explained import Explanation, explain
from harness.diff.scenario import Scenario

TARGETS = ("mock", "dut")


@dataclass
class Result:
    scenario: Scenario
    traces: dict[str, Trace]  # by target, for the targets whose setup passed
    refused: dict[str, str]  # by target: the setup error
    differences: int
    text: str
    explained: Explanation | None = None  # explained.py's, for a divergence it explains

    @property
    def invalid(self) -> bool:
        """Both targets refused the setup: the grammar drew what neither takes."""
        return len(self.refused) == len(TARGETS)

    @property
    def diverges(self) -> bool:
        """An unexplained difference."""
        return not self.invalid and (bool(self.refused) or self.differences > 0) and self.explained is None


def run(scenario: Scenario) -> Result:
    traces, refused = {}, {}
    for target in TARGETS:
        try:
            traces[target] = run_trace(target, scenario.port, list(scenario.frames), scenario.setup(), "<scenario>")
        except SetupFailed as exc:
            refused[target] = str(exc)
    if refused:
        text = "".join(f"{target} refused the setup: {error}\n" for target, error in refused.items())
        return Result(scenario, traces, refused, 0 if len(refused) == len(TARGETS) else 1, text)
    text, differences = render_diff(traces["mock"], traces["dut"])
    explained = explain(traces["mock"], traces["dut"]) if differences else None
    return Result(scenario, traces, refused, differences, text, explained)


def smaller(scenario: Scenario) -> Iterator[Scenario]:
    """Every scenario one part smaller: a frame, a command, a chain or a rule less."""
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


def shrink(result: Result, still: Callable[[Result], bool] = lambda r: r.diverges,
           runner: Callable[[Scenario], Result] = run) -> Result:
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
