"""Divergences that are explained, in one place: where the mock and the lab differ
because the lab cannot observe something, or the kernel is not deterministic.

Each explanation is a predicate over one scenario's two traces that holds only
when everything both targets can observe alike still agrees (the frames out of
every port, the drop reasons), so an explanation never hides a wrong frame.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from harness.cli.diff import explained_difference
from harness.cli.trace import Trace
from harness.journey import Journey, Stage

# where nf_confirm() runs: a packet dropped before it leaves an unconfirmed entry
CONFIRM_STAGES = frozenset({Stage.NF_POSTROUTING, Stage.NF_INPUT, Stage.L4, Stage.SOCKET, Stage.NIC_TX})


@dataclass(frozen=True)
class Explanation:
    name: str
    why: str
    holds: Callable[[Trace, Trace], bool]


def _every(journeys: list[Journey]) -> Iterator[Journey]:
    for journey in journeys:
        yield journey
        yield from _every(journey.children)


def _drops(trace: Trace) -> list[str]:
    return sorted(str(j.drop._replace(packet="")) for j in _every(trace.journeys) if j.drop is not None)


def same_frames_and_drops(mock: Trace, dut: Trace) -> bool:
    for port in mock.left.keys() | dut.left.keys():
        ours, theirs = mock.left.get(port, []), dut.left.get(port, [])
        if len(ours) != len(theirs) or any(a != b and explained_difference(a, b) is None
                                           for a, b in zip(ours, theirs)):
            return False
    return _drops(mock) == _drops(dut)


def _nat_before_confirm(mock: Trace, dut: Trace) -> bool:
    unconfirmed = any(any(hop.where == "nf_nat_packet" for hop in journey.hops)
                      and journey.drop is not None and journey.drop.stage not in CONFIRM_STAGES
                      for journey in _every(mock.journeys))
    return unconfirmed and same_frames_and_drops(mock, dut)


EXPLANATIONS = (
    Explanation("nat-before-confirm",
                "a packet NATed and then dropped before conntrack confirmed its entry: the lab reads NAT from "
                "conntrack's table (nftrace reports no rewrite), where an unconfirmed entry never appears, so it "
                "shows neither the rewrite nor which traced packet the drop belongs to",
                _nat_before_confirm),
)


def explain(mock: Trace, dut: Trace) -> Explanation | None:
    return next((e for e in EXPLANATIONS if e.holds(mock, dut)), None)
