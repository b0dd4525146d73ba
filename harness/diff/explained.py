"""Divergences that are explained, in one place: where the mock and the lab differ
because the lab cannot observe something, or the kernel is not deterministic.

Each explanation is a predicate over one scenario's two traces that holds only
when everything both targets can observe alike still agrees (the frames out of
every port, the drop reasons), so an explanation never hides a wrong frame.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.cli.diff import drop_text, explained_difference
from harness.cli.trace import Trace
from harness.journey import Stage, with_children

# where nf_confirm() runs: a packet dropped before it leaves an unconfirmed entry
CONFIRM_STAGES = frozenset({Stage.NF_POSTROUTING, Stage.NF_INPUT, Stage.L4, Stage.SOCKET, Stage.NIC_TX})


@dataclass(frozen=True)
class Explanation:
    name: str
    why: str
    holds: Callable[[Trace, Trace], bool]


def _drops(trace: Trace) -> list[str]:
    return sorted(drop_text(j.drop) for j in with_children(trace.journeys) if j.drop is not None)


def frame_differences(expected: dict[str, list[bytes]], got: dict[str, list[bytes]]) -> list[str]:
    """Where `got` differs from `expected`, port by port, after the masks."""
    out = []
    for port in sorted(expected.keys() | got.keys()):
        want, have = expected.get(port, []), got.get(port, [])
        if len(want) != len(have):
            out.append(f"{port}: {len(have)} frames left, the kernel sent {len(want)}")
            continue
        out += [f"{port} frame {i}: {have_one.hex()} where the kernel sent {want_one.hex()}"
                for i, (want_one, have_one) in enumerate(zip(want, have))
                if want_one != have_one and explained_difference(want_one, have_one) is None]
    return out


def same_frames_and_drops(mock: Trace, dut: Trace) -> bool:
    return frame_differences(mock.left, dut.left) == [] and _drops(mock) == _drops(dut)


def _nat_before_confirm(mock: Trace, dut: Trace) -> bool:
    unconfirmed = any(any(hop.where == "nf_nat_packet" for hop in journey.hops)
                      and journey.drop is not None and journey.drop.stage not in CONFIRM_STAGES
                      for journey in with_children(mock.journeys))
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
