"""The netns lab's traffic generator (tools/pjgen.c) at its fastest.

lab.generator_pps: 64-byte frames (60 + FCS) as fast as pjgen sends them with
sendmmsg from one tester port, into a DUT with no address or route, which drops
them at routing (forwarding off: ip_route_input_slow(), ip_error()); the sender's
own context runs that receive path (veth_xmit() -> netif_rx() -> softirq), so the
figure is the generator with the least DUT work there is. lab.generator_pps_ring:
the same through the TPACKET_V2 TX ring. lab.generator_bps_L1: 1514-byte frames,
sendmmsg, in bit/s on the line. lab.receiver_pps: 64-byte frames forwarded p0 -> p1,
received and counted by pjgen's RX ring (per stream, latency): packets over the time
from the start until the last one arrived. The declared limits in drivers/generator.py come from
these runs. Needs root; without it the benchmark says why on stderr.

What counts where: the generator figures count what pjgen's sendmmsg or ring calls took
(its own counters, frames the DUT's backlog refused included), lab.receiver_pps what
its RX ring on t1 received. pjgen runs as NetnsTarget.traffic() runs it, with its
receiver's RX ring on every tester port, so these are the generator's and receiver's
figures, not the kernel's: the kernel's own rates, counted at the DUT with no receiver
in the path, are ipv4_path's and netfilter's kernel.* figures (kernel_anchor.py).
"""
from __future__ import annotations

import sys

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from benchmarks.kernel_anchor import FLAT_OUT
from harness.drivers import generator
from harness.drivers.netns import NetnsLab
from harness.target import PORTS, TargetError
from harness.traffic import FCS_LEN, Mode, Profile, Stream, l1_bits

COUNT = 300_000
ARRIVAL_TIMEOUT = 10.0  # for the last forwarded packet: past it, some were lost


def _stream(frame_len: int) -> Stream:
    packet = (Ether(src=PORTS[0].peer_mac, dst=PORTS[0].mac) / IP(src="10.0.0.2", dst="10.0.1.2") /
              UDP(sport=1000, dport=2000))
    return Stream.of("p0", packet, id=1, rate=FLAT_OUT, mode=Mode.SINGLE_BURST, count=COUNT,
                     sizes=((frame_len + FCS_LEN, 1),))


def _run(lab: NetnsLab, frame_len: int, tx: str, wait_for_all: bool) -> dict:
    with generator.GeneratorRun(lab, Profile((_stream(frame_len),)), None, tx) as run:
        run.wait_sent(generator.STARTUP_TIMEOUT + 60)
        if wait_for_all and not run.finished(ARRIVAL_TIMEOUT):
            print("lab: not every forwarded packet arrived", file=sys.stderr)
        stats = run.stats()
    for port, received in stats["ports"].items():
        if received["ring_drops"]:
            print(f"lab: the receiver's ring on {port} overflowed: {received['ring_drops']} frames", file=sys.stderr)
    return stats


def _sent_pps(stats: dict) -> float:
    return stats["streams"][0]["opackets"] / (stats["tx_ns"] / 1e9)


def main() -> None:
    try:
        lab = NetnsLab()
    except TargetError as exc:
        print(f"lab: skipped, {exc}", file=sys.stderr)
        return
    try:
        print(f"figure lab.generator_pps {_sent_pps(_run(lab, 60, 'sendmmsg', False)):.0f} pps", flush=True)
        print(f"figure lab.generator_pps_ring {_sent_pps(_run(lab, 60, 'ring', False)):.0f} pps", flush=True)
        big = _sent_pps(_run(lab, 1514, "sendmmsg", False))
        print(f"figure lab.generator_bps_L1 {big * l1_bits(1514):.0f} bps", flush=True)
        for command in ("ip addr add 10.0.0.1/24 dev p0", "ip addr add 10.0.1.1/24 dev p1",
                        f"ip neigh replace 10.0.1.2 lladdr {PORTS[1].peer_mac} dev p1 nud permanent",
                        "sysctl -qw net.ipv4.ip_forward=1"):
            lab.run(lab.dut, command.split())
        stats = _run(lab, 60, "sendmmsg", True)
        received = stats["streams"][0]["ipackets"]
        print(f"figure lab.receiver_pps {received / (stats['rx_ns'] / 1e9):.0f} pps", flush=True)
    finally:
        lab.close()
