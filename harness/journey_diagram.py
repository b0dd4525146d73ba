"""Journeys as a diagram: one SVG, attached to the Allure report next to the text.

Each journey is a lane read top to bottom: the packet's summary, then one box per
hop coloured by the part of the stack it belongs to (driver and XDP, TC,
netfilter, IP, transport and sockets, egress), and a red box where the packet
was dropped, with the kernel's reason and function. Packets a journey caused
(an ICMP error, a TCP reset, a fragment) are lanes of their own, indented.
Packets past the target's journey limit follow as one line per path with its count.
Plain SVG text and rectangles, so any browser shows it without scripts.
"""
from __future__ import annotations

from html import escape

from harness.journey import Journey, Journeys

FAMILY_COLOURS = (  # (stage prefix, fill): the first prefix a stage starts with wins
    ("NIC_", "#d9ead3"), ("NAPI", "#d9ead3"), ("XDP", "#b6d7a8"), ("SKB", "#d9ead3"),
    ("TC_", "#cfe2f3"), ("QDISC", "#cfe2f3"), ("NF_", "#fce5cd"),
    ("L4", "#e6d5f0"), ("SOCKET", "#e6d5f0"),
)
DEFAULT_FILL = "#eeeeee"  # IP_RCV, ROUTING, IP_FORWARD, IP_DEFRAG, IP_OUTPUT, NEIGH
DROP_FILL = "#f4cccc"
WIDTH = 960
BOX_HEIGHT = 22
GAP = 6
INDENT = 40
CHARS = 140  # what fits on one box line at 11px monospace


def journeys_svg(journeys: list[Journey]) -> str:
    """The diagram of `journeys` as an SVG document."""
    shapes: list[str] = []
    y = GAP
    for journey in journeys:
        y = _lane(journey, 0, y, shapes) + 2 * GAP
    if isinstance(journeys, Journeys) and journeys.summarised:
        shapes.append(_text(GAP, y + 14, f"{journeys.summarised} more packets after the first {journeys.limit}, "
                                         "summarised by path:", bold=True))
        y += BOX_HEIGHT
        for path, packets in journeys.paths:
            shapes.append(_text(GAP, y + 14, f"{packets:>8} x {path}"))
            y += BOX_HEIGHT
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y}" '
            f'font-family="monospace" font-size="11">\n' + "\n".join(shapes) + "\n</svg>\n")


def _lane(journey: Journey, depth: int, y: int, shapes: list[str]) -> int:
    x = GAP + depth * INDENT
    shapes.append(_text(x, y + 14, str(journey.packet), bold=True))
    y += BOX_HEIGHT
    for hop in journey.hops:
        shapes.append(_arrow(x + 12, y - GAP, y))
        shapes.append(_box(x, y, _fill(hop.stage), str(hop)))
        y += BOX_HEIGHT + GAP
    if journey.drop is not None:
        drop = journey.drop
        where = f" in {drop.location}" if drop.location else ""
        shapes.append(_arrow(x + 12, y - GAP, y))
        shapes.append(_box(x, y, DROP_FILL, f"DROP {drop.reason} at {drop.stage}{where}"))
        y += BOX_HEIGHT + GAP
    for child in journey.children:
        y = _lane(child, depth + 1, y + GAP, shapes)
    return y


def _fill(stage: str) -> str:
    return next((fill for prefix, fill in FAMILY_COLOURS if stage.startswith(prefix)), DEFAULT_FILL)


def _box(x: int, y: int, fill: str, label: str) -> str:
    return (f'<rect x="{x}" y="{y}" width="{WIDTH - x - GAP}" height="{BOX_HEIGHT}" rx="4" '
            f'fill="{fill}" stroke="#888"/>' + _text(x + 6, y + 15, label))


def _arrow(x: int, y1: int, y2: int) -> str:
    return f'<line x1="{x}" y1="{y1}" x2="{x}" y2="{y2}" stroke="#888"/>'


def _text(x: int, y: int, label: str, bold: bool = False) -> str:
    if len(label) > CHARS:
        label = label[:CHARS - 1] + "…"
    weight = ' font-weight="bold"' if bold else ""
    return f'<text x="{x}" y="{y}"{weight}>{escape(label)}</text>'
