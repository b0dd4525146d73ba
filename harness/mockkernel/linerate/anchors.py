"""The XDP paper's single-core 64-byte tests (Hoiland-Jorgensen et al., "The
eXpress Data Path", CoNEXT 2018, section 4) as configurations of a DUT: what
benchmarks/linerate.py runs through the line-rate engine and what cost.py's
default profile is derived from.

Every test offers 64-byte UDP frames of one flow on p0, from 10.0.0.2 to
198.18.0.1 (RFC 2544's benchmarking range), to a DUT with p0 10.0.0.1/24,
p1 10.0.1.1/24 and one route, 198.18.0.0/15 via p1's neighbour 10.0.1.2:
three routes in the main table. Each test then adds its program or rules:

    xdp_drop           xdp_drop_udp on p0 (XDP_DROP)
    xdp_tx             xdp_tx_reflector on p0 (XDP_TX, back out of p0)
    xdp_redirect       xdp_redirect_devmap on p0, its devmap sending p0's frames to p1
    iptables_raw_drop  iptables -t raw -A PREROUTING -j DROP
    filter_drop        iptables -A FORWARD -j DROP
    conntrack          iptables -A FORWARD -m conntrack --ctstate NEW -j DROP: conntrack
                       tracks every packet, and each dropped packet's entry dies with it
    routing_1route     forwarding to p1
    routing_fulltable  forwarding to p1 with the main table grown by `routes`

The paper's full BGP table had 752,138 routes. The mock's FIB is a list
searched linearly and `ip route add` checks the table for each route (issue
12), so loading that many takes hours; the benchmark loads FULL_TABLE_STANDIN
routes (a few seconds) and the cost model charges the FIB lookup for the table
it finds, by log2 of its size (cost.py: fib_lookup_per_doubling).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from harness import bpfmaps
from harness.target import PORTS, Target

FULL_TABLE_STANDIN = 4096  # routes the mock loads in a few seconds (issue 12)
ROUTE_UNDER_TEST = "198.18.0.0/15"


@dataclass(frozen=True)
class Anchor:
    name: str
    mpps: float  # the paper's figure, the middle of its range where it gives one
    paper: str  # the figure as the paper gives it
    configure: Callable[[Target, object], None]  # (target, built eBPF objects by program name)


def base_dut(target: Target) -> None:
    """p0 and p1 connected, the route under test via p1's neighbour, forwarding on."""
    target.sh("ip addr add 10.0.0.1/24 dev p0")
    target.sh("ip addr add 10.0.1.1/24 dev p1")
    target.sh(f"ip neigh replace 10.0.1.2 lladdr {PORTS[1].peer_mac} dev p1 nud permanent")
    target.sh(f"ip route add {ROUTE_UNDER_TEST} via 10.0.1.2")
    target.sh("sysctl -w net.ipv4.ip_forward=1")


def frame() -> bytes:
    """The tests' 64-byte frame (60 bytes and the FCS) as the generator sends it to p0."""
    return bytes(Ether(src=PORTS[0].peer_mac, dst=PORTS[0].mac) / IP(src="10.0.0.2", dst="198.18.0.1") /
                 UDP(sport=1024, dport=9) / bytes(18))


def _xdp(program: str) -> Callable[[Target, object], None]:
    def configure(target: Target, objects) -> None:
        target.sh(f"ip link set dev p0 xdp obj {objects[program]} sec xdp")
    return configure


def _xdp_redirect_to_p1(target: Target, objects) -> None:
    target.sh(f"ip link set dev p0 xdp obj {objects['xdp_redirect_devmap']} sec xdp")
    p0, p1 = (json.loads(target.sh(f"ip -j link show dev {port}"))[0]["ifindex"] for port in ("p0", "p1"))
    bpfmaps.map_of(target, "p0", "tx_port").update(bpfmaps.u32(p0), bpfmaps.u32(p1))


def _commands(*commands: str) -> Callable[[Target, object], None]:
    def configure(target: Target, objects) -> None:
        for command in commands:
            target.sh(command)
    return configure


def _full_table(target: Target, objects) -> None:
    """FULL_TABLE_STANDIN /24s out of 100.0.0.0/8 via p1's neighbour, none covering the route under test."""
    for i in range(FULL_TABLE_STANDIN):
        target.sh(f"ip route add 100.{i >> 8 & 0xFF}.{i & 0xFF}.0/24 via 10.0.1.2")


ANCHORS = (
    Anchor("xdp_drop", 24.0, "24 Mpps", _xdp("xdp_drop_udp")),
    Anchor("xdp_tx", 16.6, "16.2-17.0 Mpps", _xdp("xdp_tx_reflector")),
    Anchor("xdp_redirect", 8.55, "8.4-8.7 Mpps", _xdp_redirect_to_p1),
    Anchor("iptables_raw_drop", 4.8, "4.8 Mpps", _commands("iptables -t raw -A PREROUTING -j DROP")),
    Anchor("filter_drop", 3.32, "3.32 Mpps", _commands("iptables -A FORWARD -j DROP")),
    Anchor("conntrack", 1.8, "1.8 Mpps", _commands("iptables -A FORWARD -m conntrack --ctstate NEW -j DROP")),
    Anchor("routing_1route", 1.74, "1.74 Mpps", _commands()),
    Anchor("routing_fulltable", 1.37, "1.37 Mpps (752,138 routes)", _full_table),
)
