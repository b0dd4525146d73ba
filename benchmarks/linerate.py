"""The mock at line rate: wall seconds per simulated second through the engine.

mock.linerate_10g64_xdp_drop: one simulated second of 10 Gbit/s of 64-byte
frames (14.88 Mpps) into p0, dropped by xdp_drop_udp. mock.linerate_10g64_forward_ct:
the same into p0 forwarded to p1 through the forward path of benchmarks/netfilter.py
(masquerade on p1, so conntrack and NAT on every packet, and 100 forward rules
that miss before the one that accepts); the CPU forwards what the cost model lets
it, the ring misses the rest. mock.imix_100flows: simple IMIX (7x64, 4x594,
1x1518) over 100 flows (UDP source ports) at line rate through the same DUT,
as simulated seconds per wall second. Each run is checked: every packet
accounted for (received, or lost at a place the result names).
"""
from __future__ import annotations

import gc
import sys
import time

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from benchmarks.netfilter import ruleset_100_rules
from harness import bpf_build
from harness.mockkernel.target import MockTarget
from harness.target import PORTS
from harness.traffic import IMIX, Profile, Result, Stream, Vary

SIMULATED = 1.0  # seconds of the 64-byte runs
IMIX_SIMULATED = 0.1


def _forwarding_dut() -> MockTarget:
    target = MockTarget()
    for port in PORTS[:2]:
        target.sh(f"ip addr add 10.0.{port.index}.1/24 dev {port.name}")
        target.sh(f"ip neigh replace 10.0.{port.index}.2 lladdr {port.peer_mac} dev {port.name} nud permanent")
    target.sh("sysctl -w net.ipv4.ip_forward=1")
    return target


def _frame() -> bytes:
    return bytes(Ether(src=PORTS[0].peer_mac, dst=PORTS[0].mac) /
                 IP(src="10.0.0.2", dst="10.0.1.2") / UDP(sport=1000, dport=2000) / (b"x" * 18))


def _timed(target: MockTarget, stream: Stream, seconds: float, name: str) -> float:
    """Wall seconds of `seconds` simulated; warns when packets went unaccounted."""
    gc.collect()
    start = time.perf_counter()
    result = target.traffic(Profile((stream,)), duration=seconds)
    wall = time.perf_counter() - start
    _check(result, name)
    return wall


def _check(result: Result, name: str) -> None:
    sent = sum(stats.opackets for stats in result.streams.values())
    lost = sum(loss.packets for loss in result.losses)
    received = sum(stats.ipackets for stats in result.streams.values())
    if received + lost != sent:
        print(f"mock.{name}: {sent} sent, {received} received and {lost} lost: the run lost count",
              file=sys.stderr)


def xdp_drop() -> float:
    target = _forwarding_dut()
    target.sh(f"ip link set dev p0 xdp obj {bpf_build.build('xdp_drop_udp')} sec xdp")
    return _timed(target, Stream.of("p0", _frame()), SIMULATED, "linerate_10g64_xdp_drop") / SIMULATED


def forward_ct() -> float:
    target = _forwarding_dut()
    target.sh("nft -f -", stdin=ruleset_100_rules())
    return _timed(target, Stream.of("p0", _frame()), SIMULATED, "linerate_10g64_forward_ct") / SIMULATED


def imix_100flows() -> float:
    target = _forwarding_dut()
    target.sh("nft -f -", stdin=ruleset_100_rules())
    stream = Stream.of("p0", _frame(), sizes=IMIX, vary=(Vary("udp.sport", 100),))
    return IMIX_SIMULATED / _timed(target, stream, IMIX_SIMULATED, "imix_100flows")


def main() -> None:
    try:
        print(f"figure mock.linerate_10g64_xdp_drop {xdp_drop():.2f} s", flush=True)
    except bpf_build.ToolchainMissing as exc:
        print(f"mock.linerate_10g64_xdp_drop: skipped, {exc}", file=sys.stderr)
    print(f"figure mock.linerate_10g64_forward_ct {forward_ct():.2f} s", flush=True)
    print(f"figure mock.imix_100flows {imix_100flows():.3f} sim_s/wall_s", flush=True)


if __name__ == "__main__":
    main()
