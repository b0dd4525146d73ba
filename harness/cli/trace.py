"""One `journey trace` run: a fresh DUT, the addressing plan, the setup file's
commands, the frames sent into one port; what it records (the journeys, the frames
that left each port), and how it prints (text, JSON).

The text groups each packet's hops under the reference document's columns:
inbound (NIC to the routing decision, and on to INPUT, L4 and the socket for a
local packet), forward (ip_forward and the FORWARD hook) and outbound (OUTPUT,
POSTROUTING, the neighbour layer, TC egress, the qdisc and the NIC; for a packet
the DUT sends itself, from the socket down). Hops print as in a failing test's
journeys (Hop.__str__), numbered in order; each packet ends with where it went:
the port it left, the socket it was queued on, the drop with the kernel's reason
and function, or the last hop the target saw.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.cli.setup_file import SetupCommand
from harness.journey import Hop, Journey, Journeys, Stage
from harness.packets import describe
from harness.target import PORTS, CommandError, Target, TargetUnavailable

TARGETS = ("mock", "dut")
PLANS = ("router", "hosts", "none")

RECEIVE_STAGES = frozenset({Stage.NIC_RX, Stage.NAPI, Stage.XDP, Stage.SKB, Stage.TC_INGRESS, Stage.NF_INGRESS,
                            Stage.IP_RCV, Stage.NF_PREROUTING})
FORWARD_STAGES = frozenset({Stage.IP_FORWARD, Stage.NF_FORWARD})
LOCAL_IN_STAGES = frozenset({Stage.IP_DEFRAG, Stage.NF_INPUT})
SEND_STAGES = frozenset({Stage.NF_OUTPUT, Stage.NF_POSTROUTING, Stage.IP_OUTPUT, Stage.NEIGH, Stage.TC_EGRESS,
                         Stage.QDISC, Stage.NIC_TX})
# where a packet the DUT sends itself starts: its socket, L4 (a reset, an ICMP reply) or a stage on the way out
SENT_FROM_STAGES = SEND_STAGES | {Stage.SOCKET, Stage.L4}


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


def plan_commands(plan: str) -> list[list[str]]:
    """The suites' addressing plan as commands: "hosts" gives port pN the address
    10.0.N.1/24 and a permanent neighbour entry for host 10.0.N.2 (the tester port's
    MAC); "router" adds IPv4 forwarding; "none" leaves the DUT as a test's starts."""
    if plan == "none":
        return []
    commands = []
    for port in PORTS:
        commands.append(["ip", "addr", "add", f"10.0.{port.index}.1/24", "dev", port.name])
        commands.append(["ip", "neigh", "replace", f"10.0.{port.index}.2", "lladdr", port.peer_mac, "dev", port.name,
                         "nud", "permanent"])
    if plan == "router":
        commands.append(["sysctl", "-w", "net.ipv4.ip_forward=1"])
    return commands


def open_target(name: str) -> Target:
    """A fresh DUT: the mock kernel, or the netns lab (the real kernel of this host in
    network namespaces of its own, never the host's)."""
    if name == "mock":
        from harness.mockkernel.target import MockTarget  # the chosen target only: each loads a world
        return MockTarget()
    if os.geteuid() != 0:
        raise TargetUnavailable("--target=dut runs the packet through this machine's kernel in network namespaces "
                                "the netns lab creates, which needs root: run it as root (`sudo journey ...`), "
                                "or use --target=mock")
    from harness.drivers.dut import NetnsTarget  # the chosen target only: each loads a world
    return NetnsTarget()


def run_trace(target_name: str, port: str, frames: list[bytes], setup: Sequence[SetupCommand],
              setup_name: str, plan: str = "router") -> Trace:
    """Send `frames` into `port` of a fresh `target_name` DUT set up with the plan and
    `setup`, and record what happened."""
    target = open_target(target_name)
    try:
        for argv in plan_commands(plan):
            target.sh(argv)
        for command in setup:
            try:
                target.sh(list(command.argv), stdin=command.stdin)
            except CommandError as exc:
                raise SetupFailed(f"{setup_name}:{command.line}: {exc}") from None
        target.reset()  # what the setup sent or recorded is not the packet's
        target.send(port, frames)
        left = {out.name: target.collect(out) for out in target.ports}
        return Trace(target.name, port, frames, target.journeys(), left)
    finally:
        target.close()


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
        lines += ["", f"(no journeys recorded: {trace.target} observed nothing of these frames)"]
    lines += ["", "frames out"]
    lines += _frames_out_lines(trace.left)
    return "\n".join(lines) + "\n"


def _packet_lines(journey: Journey, title: str, indent: str) -> list[str]:
    lines = [f"{indent}{title}{journey.packet}"]
    column = None
    for number, (hop_column, hop) in enumerate(_columns(journey.hops), 1):
        if hop_column != column:
            column = hop_column
            lines.append(f"{indent}  {column}")
        lines.append(f"{indent}  {number:>4}  {hop}")
    lines.append(f"{indent}  => {_ending(journey)}")
    for child in journey.children:
        lines += _packet_lines(child, "caused: ", indent + "    ")
    return lines


def _columns(hops: Sequence[Hop]) -> list[tuple[str, Hop]]:
    """Each hop with the reference's column it is drawn in. ROUTING, L4 and the socket
    stay in the column the packet is in: inbound for a received packet, outbound for
    one the DUT sends."""
    column = "outbound" if hops and hops[0].stage in SENT_FROM_STAGES else "inbound"
    placed = []
    for hop in hops:
        if hop.stage in FORWARD_STAGES:
            column = "forward"
        elif hop.stage in SEND_STAGES:
            column = "outbound"
        elif hop.stage in RECEIVE_STAGES or hop.stage in LOCAL_IN_STAGES:
            column = "inbound"
        placed.append((column, hop))
    return placed


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
