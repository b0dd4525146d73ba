"""Divergences that are explained, in one place: where the mock and the lab differ
because the lab cannot observe something, or the kernel is not deterministic.

Each explanation is a predicate over one scenario's two traces that holds only
when everything both targets can observe alike still agrees (the frames out of
every port, the drop reasons), so an explanation never hides a wrong frame.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from scapy.layers.inet import TCP, UDP
from scapy.layers.l2 import Ether

from harness.cli.diff import drop_text, explained_difference
from harness.cli.trace import Trace
from harness.journey import CtEntry, Stage, with_children

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


# a NAT hop's summary, "saddr 10.0.1.2:53 -> 10.0.2.1:2004": the address and port before and after
NAT_REWRITE = re.compile(r"^[sd]addr ([^ ]+):(\d+) -> ([^ ]+):(\d+)$")


def _picked_ports(trace: Trace) -> list[tuple[str, str, str]]:
    """Each NAT rewrite that moved a port, as (stage, old address, new address)."""
    picked = []
    for journey in with_children(trace.journeys):
        for hop in journey.hops:
            match = NAT_REWRITE.match(str(hop.summary)) if hop.where == "nf_nat_packet" else None
            if match is not None and match[2] != match[4]:
                picked.append((hop.stage, match[1], match[3]))
    return picked


def _frames_but_ports(mock: Trace, dut: Trace) -> bool:
    """The frames out alike but for their TCP/UDP ports and checksum."""
    def masked(frame: bytes) -> bytes:
        packet = Ether(frame)
        for layer in (TCP, UDP):
            if layer in packet:
                packet[layer].sport = packet[layer].dport = packet[layer].chksum = 0
        return bytes(packet)
    return frame_differences({port: [masked(f) for f in frames] for port, frames in mock.left.items()},
                             {port: [masked(f) for f in frames] for port, frames in dut.left.items()}) == []


def _nat_port_random(mock: Trace, dut: Trace) -> bool:
    picked = _picked_ports(mock)
    return bool(picked) and picked == _picked_ports(dut) and _frames_but_ports(mock, dut) \
        and _drops(mock) == _drops(dut)


def _runs(journeys: list) -> list[tuple[int, int]]:
    """(start, end) of each run of consecutive journeys of the same packet line."""
    runs, start = [], 0
    for i in range(1, len(journeys) + 1):
        if i == len(journeys) or str(journeys[i].packet) != str(journeys[start].packet):
            runs.append((start, i))
            start = i
    return runs


def _identical_packets(mock: Trace, dut: Trace) -> bool:
    """Identical frames sent one after the other: each target's runs of identical
    packets line up and carry the same drops, but which of them a drop is on differs."""
    ours, theirs = list(mock.journeys), list(dut.journeys)
    if len(ours) != len(theirs) or _runs(ours) != _runs(theirs) or not same_frames_and_drops(mock, dut):
        return False
    reassigned = False
    for start, end in _runs(ours):
        mine, kernel = [drop_text(j.drop) for j in ours[start:end]], [drop_text(j.drop) for j in theirs[start:end]]
        if sorted(mine) != sorted(kernel):
            return False
        reassigned |= mine != kernel
    return reassigned


EXPLANATIONS = (
    Explanation("nat-port-random",
                "NAT moved a port (out of the range asked for, or clashing): nf_nat_l4proto_unique_tuple() "
                "searches the range from get_random_u16(), so mock and kernel each pick their own port; held "
                "only while the same rewrites moved a port at the same stages between the same addresses and "
                "the frames out agree but for their ports and checksums",
                _nat_port_random),
    Explanation("nat-before-confirm",
                "a packet NATed and then dropped before conntrack confirmed its entry: the lab reads NAT from "
                "conntrack's table (nftrace reports no rewrite), where an unconfirmed entry never appears, so it "
                "shows neither the rewrite nor which traced packet the drop belongs to",
                _nat_before_confirm),
    Explanation("identical-packets",
                "identical frames sent one after the other (a duplicated fragment): the lab pairs a drop with "
                "a packet by its headers, so it cannot tell which copy the kernel dropped (ip_defrag()'s "
                "DUP_FRAG is the second's: the first is queued); held only while the runs of identical "
                "packets line up and carry the same drops and the frames out agree",
                _identical_packets),
)


# What the comparison of conntrack entries (state.py) leaves out, and why: timing only.
CONNTRACK_MASKS = {
    "timeout": "the seconds an entry has left: the lab's clock runs while the scenario's frames are sent and "
               "its table is dumped, the mock's is virtual (nf_ct_expires() reads jiffies)",
    "nat-port-random reply ports": "under nat-port-random, the NATed entry's reply tuple carries the port each "
                                   "target drew (nf_nat_l4proto_unique_tuple())",
}


def masked_entry(entry: CtEntry, nat_ports_random: bool = False) -> CtEntry:
    """`entry` less CONNTRACK_MASKS' fields: its timeout, and with `nat_ports_random`
    the ports of a NATed entry's reply tuple."""
    masked = entry._replace(timeout=0)
    if nat_ports_random and entry.status & {"snat", "dnat"}:
        masked = masked._replace(reply=(*entry.reply[:2], 0, 0))
    return masked


def explain(mock: Trace, dut: Trace) -> Explanation | None:
    return next((e for e in EXPLANATIONS if e.holds(mock, dut)), None)
