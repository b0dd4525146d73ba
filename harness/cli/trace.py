"""One `journey trace` run: a fresh DUT, the addressing plan, the setup file's
commands, the frames sent into one port; what it records (the journeys, the frames
that left each port), and how it prints (text, JSON).

The text groups each packet's hops under the columns of the reference's map, as
the journey map places them (harness/report/journey_map.py visits()): inbound (NIC
to the routing decision, and on to INPUT, L4 and the socket for a local packet),
forward (ip_forward and the FORWARD hook) and outbound (POSTROUTING to the NIC; for
a packet the DUT sends itself, from the socket down). Hops print as in a failing
test's journeys (Hop.__str__), numbered in order; each packet ends with where it
went: the port it left, the socket it was queued on, the drop with the kernel's
reason and function, or the last hop the target saw. SVG and JSON are the journey
map's and the journeys' own (journey_map_svg(), journeys_to_json()).
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from harness import labfile
from harness.cli.setup_file import SetupCommand
from harness.journey import Journey, Journeys, Stage, journeys_to_json
from harness.plugin import LabSession
from harness.packets import describe
from harness.report.journey_map import FWD, IN, OUT, journey_map_svg, observed_stages, visits, wire_journeys
from harness.target import CommandError, Target, TargetUnavailable
from harness.testing import plan_hosts, plan_router

TARGETS = ("mock", "dut")

COLUMNS = {IN: "inbound", FWD: "forward", OUT: "outbound"}
# the lab's hops whose hook or function its tracers could not tell: in the column the packet is in
UNPLACED = frozenset({Stage.NF, Stage.UNKNOWN})


class SetupFailed(Exception):
    """A setup command failed on the target: names the file, the line and the tool's message."""


@dataclass
class Trace:
    """What one run of frames through a target recorded."""

    target: str
    port: str
    sent: list[bytes]
    journeys: list[Journey]
    left: dict[str, list[bytes]] = field(default_factory=dict)  # frames out, by DUT port
    capabilities: frozenset[str] = frozenset()

    @property
    def observed(self) -> frozenset[Stage]:
        """The stages this target's journeys can show (journey_map.observed_stages())."""
        return observed_stages(self.target, self.capabilities, self.journeys)

    def drawn(self) -> list[Journey]:
        """The journeys to draw: the recorded ones, or where the target recorded none
        (the netns lab without nftables), the frames on the wire."""
        frame_log = [("sent into", self.port, frame) for frame in self.sent]
        frame_log += [("left", port, frame) for port, frames in self.left.items() for frame in frames]
        return self.journeys or wire_journeys(frame_log)


# --plan: what the DUT has before the setup file runs (harness.testing's addressing plan)
PLANS = {"router": plan_router, "hosts": plan_hosts, "none": lambda target: []}


@contextmanager
def opened_target(name: str, lab_file: str | None = None) -> Iterator[Target]:
    """A fresh DUT, closed after: the mock kernel; the netns lab (the real kernel of
    this host in network namespaces of its own, never the host's); or with a lab file,
    its first station's DUT, claimed and given back as a pytest session does (LabSession)."""
    if lab_file is not None:
        with _lab_session(lab_file) as session:
            target = session.target()
            try:
                yield target
            finally:
                target.close()
        return
    target = fresh_target(name)
    try:
        yield target
    finally:
        target.close()


def fresh_target(name: str) -> Target:
    """A new DUT of target `name` on this machine (the mock, or the netns lab); the
    caller closes it."""
    if name == "mock":
        from harness.mockkernel.target import MockTarget  # the chosen target only: each loads a world
        return MockTarget()
    if os.geteuid() != 0:
        raise TargetUnavailable("the dut target (--target=dut, and diff) runs the packet through this machine's "
                                "kernel in network namespaces the netns lab creates, which needs root: run journey "
                                "as root (`sudo journey ...`), or trace on --target=mock")
    from harness.drivers.dut import NetnsTarget  # the chosen target only: each loads a world
    return NetnsTarget()


@contextmanager
def _lab_session(lab_file: str) -> Iterator[LabSession]:
    claim = labfile.claim_station(labfile.load_lab(lab_file), None)  # the first station, as pytest without xdist
    session = LabSession(claim.station, claim, lab_file, dry_run=False)
    try:
        yield session
    finally:
        session.close()


def run_trace(target_name: str, port: str, frames: list[bytes], setup: Sequence[SetupCommand],
              setup_name: str, plan: str = "router", lab_file: str | None = None) -> Trace:
    """Send `frames` into `port` of a fresh `target_name` DUT (with `lab_file`, a lab
    station's) set up with the plan and `setup`, and record what happened."""
    with opened_target(target_name, lab_file) as target:
        PLANS[plan](target)
        return trace_on(target, port, frames, setup, setup_name)


def trace_on(target: Target, port: str, frames: list[bytes], setup: Sequence[SetupCommand],
             setup_name: str, one_send_each: bool = False) -> Trace:
    """run_trace() on `target`, a fresh DUT the plan has been applied to.
    `one_send_each`: send the frames one per send(), so that the netns lab, which
    tells XDP and TC verdicts from counters read around each send
    (drivers/xdpstats.py), gives each frame and its answers their own."""
    for command in setup:
        try:
            target.sh(list(command.argv), stdin=command.stdin)
        except CommandError as exc:
            raise SetupFailed(f"{setup_name}:{command.line}: {exc}") from None
    target.reset()  # what the setup sent or recorded is not the packet's
    for batch in ([frame] for frame in frames) if one_send_each else [frames]:
        target.send(port, batch)
    left = target.collect_all()
    return Trace(target.name, port, frames, target.journeys(), left, target.capabilities)


def render_text(trace: Trace) -> str:
    count = len(trace.sent)
    lines = [f"journey on {trace.target}: {count} frame{'' if count == 1 else 's'} sent into {trace.port}"]
    for number, journey in enumerate(trace.journeys, 1):
        lines.append("")
        lines += _packet_lines(journey, f"packet {number}: ", "")
    if isinstance(trace.journeys, Journeys) and trace.journeys.summarised:
        lines += ["", f"{trace.journeys.summarised} more packets, summarised by path:"]
        lines += [f"{packets:>8} x {path}" for path, packets in trace.journeys.paths]
    if not trace.journeys:
        lines += ["", f"(no journeys recorded: {trace.target} reported no hop and no drop of these frames)"]
    lines += ["", "frames out"]
    lines += _frames_out_lines(trace.left)
    return "\n".join(lines) + "\n"


def _packet_lines(journey: Journey, title: str, indent: str) -> list[str]:
    lines = [f"{indent}{title}{journey.packet}"]
    column = None
    hops = [(visit.slot, hop) for visit in visits(journey) for hop in visit.hops]
    for number, ((stage, side), hop) in enumerate(hops, 1):
        placed = (column or COLUMNS[IN]) if stage in UNPLACED else COLUMNS[side]
        if placed != column:
            column = placed
            lines.append(f"{indent}  {column}")
        lines.append(f"{indent}  {number:>4}  {hop}")
    lines.append(f"{indent}  => {_ending(journey)}")
    for child in journey.children:
        lines += _packet_lines(child, "caused: ", indent + "    ")
    return lines


def _ending(journey: Journey) -> str:
    if journey.drop is not None:
        return str(journey.drop._replace(packet=""))
    if not journey.hops:
        return "no hop recorded"
    last = journey.hops[-1]
    if last.stage == Stage.NIC_TX and last.verdict == "XMIT":
        return f"left {last.where}"
    if last.stage == Stage.SOCKET:
        return f"queued on socket {last.where}"
    return f"no drop; last seen at {last}"


def _frames_out_lines(left: dict[str, list[bytes]]) -> list[str]:
    silent = [port for port, frames in left.items() if not frames]
    lines = [f"  {port}: {describe(frame)}" for port, frames in left.items() for frame in frames]
    if silent:
        lines.append(f"  {', '.join(silent)}: none")
    return lines


def render_json(trace: Trace) -> dict:
    """A run as JSON-ready data: the target, the port, the frames sent and those that
    left each port (hex), the stages it observes, and its journeys (journeys_to_json())."""
    return {"target": trace.target, "port": trace.port, "sent": [frame.hex() for frame in trace.sent],
            "left": {port: [frame.hex() for frame in frames] for port, frames in trace.left.items()},
            "observed": sorted(trace.observed), **journeys_to_json(trace.journeys)}


def render_svg(trace: Trace) -> str:
    return journey_map_svg(trace.drawn(), trace.target, trace.observed)
