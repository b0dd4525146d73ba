"""`journey diff`: the same frames through two targets, and where they differ.

Targets observe different parts of the path (DESIGN.md, Journeys): the mock records
every hop, the netns lab what its tracers see, so the comparison keeps the hops both
report, at the stages both observe (journey_map.observed_stages()): netfilter base
chains and NAT rewrites (not conntrack's own hooks, which nftrace does not report),
XDP and TC program runs; and the drop; then the frames that left each port. Within
a packet, hops are aligned by stage and place (difflib), so a hop one target has
and the other lacks shows as one line, not as every line after it differing.
XDP and TC hops compare their verdicts only when both targets name one: the lab
tells a program's verdict from run counts, and words it its own way. An ICMP frame
the two targets sent alike but for the IP ID Linux draws from its hashed generator
(and the checksum over it), or in a timestamp reply's times, is the same, with that
said, as the suites mask it.
"""
from __future__ import annotations

import difflib
from socket import IPPROTO_ICMPV6
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import zip_longest

from harness.cli.trace import Trace, render_json
from harness.journey import QUOTED_REWRITE, Drop, Hop, Journey, Stage, with_children
from scapy.layers.inet import ICMP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from harness.packets import Mask, describe
from harness.report.journey_map import CONNTRACK_HOOKS, side_by_side_svg
from harness.mockkernel.wire import ethernet
from harness.mockkernel.wire.ethernet import ETH_HLEN
from harness.mockkernel.wire.icmp import ICMP_TIMESTAMPREPLY
from harness.testing import auto_flowlabel_mask, icmp_socket_mask, icmp_timestamp_reply_mask
from harness.testing.masks import syn_ack_mask

PROGRAM_STAGES = frozenset({Stage.XDP, Stage.TC_INGRESS, Stage.TC_EGRESS})
SAME, DIFFERS, FIRST_ONLY, SECOND_ONLY = "  ", "! ", "< ", "> "


def reported_by_both(hop: Hop, observed: frozenset[Stage]) -> bool:
    """A hop every target reports at a stage it observes: a netfilter chain's verdict
    or NAT's rewrite (of the packet's own header: the lab reads NAT from the headers
    nftrace shows and from conntrack, so a rewrite of an ICMP error's quoted packet
    alone is the mock's), or an XDP or TC program's run."""
    if hop.stage not in observed:
        return False
    if str(hop.summary).startswith(QUOTED_REWRITE):  # the lab sees NAT in outer headers only
        return False
    return hop.stage in PROGRAM_STAGES or (hop.stage.startswith("NF") and hop.where not in CONNTRACK_HOOKS)


@dataclass
class Comparable:
    """A packet's journey as both targets can see it."""

    packet: str
    hops: list[Hop]
    drop: Drop | None


def is_ipv6(journey: Journey) -> bool:
    """The journey is an IPv6 packet's: a frame of ethertype 0x86DD, or a packet the
    kernel made, summarised with its hop limit (wire/ipv6.py Ipv6Packet.summary())."""
    frame = getattr(journey.packet, "frame", None)
    if frame is not None:
        return len(frame) >= ETH_HLEN and ethernet.ethertype(frame, 0) == ethernet.ETH_P_IPV6
    return " hlim=" in str(journey.packet)


def comparable(journeys: list[Journey], observed: frozenset[Stage], ipv6_netfilter: bool = True) -> list[Comparable]:
    """Every packet's hops reported_by_both(), the packets a journey caused after it;
    a packet with none (no chain, no program, no drop) is left out on every target alike.
    Without `ipv6_netfilter` (a real kernel's nftrace marks IPv4 packets only:
    drivers/nftrace.py), an IPv6 packet's netfilter hops are left out too."""
    packets = []
    for journey in with_children(journeys):
        hops = [hop for hop in journey.hops if reported_by_both(hop, observed)]
        if not ipv6_netfilter and hops and is_ipv6(journey):
            hops = [hop for hop in hops if hop.stage in PROGRAM_STAGES]
        if hops or journey.drop is not None:
            packets.append(Comparable(str(journey.packet), hops, journey.drop))
    return packets


def _same_hop(first: Hop, second: Hop) -> bool:
    if first.stage in PROGRAM_STAGES:
        return not (first.verdict and second.verdict) or first.verdict == second.verdict
    return str(first) == str(second)  # as printed: a summary may be rendered lazily


def render_diff(first: Trace, second: Trace) -> tuple[str, int]:
    """The comparison as text, and the number of differing lines in it."""
    a, b = first.target, second.target
    width = max(len(a), len(b))
    count = len(first.sent)
    lines = [f"journey diff: {count} frame{'' if count == 1 else 's'} sent into {first.port} on {a} and {b}",
             f"compared: netfilter chains and NAT, XDP and TC runs, drops (what both observe), and the frames "
             f"out; {FIRST_ONLY.strip()} {a} only, {SECOND_ONLY.strip()} {b} only, {DIFFERS.strip()} differs"]
    differences = 0
    both = first.observed & second.observed
    ipv6_netfilter = first.target == second.target == "mock"  # the netns lab traces IPv4 in netfilter only
    for number, (one, other) in enumerate(paired(comparable(first.journeys, both, ipv6_netfilter),
                                                 comparable(second.journeys, both, ipv6_netfilter)), 1):
        lines += ["", f"packet {number}"]
        lines += [f"  {name:<{width}}  {packet.packet if packet else '(not seen)'}"
                  for name, packet in ((a, one), (b, other))]
        packet_lines = _packet_diff(one, other, a, b)
        differences += sum(not line.startswith(SAME) for line in packet_lines)
        lines += [f"    {line}" for line in packet_lines]
    lines += ["", "frames out"]
    frame_lines = _frames_diff(first.left, second.left, a, b)
    differences += sum(not line.startswith(SAME) for line in frame_lines)
    lines += [f"  {line}" for line in frame_lines]
    lines += ["", f"{differences} difference{'' if differences == 1 else 's'}" if differences
              else f"same on {a} and {b}"]
    return "\n".join(lines) + "\n", differences


def paired(first: list[Comparable], second: list[Comparable]) -> Iterator[tuple[Comparable | None, ...]]:
    """The packets of both targets side by side: those with netfilter hops in
    order, then the others (only a drop, or XDP and TC runs), each with one alike
    on the other side wherever it is: the same drop and program runs, else the
    same drop. A lab tells a packet it traced no chain for only by its drop, which
    its tracer may report late and name from a header the frame lacks (a truncated
    or malformed frame), and puts a frame's program runs in that journey, or in one
    of their own at the end (drivers/xdpstats.py merge()), so only the drop and
    the runs identify it."""
    traced = [[packet for packet in packets if _netfilter_hops(packet)] for packets in (first, second)]
    yield from zip_longest(*traced)
    dropped = [[packet for packet in packets if not _netfilter_hops(packet)] for packets in (first, second)]
    others = list(dropped[1])
    for packet in dropped[0]:
        twin = next((other for other in others if _identity(other) == _identity(packet)), None)
        if twin is None:
            twin = next((other for other in others if drop_text(other.drop) == drop_text(packet.drop)), None)
        if twin is not None:
            others.remove(twin)
        yield packet, twin
    for other in others:
        yield None, other


def _netfilter_hops(packet: Comparable) -> bool:
    return any(hop.stage not in PROGRAM_STAGES for hop in packet.hops)


def _identity(packet: Comparable) -> tuple:
    """What tells a packet without netfilter hops: its drop and where programs ran."""
    return drop_text(packet.drop), tuple((hop.stage, hop.where) for hop in packet.hops)


def drop_text(drop: Drop | None) -> str:
    return str(drop._replace(packet="")) if drop else "no drop"


def _packet_diff(one: Comparable | None, other: Comparable | None, a: str, b: str) -> list[str]:
    first_hops = one.hops if one else []
    second_hops = other.hops if other else []
    lines = []
    keys = [[(hop.stage, hop.where) for hop in hops] for hops in (first_hops, second_hops)]
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, *keys, autojunk=False).get_opcodes():
        if tag == "equal":
            for hop, twin in zip(first_hops[i1:i2], second_hops[j1:j2]):
                if _same_hop(hop, twin):
                    lines.append(f"{SAME}{hop}")
                else:
                    lines += [f"{DIFFERS}{hop.stage}[{hop.where}]", f"    {a}: {hop}", f"    {b}: {twin}"]
            continue
        lines += [f"{FIRST_ONLY}{hop}" for hop in first_hops[i1:i2]]
        lines += [f"{SECOND_ONLY}{hop}" for hop in second_hops[j1:j2]]
    lines += _drop_diff(one.drop if one else None, other.drop if other else None, a, b)
    return lines


def _drop_diff(first: Drop | None, second: Drop | None, a: str, b: str) -> list[str]:
    if first is None and second is None:
        return []
    texts = [drop_text(drop) for drop in (first, second)]
    if texts[0] == texts[1]:
        return [f"{SAME}{texts[0]}"]
    return [f"{DIFFERS}drop", f"    {a}: {texts[0]}", f"    {b}: {texts[1]}"]


def _frames_diff(first: dict[str, list[bytes]], second: dict[str, list[bytes]], a: str, b: str) -> list[str]:
    lines = []
    for port in sorted(first.keys() | second.keys()):
        pairs = list(zip_longest(first.get(port, []), second.get(port, [])))
        if not pairs:
            lines.append(f"{SAME}{port}: none")
        for one, other in pairs:
            if one == other:
                lines.append(f"{SAME}{port}: {describe(one)}")
            elif (explained := explained_difference(one, other)) is not None:
                lines += [f"{SAME}{port}: {describe(one)}", f"    masked {explained}"]
            elif other is None:
                lines.append(f"{FIRST_ONLY}{port}: {describe(one)}")
            elif one is None:
                lines.append(f"{SECOND_ONLY}{port}: {describe(other)}")
            else:
                lines += [f"{DIFFERS}{port}: {describe(one)}",
                          f"    {b} differs from {a} (expected: {a}, got: {b}): {Mask(one).differences(other)}"]
    return lines


def diff_json(first: Trace, second: Trace, differences: int) -> dict:
    return {first.target: render_json(first), second.target: render_json(second), "differences": differences}


def diff_svg(first: Trace, second: Trace) -> str:
    """The two targets' journey maps side by side, the boxes they differ in outlined."""
    return side_by_side_svg({trace.target: trace.drawn() for trace in (first, second)},
                            {trace.target: trace.observed for trace in (first, second)})


def explained_difference(first: bytes | None, second: bytes | None) -> str | None:
    """Why two frames the DUT sent differ only where Linux is unpredictable, or None:
    an ICMP frame's IP ID of a packet sent without DF (icmp_socket_mask()), a
    timestamp reply's times (icmp_timestamp_reply_mask()); a SYN-ACK's ISN
    (syn_ack_mask()); the automatic flow label of an ICMPv6 message or a TCP reset
    the DUT sends (auto_flowlabel_mask())."""
    if first is None or second is None:
        return None
    packet = Ether(first)
    if ICMP in packet:
        timestamp_reply = packet[ICMP].type == ICMP_TIMESTAMPREPLY
        mask = icmp_timestamp_reply_mask(first) if timestamp_reply else icmp_socket_mask(first)
    elif TCP in packet and packet[TCP].flags.S and packet[TCP].flags.A:
        mask = syn_ack_mask(first)
    elif IPv6 in packet and (TCP in packet and packet[TCP].flags.R or packet[IPv6].nh == IPPROTO_ICMPV6):
        mask = auto_flowlabel_mask(first)
    else:
        return None
    return "; ".join(mask.reasons) if mask.matches(second) else None
