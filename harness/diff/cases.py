"""Regression cases: a shrunk divergence kept as data (suites/diff_cases/*.json),
the scenario and what the real kernel did with it, replayed on every target by
suites/test_diff_cases.py.

The kernel's outcome is the frames that left each port, the drops (reason,
stage, function) and, in cases recorded since the runner compares them, the nft
rule counters and the conntrack entries (state.State); frames compare bit for
bit but where Linux is unpredictable (explained.frame_differences(): `journey
diff`'s masks), entries but for explained.CONNTRACK_MASKS.
"""
from __future__ import annotations

from dataclasses import dataclass

from harness.diff.explained import masked_entry
from harness.diff.runner import Result
from harness.diff.scenario import Scenario
from harness.diff.state import State, entry_text, read_state
from harness.journey import Drop, with_children
from harness.target import Target
from harness.testing import plan_router


@dataclass
class Outcome:
    left: dict[str, list[bytes]]  # frames out, by DUT port
    drops: list[str]  # each drop's reason, stage and function, sorted (targets order concurrent drops their own way)
    state: State | None = None  # counters and conntrack entries after the frames; None in older cases

    def to_json(self) -> dict:
        out = {"left": {port: [frame.hex() for frame in frames] for port, frames in self.left.items()},
               "drops": self.drops}
        if self.state is not None:
            out.update(self.state.to_json())
        return out

    @classmethod
    def from_json(cls, data: dict) -> "Outcome":
        state = State.from_json(data) if "counters" in data or "conntrack" in data else None
        return cls({port: [bytes.fromhex(f) for f in frames] for port, frames in data["left"].items()},
                   list(data["drops"]), state)

    def conntrack_texts(self) -> list[str]:
        """The entries as compared (explained.CONNTRACK_MASKS applied), sorted."""
        if self.state is None:
            return []
        return sorted(entry_text(masked_entry(entry)) for entry in self.state.conntrack) + self.state.conntrack6


def case_json(result: Result) -> dict:
    """A regression case: the scenario and the netns lab's outcome of it (where the
    kernel refused the setup and the mock took it, that refusal: "refused")."""
    if "dut" in result.refused:
        return {"scenario": result.scenario.to_json(), "kernel": {"refused": result.refused["dut"]},
                "diff": result.text}
    trace = result.traces["dut"]
    drops = sorted(_drop(journey.drop) for journey in with_children(trace.journeys) if journey.drop is not None)
    return {"scenario": result.scenario.to_json(),
            "kernel": Outcome(trace.left, drops, result.states.get("dut")).to_json(), "diff": result.text}


def _drop(drop: Drop) -> str:
    return f"{drop.reason} at {drop.stage} in {drop.location}"


def replay(target: Target, scenario: Scenario, drop_reasons: bool) -> Outcome:
    """The scenario on `target`: the plan's router, the setup, its sockets, the frames."""
    plan_router(target)
    for command in scenario.setup():
        target.sh(list(command.argv), stdin=command.stdin)
    with scenario.sockets_on(target):
        target.reset()
        target.send(scenario.port, list(scenario.frames))
        left = target.collect_all()
        drops = sorted(_drop(drop) for drop in target.drops()) if drop_reasons else []
        return Outcome(left, drops, read_state(target, with_counters=bool(scenario.chains or scenario.xtables), ipv6=scenario.ipv6))
