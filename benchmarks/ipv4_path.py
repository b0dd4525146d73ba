"""Packets per second through the IPv4 forward path and local UDP delivery.

The same sender drives both targets through the Target interface: batches of
identical frames handed to `target.send()`, timed until the target has
processed them (the mock synchronously; on the lab each AF_PACKET send runs the
veth receive path in the sending thread's softirq). Forward: p0 -> p1 through a
/24 route, no netfilter. Local: UDP to a bound socket, drained every batch.
The kernel figures are an anchor for the mock's cost, not a kernel benchmark:
they include the Python sender's system-call cost. Each run starts from a
collected heap, so a figure does not depend on which runs came before it.
"""
from __future__ import annotations

import gc
import sys
import time

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from harness.target import PORTS, Target, TargetError

BATCH = 250  # under the 256-descriptor RX ring, so the mock never misses a frame


def _configure(target: Target) -> None:
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
    sock = target.socket("udp", ("10.0.0.1", 2000)) if kind == "local" else None
    frame = _frame("10.0.1.2" if kind == "forward" else "10.0.0.1")
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


def _kernel_without_trace():
    """The lab without nftrace: tracing every packet would dominate a load run."""
    from harness.drivers.dut import NetnsTarget
    return NetnsTarget(nftrace=False)


def main() -> None:
    for kind, name in (("forward", "forward_udp"), ("local", "local_udp")):
        for label, factory, count in (("mock", _mock, 30_000), ("kernel", _kernel_without_trace, 30_000)):
            try:
                target = factory()
            except TargetError as exc:
                print(f"{label}.{name}: skipped, {exc}", file=sys.stderr)
                continue
            try:
                print(f"figure {label}.{name} {measure(target, kind, count):.0f} pps", flush=True)
            finally:
                target.close()
