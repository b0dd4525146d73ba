"""Journeys drawn on the reference's map of the Linux path (SVG), alone or per target side by side.

The map is the first diagram of the reference document (shared/seeds/000_*.txt):
the inbound column read downwards (NIC -> NAPI -> XDP -> sk_buff -> TC ingress ->
PREROUTING -> routing -> INPUT -> L4 -> socket), the outbound column read upwards
(socket -> L4 -> L3 -> OUTPUT -> POSTROUTING -> TC egress -> qdisc -> NIC), and the
forward path between them (ip_forward -> FORWARD -> POSTROUTING). Every box is a
`Stage`; the stages harness/journey.py splits out where the kernel decides in
another function (IP_RCV, NF_INGRESS, IP_DEFRAG, IP_FORWARD, IP_OUTPUT, NEIGH) sit
where that function runs. On it, one packet's path: the boxes it crossed
highlighted and numbered in order, each hop's verdict and rewrite beside its box,
the drop in red with its reason and kernel function, and the packets it caused
(ICMP errors, replies, resets) as dashed paths linked to it.

A test's packets are grouped by path (harness.journey.path_text(): the same hops,
verdicts and drop); one map per distinct path, most packets first, at most
MAPS_SHOWN of them, the rest listed with their counts, so the picture's height is
bounded whatever the test sent. Side by side, the maps of each target are paired
by rank and the stages, verdicts and drops that differ are outlined in orange;
a stage a target cannot observe (the netns lab sees netfilter only through
nftrace, drops through skb:kfree_skb) is drawn as not observed, never as a
difference. Plain SVG shapes and text, no script, so it shows in any browser and
in the Allure report offline.
"""
from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import NamedTuple

from harness.journey import (Hop, Journey, Journeys, Stage, journey_of_path, journeys_from_json, journeys_to_json,
                             with_children)
from harness.packets import describe
from harness.report.summary import case_key
from harness.traffic import Result

ALL_STAGES = frozenset(Stage)
MAPS_SHOWN = 3  # maps drawn per target; the other paths are listed as lines
PATHS_LISTED = 8  # lines listing the paths after the maps
WHOLE_IN_ATTACHMENT = 200  # journeys kept whole in the JSON attachment, the rest as path counts
NOTE_LINES = 3  # lines of hop notes beside a box

# geometry (px): notes | inbound column | forward column | outbound column | notes. One map
# is about 1040 x 560: Allure's result panel (830 px wide in a 1400 px window) shows it at 0.8.
FONT = 10
CHAR = 6.02  # width of a character at FONT px monospace
LINE = 10  # a note's line
MARGIN = 8
NOTE_W = 220
BOX_W, BOX_H, ROW = 160, 24, 31
GUTTER = 40
X_IN = MARGIN + NOTE_W + 20
X_FWD = X_IN + BOX_W + GUTTER
X_OUT = X_FWD + BOX_W + GUTTER
MAP_W = X_OUT + BOX_W + 10 + NOTE_W + MARGIN
FWD_NOTE_X = X_FWD + BOX_W / 2 + 8
HEADER_H = 48
ROWS = 13
MAP_H = HEADER_H + ROWS * ROW + 8
TITLE_H = 26
LIST_LINE = 13
LEGEND_H = 74
MAX_HEIGHT = TITLE_H + MAPS_SHOWN * MAP_H + (PATHS_LISTED + 2) * LIST_LINE + LEGEND_H

IN, FWD, OUT = "in", "forward", "out"


class Slot(NamedTuple):
    """A box of the map: its column, row and the reference's words for it."""

    column: str
    row: int
    title: str
    subtitle: str

    @property
    def x(self) -> int:
        return {IN: X_IN, FWD: X_FWD, OUT: X_OUT}[self.column]

    def y(self, top: float) -> float:
        return top + HEADER_H + self.row * ROW


# (stage, side of the path) -> its box. A stage of one side only is keyed by its side;
# ROUTING, L4 and SOCKET are on both and take the side the packet is on.
SLOTS: dict[tuple[Stage, str], Slot] = {
    (Stage.NIC_RX, IN): Slot(IN, 0, "NIC", "DMA -> RX ring"),
    (Stage.NAPI, IN): Slot(IN, 1, "Interrupt / NAPI", "napi_poll"),
    (Stage.XDP, IN): Slot(IN, 2, "XDP [eBPF]", "DROP/PASS/TX/REDIRECT"),
    (Stage.SKB, IN): Slot(IN, 3, "sk_buff alloc", "napi_alloc_skb"),
    (Stage.TC_INGRESS, IN): Slot(IN, 4, "TC ingress [eBPF]", "clsact / filter"),
    (Stage.NF_INGRESS, IN): Slot(IN, 5, "Netfilter ingress", "netdev chains"),
    (Stage.IP_RCV, IN): Slot(IN, 6, "IP receive", "ip_rcv_core"),
    (Stage.NF_PREROUTING, IN): Slot(IN, 7, "Netfilter PREROUTING", "raw, conntrack, DNAT"),
    (Stage.ROUTING, IN): Slot(IN, 8, "IP Layer (L3)", "routing decision"),
    (Stage.IP_DEFRAG, IN): Slot(IN, 9, "IP defrag", "ip_defrag"),
    (Stage.NF_INPUT, IN): Slot(IN, 10, "Netfilter INPUT", "conntrack, filter"),
    (Stage.L4, IN): Slot(IN, 11, "Transport (L4)", "TCP/UDP/ICMP receive"),
    (Stage.SOCKET, IN): Slot(IN, 12, "Socket recvbuf", "recv / read"),
    (Stage.IP_FORWARD, FWD): Slot(FWD, 9, "IP forward", "ip_forward: TTL, MTU"),
    (Stage.NF_FORWARD, FWD): Slot(FWD, 11, "Netfilter FORWARD", "conntrack check"),
    (Stage.NIC_TX, OUT): Slot(OUT, 0, "NIC", "TX ring"),
    (Stage.QDISC, OUT): Slot(OUT, 1, "qdisc", "shaping"),
    (Stage.TC_EGRESS, OUT): Slot(OUT, 2, "TC egress [eBPF]", "clsact / filter"),
    (Stage.NF_EGRESS, OUT): Slot(OUT, 3, "Netfilter egress", "netdev chains"),
    (Stage.NEIGH, OUT): Slot(OUT, 4, "Neighbour", "ARP, hh cache"),
    (Stage.IP_OUTPUT, OUT): Slot(OUT, 5, "IP output", "ip_finish_output"),
    (Stage.NF_POSTROUTING, OUT): Slot(OUT, 6, "Netfilter POSTROUTING", "SNAT / MASQUERADE"),
    (Stage.NF_OUTPUT, OUT): Slot(OUT, 7, "Netfilter OUTPUT", "conntrack, DNAT, filter"),
    (Stage.ROUTING, OUT): Slot(OUT, 8, "IP Layer (L3)", "route lookup"),
    (Stage.L4, OUT): Slot(OUT, 9, "Transport (L4)", "TCP/UDP segment"),
    (Stage.SOCKET, OUT): Slot(OUT, 10, "Socket sendbuf", "write / send"),
    (Stage.BRIDGE, FWD): Slot(FWD, 3, "Linux bridge", "br_handle_frame, br_forward"),
    (Stage.NF, FWD): Slot(FWD, 5, "Netfilter", "hook not identified"),
    (Stage.UNKNOWN, FWD): Slot(FWD, 6, "Unknown stage", "function not identified"),
}
BOTH_SIDES = frozenset({Stage.ROUTING, Stage.L4, Stage.SOCKET})
SIDE_OF = {stage: side for (stage, side) in SLOTS if stage not in BOTH_SIDES}
# the map's own arrows, as the reference draws them: inbound down, outbound up, forward across
SKELETON = [(Stage.NIC_RX, IN), (Stage.NAPI, IN), (Stage.XDP, IN), (Stage.SKB, IN), (Stage.TC_INGRESS, IN),
            (Stage.NF_INGRESS, IN), (Stage.IP_RCV, IN), (Stage.NF_PREROUTING, IN), (Stage.ROUTING, IN),
            (Stage.IP_DEFRAG, IN), (Stage.NF_INPUT, IN), (Stage.L4, IN), (Stage.SOCKET, IN)]
SKELETON_OUT = [(Stage.SOCKET, OUT), (Stage.L4, OUT), (Stage.ROUTING, OUT), (Stage.NF_OUTPUT, OUT),
                (Stage.NF_POSTROUTING, OUT), (Stage.IP_OUTPUT, OUT), (Stage.NEIGH, OUT), (Stage.NF_EGRESS, OUT),
                (Stage.TC_EGRESS, OUT), (Stage.QDISC, OUT), (Stage.NIC_TX, OUT)]
SKELETON_FWD = [(Stage.ROUTING, IN), (Stage.IP_FORWARD, FWD), (Stage.NF_FORWARD, FWD), (Stage.NF_POSTROUTING, OUT)]

FAMILY_FILLS = (  # (stage prefix, fill of a crossed box): the first prefix a stage starts with wins
    ("NIC_", "#b7e1cd"), ("NAPI", "#b7e1cd"), ("XDP", "#93d3a2"), ("SKB", "#b7e1cd"),
    ("TC_", "#a4c8f0"), ("QDISC", "#a4c8f0"), ("NF", "#fcd29f"), ("L4", "#d5b8ea"), ("SOCKET", "#d5b8ea"),
    ("BRIDGE", "#f4b6c2"),
)
IP_FILL = "#d0d0d0"  # IP_RCV, ROUTING, IP_FORWARD, IP_DEFRAG, IP_OUTPUT, NEIGH
FAMILIES = [("driver, XDP", "#b7e1cd"), ("TC, qdisc", "#a4c8f0"), ("netfilter", "#fcd29f"), ("IP", IP_FILL),
            ("L4, socket", "#d5b8ea"), ("bridge", "#f4b6c2")]
PATH_COLOUR, CAUSED_COLOUR, DROP_COLOUR, DIFF_COLOUR = "#1a56db", "#8e24aa", "#d93025", "#f29900"
REWRITES = frozenset({"DNAT", "SNAT", "UN-DNAT", "UN-SNAT", "MASQUERADE", "REDIRECT", "MANGLE", "MARK"})
# conntrack's own hooks (nf_conntrack_core.c): the mock records them as hops, nf_tables
# tracing (nft_trace_notify()) reports chains only, so they are not compared between targets
CONNTRACK_HOOKS = frozenset({"nf_conntrack_in", "nf_confirm"})
DECISIVE = ("DROP", "REJECT", "EXCEEDED", "STOLEN", "QUEUE", "TX", "ABORTED", "REPLY", "REDIRECT", "SHOT", "FRAG")
TTL = re.compile(r"\bttl=(\d+)")

STYLE = f"""
text {{ font-family: monospace; font-size: {FONT}px; fill: #222; }}
.title {{ font-size: 12px; font-weight: bold; }}
.head {{ font-weight: bold; }}
.box {{ fill: #f6f6f6; stroke: #c8c8c8; }}
.stage {{ fill: #999; }}
.stage-on {{ fill: #111; font-weight: bold; }}
.sub {{ fill: #888; font-size: 9px; }}
.crossed {{ stroke: {PATH_COLOUR}; stroke-width: 2; }}
.caused-box {{ stroke: {CAUSED_COLOUR}; stroke-width: 2; stroke-dasharray: 5 3; }}
.unobserved {{ fill: #fff; stroke: #ccc; stroke-dasharray: 2 3; }}
.dropped {{ fill: #f8c9c4; stroke: {DROP_COLOUR}; stroke-width: 3; }}
.differs {{ fill: none; stroke: {DIFF_COLOUR}; stroke-width: 4; stroke-dasharray: 8 3; }}
.skeleton {{ stroke: #d6d6d6; stroke-width: 1.5; fill: none; marker-end: url(#grey-arrow); }}
.path {{ stroke: {PATH_COLOUR}; stroke-width: 4; fill: none; opacity: 0.55; marker-mid: url(#arrow); }}
.caused {{ stroke: {CAUSED_COLOUR}; stroke-width: 3; stroke-dasharray: 7 4; fill: none; opacity: 0.7;
          marker-mid: url(#caused-arrow); }}
.link {{ stroke: {CAUSED_COLOUR}; stroke-width: 1.5; stroke-dasharray: 2 3; fill: none; }}
.note {{ fill: #222; }}
.note-caused {{ fill: {CAUSED_COLOUR}; }}
.note-drop {{ fill: {DROP_COLOUR}; font-weight: bold; }}
.note-diff {{ fill: #b06000; font-weight: bold; }}
.badge {{ fill: {PATH_COLOUR}; }}
.badge-caused {{ fill: {CAUSED_COLOUR}; }}
.badge-text {{ fill: #fff; font-weight: bold; font-size: 10px; }}
.label-bg {{ fill: #fff; opacity: 0.9; }}
"""
DEFS = f"""<defs>
<marker id="arrow" viewBox="0 0 10 10" refX="5" refY="5" markerWidth="5" markerHeight="5" orient="auto">\
<path d="M0,0 L10,5 L0,10 z" fill="{PATH_COLOUR}"/></marker>
<marker id="caused-arrow" viewBox="0 0 10 10" refX="5" refY="5" markerWidth="5" markerHeight="5" orient="auto">\
<path d="M0,0 L10,5 L0,10 z" fill="{CAUSED_COLOUR}"/></marker>
<marker id="grey-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto">\
<path d="M0,0 L10,5 L0,10 z" fill="#c8c8c8"/></marker>
</defs>"""


@dataclass
class Visit:
    """Consecutive hops of one journey in one box."""

    slot: tuple[Stage, str]
    hops: list[Hop] = field(default_factory=list)


@dataclass
class PathGroup:
    """The packets that took one path (route_key()): an example journey (its packet
    is the first such packet's, "" for a path known only as text), how many packets,
    the path as route_text() prints it."""

    example: Journey
    packets: int
    text: str


# placing a journey on the map ----------------------------------------------------------------

def visits(journey: Journey) -> list[Visit]:
    """The boxes `journey` crossed, in order. ROUTING, L4 and SOCKET are on the side
    the packet is on: inbound from the wire until a stage of the forward or outbound
    path, outbound for a packet the DUT sent (its first one-sided stage is outbound)."""
    side = next((SIDE_OF[hop.stage] for hop in journey.hops if hop.stage in SIDE_OF), IN)
    side = OUT if side == OUT else IN
    placed: list[Visit] = []
    for hop in journey.hops:
        side = SIDE_OF.get(hop.stage, side)
        slot = (hop.stage, SIDE_OF.get(hop.stage) or (OUT if side == FWD else side))
        if placed and placed[-1].slot == slot:
            placed[-1].hops.append(hop)
        else:
            placed.append(Visit(slot, [hop]))
    drop = journey.drop
    if drop is not None and (not placed or placed[-1].slot[0] != drop.stage):
        drop_side = SIDE_OF.get(drop.stage, OUT if placed and placed[-1].slot[1] == OUT else IN)
        placed.append(Visit((drop.stage, drop_side)))
    return placed


def route_key(journey: Journey) -> tuple:
    """What the map shows of a journey: each hop's stage, where and verdict, the drop,
    the same of the packets it caused. Hops' summaries (conntrack tuples, addresses
    NAT wrote) are left out, so the packets of many flows along one path are one map."""
    drop = journey.drop
    return (tuple((hop.stage, hop.where, hop.verdict) for hop in journey.hops), drop and drop[:3],
            tuple(route_key(child) for child in journey.children))


def route_text(journey: Journey) -> str:
    """route_key() as a line: STAGE[where] -> verdict > ... > DROP reason at STAGE, caused: (...)."""
    parts = [str(hop._replace(summary="")) for hop in journey.hops]
    if journey.drop is not None:
        parts.append(f"DROP {journey.drop.reason} at {journey.drop.stage}")
    parts += [f"caused: ({route_text(child)})" for child in journey.children]
    return " > ".join(parts)


def distinct_paths(journeys: list[Journey]) -> list[PathGroup]:
    """The journeys grouped by route_key(), most packets first (then first seen): the
    journeys kept whole, and the summarised paths of a Journeys."""
    groups: dict[tuple, PathGroup] = {}

    def add(example: Journey, packets: int, key: tuple, text: str) -> None:
        if key in groups:
            groups[key].packets += packets
        else:
            groups[key] = PathGroup(example, packets, text)

    for journey in journeys:
        add(journey, 1, route_key(journey), "")
    for text, packets in getattr(journeys, "paths", ()):
        try:
            example = journey_of_path(text)
        except ValueError:  # "(paths after the first N distinct ones)": counted, not drawn
            add(Journey(text), packets, (text,), text)
        else:
            add(example, packets, route_key(example), "")
    for group in groups.values():
        group.text = group.text or route_text(group.example)
    return sorted(groups.values(), key=lambda group: -group.packets)


def observed_stages(target_name: str, capabilities: Iterable[str], journeys: list[Journey]) -> frozenset[Stage]:
    """The stages a target's journeys can show: every stage on the mock (it records
    every hop); on a real kernel the netfilter hooks once nftrace traced the test's
    packets, XDP and TC from the programs' run counts, and the stages of its drops
    (skb:kfree_skb)."""
    if target_name == "mock":
        return ALL_STAGES
    seen = {stage for journey in with_children(journeys) for stage in journey.stages}
    seen |= {journey.drop.stage for journey in with_children(journeys) if journey.drop is not None}
    if any(stage.startswith("NF") for stage in seen):
        seen |= {stage for stage in Stage if stage.startswith("NF")}
    capabilities = set(capabilities)
    if "journey.xdp" in capabilities:
        seen.add(Stage.XDP)
    if "journey.tc" in capabilities:
        seen |= {Stage.TC_INGRESS, Stage.TC_EGRESS}
    return frozenset(seen)


def wire_journeys(frame_log: list[tuple[str, str, bytes]]) -> list[Journey]:
    """Journeys of a target that recorded none, from its frames alone: each frame sent
    into a port crossed that port's NIC_RX, each that left one its NIC_TX."""
    stages = {"sent into": Stage.NIC_RX, "left": Stage.NIC_TX}
    return [Journey(describe(frame), [Hop(stages[direction], port, "", "frame on the wire")])
            for direction, port, frame in frame_log if direction in stages]


# drawing ----------------------------------------------------------------------------------------

def journey_map_svg(journeys: list[Journey], target: str = "", observed: frozenset[Stage] = ALL_STAGES) -> str:
    """One target's journeys on the reference's map: a map per distinct path (at most
    MAPS_SHOWN, most packets first), the other paths listed, a legend. `observed`:
    the stages this target can show (observed_stages()), the others drawn as such."""
    return _document(_columns({target: journeys}, {target: observed}), range(MAPS_SHOWN))


def journey_map_pages(journeys: list[Journey], target: str = "",
                      observed: frozenset[Stage] = ALL_STAGES) -> list[str]:
    """journey_map_svg() cut into one SVG per map, each small enough to read where a
    report shows an image scaled to its panel: the first with the other paths listed."""
    columns = _columns({target: journeys}, {target: observed})
    return [_document(columns, range(rank, rank + 1)) for rank in range(_maps(columns))]


def side_by_side_svg(by_target: Mapping[str, list[Journey]],
                     observed: Mapping[str, frozenset[Stage]] | None = None) -> str:
    """The maps of each target next to each other: each of the first target's drawn
    paths beside the other target's path most like it (paired_paths()), with the
    boxes where they differ outlined (a box crossed on one and not on the other, a
    verdict of the same chain or function that differs, another drop) among the
    stages both observe."""
    return _document(_columns(by_target, observed or {}), range(MAPS_SHOWN))


def side_by_side_pages(by_target: Mapping[str, list[Journey]],
                       observed: Mapping[str, frozenset[Stage]] | None = None) -> list[str]:
    """side_by_side_svg() cut into one SVG per pair of maps (journey_map_pages())."""
    columns = _columns(by_target, observed or {})
    return [_document(columns, range(rank, rank + 1)) for rank in range(_maps(columns))]


class Column(NamedTuple):
    """One target's side of a picture: its paths, the stages it observes, and per
    path the boxes that differ from the first target's path beside it."""

    target: str
    groups: list[PathGroup]
    observed: frozenset[Stage]
    marks: list[set]


def _columns(by_target: Mapping[str, list[Journey]], observed: Mapping[str, frozenset[Stage]]) -> list[Column]:
    names = list(by_target)
    seen = {name: observed.get(name, ALL_STAGES) for name in names}
    first = names[0]
    groups = {first: distinct_paths(by_target[first])}
    marks = {first: [set() for _ in groups[first]]}
    for name in names[1:]:
        both = seen[first] & seen[name]
        groups[name] = paired_paths(groups[first], distinct_paths(by_target[name]), both)
        marks[name] = [set() for _ in groups[name]]
        for rank, (mine, theirs) in enumerate(zip(groups[first][:MAPS_SHOWN], groups[name])):
            differing = differing_slots(mine.example, theirs.example, both)
            marks[first][rank] |= differing
            marks[name][rank] |= differing
    return [Column(name, groups[name], seen[name], marks[name]) for name in names]


def _maps(columns: list[Column]) -> int:
    return max(1, min(MAPS_SHOWN, max(len(column.groups) for column in columns)))


def _document(columns: list[Column], ranks: range) -> str:
    """The title, the maps of `ranks` of each column side by side (the paths past the
    maps listed under the first rank's), the legend."""
    canvas = Canvas(MAP_W * len(columns))
    title = " | ".join(f"{column.target + ': ' if column.target else ''}"
                       f"{_count(sum(g.packets for g in column.groups), 'packet')} on "
                       f"{_count(len(column.groups), 'distinct path')}" for column in columns)
    if len(columns) > 1:
        differ = sum(len(columns[0].marks[rank]) for rank in ranks if rank < len(columns[0].marks))
        title += f"; {_count(differ, 'box')} differ" + (" on this page" if len(ranks) < MAPS_SHOWN else "")
    canvas.text(MARGIN, 18, title, "title")
    bottom = max(_column(canvas, i * MAP_W, TITLE_H, column, ranks) for i, column in enumerate(columns))
    _legend(canvas, bottom, differences=len(columns) > 1)
    return canvas.svg(bottom + LEGEND_H)


def paired_paths(mine: list[PathGroup], theirs: list[PathGroup], observed: frozenset[Stage]) -> list[PathGroup]:
    """`theirs` reordered so that the n-th of the first MAPS_SHOWN of `mine` has beside
    it the path of `theirs` most like it: fewest differing boxes, then the nearest
    packet count, then the more frequent (the targets need not list a test's packets
    in one order); the rest follow, most packets first."""
    left = list(theirs)
    paired = []
    for group in mine[:MAPS_SHOWN]:
        if not left:
            break
        best = min(left, key=lambda other: (len(differing_slots(group.example, other.example, observed)),
                                            abs(other.packets - group.packets), left.index(other)))
        paired.append(best)
        left.remove(best)
    return paired + left


def differing_slots(left: Journey, right: Journey, observed: frozenset[Stage]) -> set[tuple[Stage, str]]:
    """The boxes where two journeys of one packet differ, among `observed` stages:
    crossed by one only; crossed by both with another verdict from the same chain or
    function (a hop of a function only one target names is not compared, nor are
    conntrack's hooks, CONNTRACK_HOOKS); the drop's box when the drops' reason or
    stage differ."""
    mine, theirs = _hops_by_slot(left), _hops_by_slot(right)
    differing = {slot for slot in mine.keys() ^ theirs.keys() if slot[0] in observed}
    for slot in mine.keys() & theirs.keys():
        wheres = {hop.where for hop in mine[slot]} & {hop.where for hop in theirs[slot]}
        for where in wheres:
            verdicts = [[hop.verdict for hop in hops[slot] if hop.where == where and hop.verdict]
                        for hops in (mine, theirs)]
            if all(verdicts) and verdicts[0] != verdicts[1]:
                differing.add(slot)
    drops = [journey.drop and (journey.drop.reason, journey.drop.stage) for journey in (left, right)]
    if drops[0] != drops[1]:
        differing |= {visits(journey)[-1].slot for journey in (left, right)
                      if journey.drop is not None and journey.drop.stage in observed}
    return differing


def _hops_by_slot(journey: Journey) -> dict[tuple[Stage, str], list[Hop]]:
    """The hops a real kernel's tracers can report too, by box (a drop's box with none)."""
    slots: dict[tuple[Stage, str], list[Hop]] = {}
    for visit in visits(journey):
        hops = [hop for hop in visit.hops if hop.where not in CONNTRACK_HOOKS]
        if hops or not visit.hops:
            slots.setdefault(visit.slot, []).extend(hops)
    return slots


def _column(canvas: "Canvas", left: float, top: float, column: Column, ranks: range) -> float:
    """The maps of `ranks` from `top`, then, under the first map, the paths past
    MAPS_SHOWN listed; the y below."""
    groups, target = column.groups, column.target
    total = sum(group.packets for group in groups)
    if not groups:
        canvas.text(left + MARGIN, top + 14, "(no journeys recorded)")
        return top + 2 * LIST_LINE
    for rank in ranks:
        if rank >= len(groups):
            break
        canvas.shapes.append(f'<g class="map" data-target="{escape(target)}" data-rank="{rank + 1}">')
        _map(canvas, left, top, groups[rank], f"{target + ' ' if target else ''}path {rank + 1} of {len(groups)}",
             total, column.observed, column.marks[rank])
        canvas.shapes.append("</g>")
        top += MAP_H
    rest = groups[MAPS_SHOWN:]
    if rest and ranks.start == 0:
        canvas.text(left + MARGIN, top + 10, f"{_count(len(rest), 'more path')}, "
                                              f"{_count(sum(g.packets for g in rest), 'packet')}:", "head")
        top += LIST_LINE
        width = int((MAP_W - 2 * MARGIN) / CHAR)
        for group in rest[:PATHS_LISTED]:
            canvas.text(left + MARGIN, top + 10, _clip(f"{group.packets:>7} x {group.text}", width), title=group.text)
            top += LIST_LINE
        if len(rest) > PATHS_LISTED:
            canvas.text(left + MARGIN, top + 10, f"... {_count(len(rest) - PATHS_LISTED, 'more path')}: "
                                                  "every path is in the journeys' text attachment")
            top += LIST_LINE
    return top + 6


def _map(canvas: "Canvas", left: float, top: float, group: PathGroup, heading: str, total: int,
         observed: frozenset[Stage], marks: set) -> None:
    journey = group.example
    percent = 100 * group.packets / total
    share = "" if group.packets == total else f" ({percent:.0f}%)" if percent >= 1 else " (<1%)"
    canvas.rect(left + 4, top + 2, MAP_W - 8, MAP_H - 6, "map-frame", fill="none", stroke="#e0e0e0")
    canvas.text(left + MARGIN, top + 15, f"{heading}: {_count(group.packets, 'packet')}{share}", "head")
    example = str(journey.packet) or "(packets counted by path, not kept one by one)"
    canvas.text(left + MARGIN, top + 28, _clip(("e.g. " if group.packets > 1 else "") + example,
                                               int((MAP_W - 2 * MARGIN) / CHAR)), title=example)
    canvas.text(left + X_IN, top + HEADER_H - 4, "INBOUND", "head")
    canvas.text(left + X_OUT, top + HEADER_H - 4, "OUTBOUND", "head")
    canvas.text(left + X_FWD, top + HEADER_H + 8 * ROW + 12, "FORWARD", "head")
    main = visits(journey)
    caused = [(chr(ord("a") + i), child, visits(child)) for i, child in enumerate(_descendants(journey))]
    crossed = {visit.slot for visit in main}
    caused_slots = {visit.slot for _, _, placed in caused for visit in placed}
    drawn = {slot for slot in SLOTS if slot[0] not in (Stage.NF, Stage.UNKNOWN)} | crossed | caused_slots
    for chain, css in ((SKELETON, "skeleton"), (SKELETON_OUT, "skeleton"), (SKELETON_FWD, "skeleton")):
        for a, b in zip(chain, chain[1:]):
            canvas.line(_edge(left, top, a, b), css)
    canvas.polyline([_centre(left, top, visit.slot) for visit in main], "path")
    for _, child, placed in caused:
        canvas.polyline([_centre(left, top, visit.slot) for visit in placed], "caused")
    drop_slot = main[-1].slot if journey.drop is not None and main else None
    for slot in sorted(drawn, key=lambda s: (SLOTS[s].column, SLOTS[s].row)):
        box = SLOTS[slot]
        x, y = left + box.x, box.y(top)
        if slot == drop_slot:
            css = "box dropped"
        elif slot in crossed:
            css = "box crossed"
        elif slot in caused_slots:
            css = "box caused-box"
        elif slot[0] not in observed:
            css = "box unobserved"
        else:
            css = "box"
        fill = _fill(slot[0]) if slot in crossed | caused_slots and slot != drop_slot else None
        canvas.rect(x, y, BOX_W, BOX_H, css, fill=fill, stage=_stage_id(slot))
        canvas.text(x + 7, y + 10, box.title, "stage-on" if slot in crossed | caused_slots else "stage")
        canvas.text(x + 7, y + 20, box.subtitle if slot[0] in observed else "(not observed here)", "sub")
        if slot in marks:
            canvas.rect(x - 4, y - 4, BOX_W + 8, BOX_H + 8, "differs", stage=_stage_id(slot))
    _badges(canvas, left, top, main, "badge", "")
    for letter, _, placed in caused:
        _badges(canvas, left, top, placed, "badge-caused", letter)
    _notes(canvas, left, top, journey, main, caused, marks)
    _links(canvas, left, top, main, caused)


def _descendants(journey: Journey) -> list[Journey]:
    return [each for child in journey.children for each in with_children([child])]


def _badges(canvas: "Canvas", left: float, top: float, placed: list[Visit], css: str, prefix: str) -> None:
    numbers: dict[tuple[Stage, str], list[str]] = {}
    for order, visit in enumerate(placed, 1):
        numbers.setdefault(visit.slot, []).append(f"{prefix}{order}")
    for slot, labels in numbers.items():
        box = SLOTS[slot]
        label = ",".join(labels)
        width = max(18, len(label) * 6.5 + 8)
        x = left + box.x + BOX_W - width - 3 if prefix else left + box.x - width + 4
        y = box.y(top) + BOX_H / 2
        canvas.rect(x, y - 9, width, 18, css, rx=9)
        canvas.text(x + width / 2, y + 4, label, "badge-text", anchor="middle", stage=_stage_id(slot))


def _notes(canvas: "Canvas", left: float, top: float, journey: Journey, main: list[Visit],
           caused: list[tuple[str, Journey, list[Visit]]], marks: set) -> None:
    """Beside each box: its hops' verdicts and rewrites, the drop, what differs."""
    notes: dict[tuple[Stage, str], list[tuple[int, int, str, str]]] = {}  # slot -> (priority, order, text, css)
    order = 0
    for prefix, owner, placed, css in [("", journey, main, "note")] + \
            [(letter + ": ", child, placed, "note-caused") for letter, child, placed in caused]:
        for visit in placed:
            for hop in visit.hops:
                order += 1
                notes.setdefault(visit.slot, []).append((_priority(hop), order, prefix + _hop_note(hop, owner), css))
        if owner.drop is not None and placed:
            drop = owner.drop
            notes.setdefault(placed[-1].slot, []).append(
                (0, order, f"{prefix}DROP {drop.reason}" + (f" in {drop.location}" if drop.location else ""),
                 "note-drop"))
    for slot in marks:
        notes.setdefault(slot, []).append((0, -1, "differs from the other target", "note-diff"))
    for slot, lines in notes.items():
        box = SLOTS[slot]
        # the forward column's notes go under its boxes, right of the path's line down the
        # column and below the outbound column's last row
        chars = int((MAP_W - FWD_NOTE_X - MARGIN if box.column == FWD else NOTE_W) / CHAR)
        shown: list[tuple[int, str, str, str]] = []  # (order, line, css, whole note)
        for _, order, text, css in sorted(lines):
            wrapped = _wrap(text, chars, NOTE_LINES - len(shown))
            if not wrapped:
                break
            shown += [(order, line, css, text) for line in wrapped]
        hidden = len(lines) - len({text for _, _, _, text in shown})
        shown.sort(key=lambda line: line[0])
        if hidden:  # in the box's corner: the text attachment has them
            canvas.text(left + box.x + BOX_W - 4, box.y(top) + BOX_H - 4, f"+{_count(hidden, 'note')}", "sub",
                        anchor="end")
        for i, (_, line, css, text) in enumerate(shown):
            if box.column == FWD:
                canvas.text(left + FWD_NOTE_X, box.y(top) + BOX_H + 9 + LINE * i, line, css, title=text)
                continue
            y = box.y(top) + BOX_H / 2 + (i - (len(shown) - 1) / 2) * LINE + 3.5
            if box.column == IN:
                canvas.text(left + X_IN - 20, y, line, css, anchor="end", title=text)
            else:
                canvas.text(left + X_OUT + BOX_W + 8, y, line, css, title=text)


def _wrap(text: str, chars: int, lines: int) -> list[str]:
    """`text` in at most min(lines, 2) lines of `chars`, broken at a space where one
    is near the end, the last clipped; [] when no line is left."""
    wrapped: list[str] = []
    while text and len(wrapped) < min(lines, 2):
        if len(text) <= chars or len(wrapped) == min(lines, 2) - 1:
            wrapped.append(_clip(text, chars))
            break
        cut = text.rfind(" ", chars // 2, chars)
        cut = cut if cut > 0 else chars
        wrapped.append(text[:cut])
        text = "  " + text[cut:].lstrip()
    return wrapped


def _priority(hop: Hop) -> int:
    """Which notes a crowded box keeps: rewrites and verdicts that end or turn the
    packet, then a rule's verdict, then the rest (conntrack states, devices)."""
    if hop.verdict in REWRITES or any(word in hop.verdict for word in DECISIVE):
        return 1
    return 2 if str(hop.summary).startswith("rule") else 3


def _hop_note(hop: Hop, journey: Journey) -> str:
    """What a hop did, as one line: where: verdict summary; ip_forward's TTL decrement
    (ip_decrease_ttl() before the FORWARD hook) where the packet line gives its TTL."""
    text = ": ".join(part for part in (hop.where, " ".join(str(p) for p in (hop.verdict, hop.summary) if p)) if part)
    ttl = TTL.search(str(journey.packet))
    if hop.stage == Stage.IP_FORWARD and hop.verdict == "OK" and ttl:
        text += f", ttl {ttl[1]} -> {int(ttl[1]) - 1}"
    return text


def _links(canvas: "Canvas", left: float, top: float, main: list[Visit],
           caused: list[tuple[str, Journey, list[Visit]]]) -> None:
    """A dotted line from the box where a packet was caused to its first box, with what it is."""
    for letter, child, placed in caused:
        if not main or not placed:
            continue
        (x1, y1), (x2, y2) = _centre(left, top, main[-1].slot), _centre(left, top, placed[0].slot)
        canvas.line((x1, y1, x2, y2), "link")
        what = str(child.packet).split(": ")[0] or "a packet it caused"
        label = _clip(f"{letter}: caused {what}", 34)
        # right-aligned against the caused packet's first box, under its centre line
        x, y = x2 - BOX_W / 2 - 10, y2 + BOX_H / 2 + 9 + (ord(letter) - ord("a")) * 12
        if SLOTS[placed[0].slot].column == IN:
            x, y = x1 + BOX_W / 2 + 10 + len(label) * CHAR, y1 - BOX_H / 2 - 4
        canvas.rect(x - len(label) * CHAR - 3, y - 9, len(label) * CHAR + 6, 12, "label-bg")
        canvas.text(x, y, label, "note-caused", anchor="end", title=str(child.packet))


def _legend(canvas: "Canvas", top: float, differences: bool) -> None:
    canvas.shapes.append('<g id="legend">')
    y = top + 6
    canvas.rect(MARGIN, y, 18, 12, "box crossed", fill=FAMILIES[2][1])
    x = canvas.legend_item(MARGIN + 24, y, "stage crossed")
    canvas.rect(x, y - 3, 20, 18, "badge", rx=9)
    canvas.text(x + 10, y + 10, "1", "badge-text", anchor="middle")
    x = canvas.legend_item(x + 26, y, "order crossed")
    canvas.rect(x, y, 18, 12, "box")
    x = canvas.legend_item(x + 24, y, "not crossed")
    canvas.rect(x, y, 18, 12, "box unobserved")
    canvas.legend_item(x + 24, y, "not observed by this target")
    y += 21
    canvas.rect(MARGIN, y, 18, 12, "box dropped")
    x = canvas.legend_item(MARGIN + 24, y, "dropped: reason and kernel function beside it")
    canvas.line((x, y + 6, x + 30, y + 6), "caused")
    x = canvas.legend_item(x + 36, y, "a packet it caused (ICMP error, reply, reset): a1, a2...")
    if differences:
        canvas.rect(x, y - 2, 22, 16, "differs")
        canvas.legend_item(x + 28, y, "differs between the targets")
    y += 21
    canvas.text(MARGIN, y + 10, "stage families:", "head")
    x = MARGIN + 16 * CHAR
    for name, fill in FAMILIES:
        canvas.rect(x, y, 18, 12, "box crossed", fill=fill)
        x = canvas.legend_item(x + 24, y, name)
    canvas.text(x + 10, y + 10, "beside a box, its hops: where: verdict what it did", "sub")
    canvas.shapes.append("</g>")


def _stage_id(slot: tuple[Stage, str]) -> str:
    """A box's name in the SVG (data-stage): the stage, and the side for one on both."""
    return f"{slot[0]}.{slot[1]}" if slot[0] in BOTH_SIDES else str(slot[0])


def _fill(stage: Stage) -> str:
    return next((fill for prefix, fill in FAMILY_FILLS if stage.startswith(prefix)), IP_FILL)


def _centre(left: float, top: float, slot: tuple[Stage, str]) -> tuple[float, float]:
    box = SLOTS[slot]
    return left + box.x + BOX_W / 2, box.y(top) + BOX_H / 2


def _edge(left: float, top: float, a: tuple[Stage, str], b: tuple[Stage, str]) -> tuple[float, float, float, float]:
    """The skeleton arrow from box a to box b, edge to edge."""
    (x1, y1), (x2, y2) = _centre(left, top, a), _centre(left, top, b)
    if SLOTS[a].column == SLOTS[b].column:
        sign = 1 if y2 > y1 else -1
        return x1, y1 + sign * BOX_H / 2, x2, y2 - sign * BOX_H / 2
    return x1 + BOX_W / 2 * (1 if x2 > x1 else -1), y1, x2 - BOX_W / 2 * (1 if x2 > x1 else -1), y2


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 'es' if noun.endswith('x') else 's'}"


def _clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[:chars - 1] + "…"


class Canvas:
    """SVG shapes in drawing order (later ones on top) and the document around them."""

    def __init__(self, width: float) -> None:
        self.width = width
        self.shapes: list[str] = []

    def rect(self, x: float, y: float, width: float, height: float, css: str, fill: str | None = None,
             stroke: str | None = None, rx: float = 4, stage: str = "") -> None:
        paint = (f' style="fill:{fill}"' if fill else "") + (f' stroke="{stroke}"' if stroke else "")
        paint += f' data-stage="{stage}"' if stage else ""
        self.shapes.append(f'<rect x="{x:.0f}" y="{y:.0f}" width="{width:.0f}" height="{height:.0f}" rx="{rx}" '
                           f'class="{css}"{paint}/>')

    def text(self, x: float, y: float, label: str, css: str = "", anchor: str = "start", title: str = "",
             stage: str = "") -> None:
        attributes = (f' class="{css}"' if css else "") + (f' text-anchor="{anchor}"' if anchor != "start" else "")
        attributes += f' data-stage="{stage}"' if stage else ""
        tooltip = f"<title>{escape(title)}</title>" if title and title != label else ""
        self.shapes.append(f'<text x="{x:.0f}" y="{y:.0f}"{attributes}>{tooltip}{escape(label)}</text>')

    def legend_item(self, x: float, y: float, label: str) -> float:
        self.text(x, y + 10, label)
        return x + len(label) * CHAR + 16

    def line(self, ends: tuple[float, float, float, float], css: str) -> None:
        x1, y1, x2, y2 = ends
        self.shapes.append(f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" class="{css}"/>')

    def polyline(self, points: list[tuple[float, float]], css: str) -> None:
        """Through `points` with a vertex half way along each segment, where the arrow goes."""
        if len(points) < 2:
            return
        steps = [points[0]]
        for (x1, y1), (x2, y2) in zip(points, points[1:]):
            steps += [((x1 + x2) / 2, (y1 + y2) / 2), (x2, y2)]
        self.shapes.append(f'<polyline points="{" ".join(f"{x:.0f},{y:.0f}" for x, y in steps)}" class="{css}"/>')

    def svg(self, height: float) -> str:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width:.0f}" height="{height:.0f}" '
                f'viewBox="0 0 {self.width:.0f} {height:.0f}">\n<title>journey map</title>\n'
                f"<style>{STYLE}</style>\n{DEFS}\n" + "\n".join(self.shapes) + "\n</svg>\n")


# Allure: the attachments of one result, the side-by-side over a results directory -----------------

JSON_NAME = "journeys ({}).json"
TRAFFIC_RUNS_DRAWN = 3
TARGET_ORDER = ("mock", "netns", "dut", "lab")  # the model first, beside the real kernels
SIDE_BY_SIDE_NAME = "journeys side by side ({})"


def attach_journeys(target_name: str, capabilities: Iterable[str], recorded: list[Journey], text: str,
                    frame_log: list[tuple[str, str, bytes]]) -> None:
    """Attach a test's journeys on one target to its Allure result: the maps, a page
    each (journey_map_pages(); from the frames alone where the target recorded no
    journey, as the netns lab does for a test that configured no nftables), the text
    and the JSON add_side_by_side() reads."""
    try:
        import allure
        from allure_commons import plugin_manager
    except ImportError:
        return
    if not plugin_manager.hook.attach_data.get_hookimpls():  # no --alluredir: nobody keeps them
        return
    drawn = recorded or wire_journeys(frame_log)
    if drawn:
        observed = observed_stages(target_name, capabilities, recorded)  # frames alone are not compared
        for name, svg in _paged(f"journeys ({target_name})", journey_map_pages(drawn, target_name, observed)):
            allure.attach(svg, name=name, attachment_type=allure.attachment_type.SVG)
        data = {"target": target_name, "observed": sorted(observed), **journeys_to_json(drawn, WHOLE_IN_ATTACHMENT)}
        allure.attach(json.dumps(data), name=JSON_NAME.format(target_name), attachment_type=allure.attachment_type.JSON)
    if text:
        allure.attach(text, name=f"journeys ({target_name}).txt", attachment_type=allure.attachment_type.TEXT)


def attach_traffic_paths(target_name: str, results: list[Result]) -> None:
    """Attach the paths of each line-rate run of a test (Result.paths: every packet's,
    with their counts, where the target observes them) as maps, TRAFFIC_RUNS_DRAWN
    runs at most (an RFC 2544 search runs a trial per rate: its report has them)."""
    try:
        import allure
        from allure_commons import plugin_manager
    except ImportError:
        return
    if not plugin_manager.hook.attach_data.get_hookimpls():
        return
    drawn = [result for result in results if result.paths][:TRAFFIC_RUNS_DRAWN]
    for run, result in enumerate(drawn, 1):
        name = f"traffic paths ({target_name})" + (f", run {run}" if len(drawn) > 1 else "")
        for page_name, svg in _paged(name, journey_map_pages(Journeys(paths=result.paths), target_name)):
            allure.attach(svg, name=page_name, attachment_type=allure.attachment_type.SVG)


def add_side_by_side(results_dir: str | os.PathLike) -> int:
    """For each test case with results on more than one target in an allure-results
    directory, add to each of those results the targets' maps side by side (SVG
    attachments, a page per pair of maps, replacing those an earlier call added).
    Returns how many results got them."""
    directory = Path(results_dir)
    cases: dict[tuple, list[tuple[Path, dict]]] = {}
    for path in sorted(directory.glob("*-result.json")):
        result = json.loads(path.read_text())
        cases.setdefault(case_key(result), []).append((path, result))
    changed = 0
    for results in cases.values():
        journeys = {}
        for path, result in results:
            data = _journey_data(directory, result)
            if data is not None:
                journeys[data["target"]] = data
        if len(journeys) < 2:
            continue
        names = sorted(journeys, key=_target_order)
        pages = _paged(SIDE_BY_SIDE_NAME.format(" | ".join(names)), side_by_side_pages(
            {name: journeys_from_json(journeys[name]) for name in names},
            {name: frozenset(Stage(s) for s in journeys[name]["observed"]) for name in names}))
        for path, result in results:
            kept = [a for a in result.get("attachments", []) if not a["name"].startswith(SIDE_BY_SIDE_NAME[:-3])]
            for stale in set(a["source"] for a in result.get("attachments", [])) - set(a["source"] for a in kept):
                (directory / stale).unlink(missing_ok=True)
            for name, svg in pages:
                source = f"{uuid.uuid4()}-attachment.svg"
                (directory / source).write_text(svg)
                kept.append({"name": name, "source": source, "type": "image/svg+xml"})
            result["attachments"] = kept
            path.write_text(json.dumps(result))
            changed += 1
    return changed


def _paged(name: str, pages: list[str]) -> list[tuple[str, str]]:
    """Attachment names of a picture's pages: the first is `name`, then "name, path 2"..."""
    return [(name if rank == 0 else f"{name}, path {rank + 1}", svg) for rank, svg in enumerate(pages)]


def _journey_data(directory: Path, result: dict) -> dict | None:
    for attachment in result.get("attachments", []):
        name = attachment["name"]
        if name.startswith("journeys (") and name.endswith(").json"):
            return json.loads((directory / attachment["source"]).read_text())
    for step in result.get("steps", []):
        if (found := _journey_data(directory, step)) is not None:
            return found
    return None


def _target_order(name: str) -> tuple[int, str]:
    return TARGET_ORDER.index(name) if name in TARGET_ORDER else len(TARGET_ORDER), name
