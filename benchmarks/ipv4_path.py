"""Packets per second through the IPv4 forward path and local UDP delivery.

Forward: 60-byte UDP frames p0 -> p1 through a /24 route, no netfilter. Local: the
same frames to a UDP socket bound on p0's address.

mock.forward_udp, mock.local_udp: batches of identical frames handed to
`target.transmit()`, timed until the mock has processed them (synchronously);
forwarded frames counted at p1's TX counter, datagrams by reading the socket after
every batch. Each run starts from a collected heap, so a figure does not depend on
which runs came before it.

kernel.forward_udp, kernel.local_udp: the real kernel in the netns lab, fed by pjgen
with nothing observing the path (benchmarks/kernel_anchor.py): forwarded frames
counted at the DUT's p1 TX counter, datagrams as queued on the DUT's socket (read
back after each run: the application's reads are not in the figure). With each,
kernel.NAME_sender: the sender's own rate, the same frames into a tester device that
takes them for free, so the pair shows which side limits.
"""
from __future__ import annotations

import gc
import sys
import time

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from benchmarks.kernel_anchor import AnchorLab, print_figures
from harness.target import PORTS, Target, TargetError

BATCH = 250  # under the 256-descriptor RX ring, so the mock never misses a frame
DESTINATION = {"forward": "10.0.1.2", "local": "10.0.0.1"}
LOCAL_SOCKET = ("10.0.0.1", 2000)


def _configure(target: Target | AnchorLab) -> None:
    for port in PORTS[:2]:
        target.sh(f"ip addr add 10.0.{port.index}.1/24 dev {port.name}")
        target.sh(f"ip neigh replace 10.0.{port.index}.2 lladdr {port.peer_mac} dev {port.name} nud permanent")
    target.sh("sysctl -w net.ipv4.ip_forward=1")


def _frame(dst: str) -> bytes:
    return bytes(Ether(src=PORTS[0].peer_mac, dst=PORTS[0].mac) /
                 IP(src="10.0.0.2", dst=dst) / UDP(sport=1000, dport=2000) / (b"x" * 18))


def measure(target: Target, kind: str, count: int) -> float:
    """Packets per second for `count` frames of `kind` ("forward" or "local"),
    checked afterwards: every frame forwarded, or every datagram received."""
    _configure(target)
    sock = target.socket("udp", LOCAL_SOCKET) if kind == "local" else None
    frame = _frame(DESTINATION[kind])
    batch = [frame] * BATCH
    batches = count // BATCH
    delivered = 0
    gc.collect()  # the garbage of earlier runs (a whole mock kernel each) is not this run's cost
    start = time.perf_counter()
    for _ in range(batches):
        target.transmit(PORTS[0], batch)
        if sock is not None:
            delivered += len(sock.recv_all())
    elapsed = time.perf_counter() - start
    if sock is None:
        delivered = _tx_packets(target, PORTS[1].name)
    if delivered != batches * BATCH:
        print(f"{target.name}.{kind}: only {delivered} of {batches * BATCH} packets made it", file=sys.stderr)
    return delivered / elapsed


def _tx_packets(target: Target, port: str) -> int:
    """TX packets of a DUT port from `ip -s link` (both targets print iproute2's format)."""
    lines = target.sh(f"ip -s link show dev {port}").splitlines()
    tx = next(i for i, line in enumerate(lines) if line.strip().startswith("TX:"))
    return int(lines[tx + 1].split()[1])


def _mock():
    from harness.mockkernel.target import MockTarget
    return MockTarget()


def kernel_figures(name: str, kind: str, ruleset: str | None = None) -> None:
    """kernel.NAME and kernel.NAME_sender for `kind` ("forward" or "local") of
    measure()'s frames through the lab's DUT configured as measure() configures the
    mock, after `ruleset` (nft -f); skipped, saying why, where there is no lab."""
    try:
        with AnchorLab() as anchor:
            if ruleset is not None:
                anchor.sh("nft -f -", stdin=ruleset)
            _configure(anchor)
            delivered = anchor.tx_packets(PORTS[1].name) if kind == "forward" else anchor.udp_queue(LOCAL_SOCKET)
            print_figures(anchor, name, _frame(DESTINATION[kind]), delivered)
    except TargetError as exc:
        print(f"kernel.{name}: skipped, {exc}", file=sys.stderr)


def main() -> None:
    for kind, name in (("forward", "forward_udp"), ("local", "local_udp")):
        target = _mock()
        try:
            print(f"figure mock.{name} {measure(target, kind, 30_000):.0f} pps", flush=True)
        finally:
            target.close()
        kernel_figures(name, kind)
