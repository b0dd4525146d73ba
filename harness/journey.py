"""Journey / Hop / Drop: what happened to one packet, shared by both targets.

A `Journey` is the ordered list of stages a packet crossed on the DUT, with the
verdict at each, and how it ended: delivered to a socket, transmitted on a port,
consumed by the stack (an ICMP echo answered, a fragment queued) or dropped with the
kernel's `SKB_DROP_REASON_*` name.

Stage names follow the reference document (NIC_RX ... NIC_TX). Where the reference
shows one box but the kernel makes decisions in several functions, the stage is
split so a drop lands where the kernel drops it:

NF_INGRESS  nf_hook_ingress(): nftables netdev ingress chains, after TC ingress
BRIDGE      the Linux bridge: br_handle_frame() on a port, br_forward()/br_flood()
            out of others, br_pass_frame_up() to the host, br_dev_xmit() from it
IP_RCV      ip_rcv_core(): header checks before PREROUTING
IP_FORWARD  ip_forward(): TTL and DF/MTU checks before the FORWARD hook
IP_DEFRAG   ip_defrag(): reassembly in ip_local_deliver, before INPUT
IP_OUTPUT   ip_finish_output(): fragmentation after POSTROUTING
NEIGH       neigh_resolve_output(): ARP before the frame is queued
NF_EGRESS   nf_hook_egress(): nftables netdev egress chains, before TC egress
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from harness.dropreason import DropReason


class Stage(StrEnum):
    """The stages, in path order; NF and UNKNOWN are the lab's when its tracers
    cannot tell the hook or the function. A member is its name as a str.
    (Enum attribute access is slow on Python 3.11: per-packet code takes
    members from module constants or prebuilt hops.)"""

    __hash__ = str.__hash__  # in C: the tracer hashes every hop it interns
    __repr__ = str.__repr__  # failure output shows 'L4' as it did when stages were strings

    NIC_RX = "NIC_RX"
    NAPI = "NAPI"
    XDP = "XDP"
    SKB = "SKB"
    TC_INGRESS = "TC_INGRESS"
    NF_INGRESS = "NF_INGRESS"
    BRIDGE = "BRIDGE"
    IP_RCV = "IP_RCV"
    NF_PREROUTING = "NF_PREROUTING"
    ROUTING = "ROUTING"
    IP_DEFRAG = "IP_DEFRAG"
    NF_INPUT = "NF_INPUT"
    IP_FORWARD = "IP_FORWARD"
    NF_FORWARD = "NF_FORWARD"
    L4 = "L4"
    SOCKET = "SOCKET"
    NF_OUTPUT = "NF_OUTPUT"
    NF_POSTROUTING = "NF_POSTROUTING"
    IP_OUTPUT = "IP_OUTPUT"
    NEIGH = "NEIGH"
    NF_EGRESS = "NF_EGRESS"
    TC_EGRESS = "TC_EGRESS"
    QDISC = "QDISC"
    NIC_TX = "NIC_TX"
    NF = "NF"
    UNKNOWN = "UNKNOWN"


# A NAT hop's summary that starts so names a rewrite of the packet an ICMP error quotes
# (nf_nat_icmp_reply_translation() where the outer header stayed as it was)
QUOTED_REWRITE = "quoted "


class Hop(NamedTuple):
    """One stage crossed: `where` names the kernel function, device or chain.
    (A NamedTuple: the mock creates one per stage per packet.)"""

    stage: Stage
    where: str = ""
    verdict: str = ""
    summary: str = ""

    def __str__(self) -> str:
        text = self.stage
        if self.where:
            text += f"[{self.where}]"
        if self.verdict:
            text += f" -> {self.verdict}"
        if self.summary:
            text += f" ({self.summary})"
        return text


class Drop(NamedTuple):
    """A packet freed by kfree_skb_reason(): the reason is a DropReason (it prints
    and compares as the kernel's name without the SKB_DROP_REASON_ prefix);
    `location` is the kernel function."""

    reason: DropReason
    stage: Stage
    location: str = ""
    packet: str = ""

    def __str__(self) -> str:
        where = f" in {self.location}" if self.location else ""
        return f"DROP {self.reason} at {self.stage}{where}" + (f": {self.packet}" if self.packet else "")


@dataclass(slots=True)
class Journey:
    """The packet's path; `packet` is a one-line summary of it as it arrived
    (anything whose str() is that line, so a backend may render it lazily)."""

    packet: object
    hops: list[Hop] = field(default_factory=list)
    drop: Drop | None = None
    children: list["Journey"] = field(default_factory=list)

    @property
    def stages(self) -> list[Stage]:
        return [hop.stage for hop in self.hops]

    def render(self, indent: str = "") -> str:
        lines = [f"{indent}{self.packet}"]
        lines += [f"{indent}  {hop}" for hop in self.hops]
        if self.drop:
            lines.append(f"{indent}  {self.drop}")
        for child in self.children:
            lines.append(f"{indent}  caused:")
            lines.append(child.render(indent + "    "))
        return "\n".join(lines)

    def to_json(self) -> dict:
        """This journey as JSON-ready data, the packet as its one-line summary and
        empty fields left out; Journey.from_json() reads it back."""
        data: dict = {"packet": str(self.packet),
                      "hops": [{name: str(value) for name, value in hop._asdict().items() if value}
                               for hop in self.hops]}
        if self.drop is not None:
            data["drop"] = {name: str(value) for name, value in self.drop._asdict().items() if value}
        if self.children:
            data["children"] = [child.to_json() for child in self.children]
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Journey":
        drop = data.get("drop")
        return cls(data["packet"],
                   [Hop(Stage(hop["stage"]), hop.get("where", ""), hop.get("verdict", ""), hop.get("summary", ""))
                    for hop in data["hops"]],
                   drop and Drop(DropReason[drop["reason"]], Stage(drop["stage"]), drop.get("location", ""),
                                 drop.get("packet", "")),
                   [cls.from_json(child) for child in data.get("children", ())])


def with_children(journeys: Iterable[Journey]) -> Iterator[Journey]:
    """Each journey, then the journeys it caused (its answers, its copies), depth first."""
    for journey in journeys:
        yield journey
        yield from with_children(journey.children)


def path_text(journey: Journey) -> str:
    """A journey's path: its hops and drop as Journey.render() prints them,
    without the packet line, one line per hop joined by ' > '."""
    parts = [str(hop) for hop in journey.hops]
    if journey.drop is not None:
        drop = journey.drop
        parts.append(f"DROP {drop.reason} at {drop.stage}" + (f" in {drop.location}" if drop.location else ""))
    parts += [f"caused: ({path_text(child)})" for child in journey.children]
    return " > ".join(parts)


_HOP_TEXT = re.compile(r"(?P<stage>[A-Z0-9_]+)(?:\[(?P<where>[^\]]*)\])?(?: -> (?P<verdict>.*?))?(?: \((?P<summary>.*)\))?")
_DROP_TEXT = re.compile(r"DROP (?P<reason>\w+) at (?P<stage>\w+)(?: in (?P<location>.*))?")
CAUSED = "caused: ("


def journey_of_path(path: str) -> Journey:
    """The journey path_text() printed as `path` (a line-rate Result's or a summarised
    Journeys' path), without a packet. A summary may hold " > " (conntrack tuples):
    the parts are split where brackets and parentheses balance."""
    parts: list[str] = []
    for piece in path.split(" > "):
        if parts and _unbalanced(parts[-1]):
            parts[-1] += " > " + piece
        else:
            parts.append(piece)
    journey = Journey("")
    for part in parts:
        if part.startswith(CAUSED):
            journey.children.append(journey_of_path(part[len(CAUSED):-1]))
        elif drop := _DROP_TEXT.fullmatch(part):
            journey.drop = Drop(DropReason[drop["reason"]], Stage(drop["stage"]), drop["location"] or "")
        elif (hop := _HOP_TEXT.fullmatch(part)) and hop["stage"] in Stage.__members__:
            journey.hops.append(Hop(Stage(hop["stage"]), hop["where"] or "", hop["verdict"] or "", hop["summary"] or ""))
        else:
            raise ValueError(f"not a journey path: {part!r} in {path!r} (path_text() writes STAGE[where] -> "
                             "verdict (summary), DROP reason at STAGE in function, or caused: (path))")
    return journey


def _unbalanced(text: str) -> bool:
    return text.count("(") != text.count(")") or text.count("[") != text.count("]")


def path_key(journey: Journey) -> tuple:
    """What makes two journeys' paths the same (path_text() of either is the
    other's), hashable: the hops, the drop without its packet, the children's."""
    drop = journey.drop
    return (tuple(journey.hops), drop and drop[:3], tuple(path_key(child) for child in journey.children))


class Journeys(list):
    """A target's journeys: the first `limit` packets' in full (in arrival order),
    and `paths`, the packets after them summarised as (path_text(), packets), as
    a line-rate Result's paths are. A list, so code that reads journeys reads
    these as it reads any other target's."""

    def __init__(self, journeys: Iterable[Journey] = (), paths: Iterable[tuple[str, int]] = (),
                 limit: int | None = None) -> None:
        super().__init__(journeys)
        self.paths = list(paths)
        self.limit = limit

    @property
    def summarised(self) -> int:
        """How many packets are counted in `paths` instead of kept in full."""
        return sum(packets for _, packets in self.paths)


def journeys_to_json(journeys: list[Journey], whole: int | None = None) -> dict:
    """A target's journeys as JSON-ready data (journeys_from_json() reads it back):
    each journey's to_json(), and the summarised paths with their packet counts. With
    `whole`, the journeys after the first `whole` are summarised by path too (an
    attachment stays small however many packets a test sent)."""
    kept = list(journeys)
    paths = list(getattr(journeys, "paths", ()))
    limit = getattr(journeys, "limit", None)
    if whole is not None and len(kept) > whole:
        folded = Counter(path_text(journey) for journey in kept[whole:])
        folded.update(dict(paths))
        kept, paths, limit = kept[:whole], folded.most_common(), whole
    return {"journeys": [journey.to_json() for journey in kept], "paths": [list(path) for path in paths],
            "limit": limit}


def journeys_from_json(data: dict) -> Journeys:
    return Journeys([Journey.from_json(journey) for journey in data["journeys"]],
                    [(path, packets) for path, packets in data.get("paths", ())], data.get("limit"))


def render_all(journeys: list[Journey]) -> str:
    summarised = journeys.summarised if isinstance(journeys, Journeys) else 0
    if not journeys and not summarised:
        return "(no journeys recorded)"
    lines = [journey.render() for journey in journeys]
    if summarised:
        lines.append(f"({summarised} more packets after the first {journeys.limit}, summarised by path; "
                     "raise the limit with --journey-limit or @pytest.mark.journey_limit(N) to see them whole)")
        lines += [f"{packets:>8} x {path}" for path, packets in journeys.paths]
    return "\n".join(lines)


class RuleCounter(NamedTuple):
    """An nft rule's counter, identified as `nft list ruleset` prints it."""

    family: str
    table: str
    chain: str
    rule: str  # the rule's text in nft's own listing format, without the counter
    packets: int
    bytes: int


class CtEntry(NamedTuple):
    """A conntrack entry as `conntrack -L` shows it. `original` and `reply` are
    (src, dst, sport, dport) with addresses as strings (ICMP: id, type/code)."""

    proto: str
    state: str  # TCP state name, or "" for UDP/ICMP
    original: tuple[str, str, int, int]
    reply: tuple[str, str, int, int]
    status: frozenset[str]  # e.g. {"assured", "seen-reply", "dnat"}
    mark: int
    timeout: int = 0  # whole seconds left, as `conntrack -L` prints them
