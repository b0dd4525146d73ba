"""The XDP paper's single-core 64-byte tests (Hoiland-Jorgensen et al., "The
eXpress Data Path", CoNEXT 2018, section 4) as configurations of a DUT: what
benchmarks/linerate.py runs through the line-rate engine and what cost.py's
default profile is derived from.

Every test offers 64-byte UDP frames of one flow (port 1024 to 9) on p0 from
10.0.0.2 to a DUT with p0 10.0.0.1/24, p1 10.0.1.1/24 and one route,
198.18.0.0/15 (RFC 2544's benchmarking range) via p1's neighbour 10.0.1.2:
three routes in the main table. The drop tests send to the DUT's own address
10.0.0.1, the forwarding tests to 198.18.0.1. Each test then adds its program
or the paper's rules (benchmarks/bench01_baseline.org, bench04_fwd.org):

    xdp_drop           xdp_drop_udp on p0 (XDP_DROP)
    xdp_tx             xdp_tx_reflector on p0 (XDP_TX, back out of p0)
    xdp_redirect       xdp_redirect_devmap on p0, its devmap sending p0's frames to p1
    iptables_raw_drop  iptables -t raw -I PREROUTING -p udp --dport 9:19 -j DROP
    xdp_pass_raw_drop  the same under xdp_counters on p0 (counts and passes, as the
                       paper's xdp_rxq_info did)
    filter_drop        iptables -t filter -I INPUT -p udp --dport 9:19 -j DROP
    conntrack          that, and iptables -I INPUT -m conntrack --ctstate RELATED,ESTABLISHED
                       -j ACCEPT before it: conntrack tracks every packet, no packet is
                       established, and each dropped packet's new entry dies with it
    routing_1route     forwarding to p1
    routing_fulltable  forwarding to p1 with the main table grown by FULL_TABLE_STANDIN routes

The paper's full BGP table had 752,138 routes. The mock's FIB is a list
searched linearly and `ip route add` checks the table for each route (issue
12), so loading that many takes hours; the benchmark loads FULL_TABLE_STANDIN
routes (about 15 s) and the cost model charges the FIB lookup for the table
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

FULL_TABLE_STANDIN = 8192  # routes the mock loads in about 15 s (issue 12)
ROUTE_UNDER_TEST = "198.18.0.0/15"
LOCAL, ROUTED = "10.0.0.1", "198.18.0.1"


@dataclass(frozen=True)
class Anchor:
    name: str
    mpps: float  # the paper's figure, the middle of its range where it gives one
    paper: str  # the figure as the paper gives it
    dst: str  # where the frames go: the DUT (LOCAL) or through it (ROUTED)
    configure: Callable[[Target, object], None]  # (target, built eBPF objects by program name)


def base_dut(target: Target) -> None:
    """p0 and p1 connected, the route under test via p1's neighbour, forwarding on."""
    target.sh("ip addr add 10.0.0.1/24 dev p0")
    target.sh("ip addr add 10.0.1.1/24 dev p1")
    target.sh(f"ip neigh replace 10.0.1.2 lladdr {PORTS[1].peer_mac} dev p1 nud permanent")
    target.sh(f"ip route add {ROUTE_UNDER_TEST} via 10.0.1.2")
    target.sh("sysctl -w net.ipv4.ip_forward=1")


def frame(dst: str) -> bytes:
    """The tests' 64-byte frame (60 bytes and the FCS) to `dst` as the generator sends it to p0."""
    return bytes(Ether(src=PORTS[0].peer_mac, dst=PORTS[0].mac) / IP(src="10.0.0.2", dst=dst) /
                 UDP(sport=1024, dport=9) / bytes(18))


def _xdp(program: str) -> Callable[[Target, object], None]:
    def configure(target: Target, objects) -> None:
        target.sh(f"ip link set dev p0 xdp obj {objects[program]} sec xdp")
    return configure


def _xdp_redirect_to_p1(target: Target, objects) -> None:
    target.sh(f"ip link set dev p0 xdp obj {objects['xdp_redirect_devmap']} sec xdp")
    p0, p1 = (json.loads(target.sh(f"ip -j link show dev {port}"))[0]["ifindex"] for port in ("p0", "p1"))
    bpfmaps.map_of(target, "p0", "tx_port").update(bpfmaps.u32(p0), bpfmaps.u32(p1))


def _commands(*commands: str, xdp: str | None = None) -> Callable[[Target, object], None]:
    def configure(target: Target, objects) -> None:
        if xdp is not None:
            target.sh(f"ip link set dev p0 xdp obj {objects[xdp]} sec xdp")
        for command in commands:
            target.sh(command)
    return configure


def _full_table(target: Target, objects) -> None:
    """FULL_TABLE_STANDIN /24s out of 100.0.0.0/8 via p1's neighbour, none covering the route under test."""
    for i in range(FULL_TABLE_STANDIN):
        target.sh(f"ip route add 100.{i >> 8 & 0xFF}.{i & 0xFF}.0/24 via 10.0.1.2")


RAW_DROP = "iptables -t raw -I PREROUTING -p udp --dport 9:19 -j DROP"
FILTER_DROP = "iptables -t filter -I INPUT -p udp --dport 9:19 -j DROP"
CONNTRACK = "iptables -I INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"

ANCHORS = (
    Anchor("xdp_drop", 24.0, "24 Mpps", LOCAL, _xdp("xdp_drop_udp")),
    Anchor("xdp_tx", 16.6, "16.2-17.0 Mpps", ROUTED, _xdp("xdp_tx_reflector")),
    Anchor("xdp_redirect", 8.55, "8.4-8.7 Mpps", ROUTED, _xdp_redirect_to_p1),
    Anchor("iptables_raw_drop", 4.8, "4.8 Mpps", LOCAL, _commands(RAW_DROP)),
    Anchor("xdp_pass_raw_drop", 4.5, "4.5 Mpps (13.3 ns of XDP overhead)", LOCAL,
           _commands(RAW_DROP, xdp="xdp_counters")),
    Anchor("filter_drop", 3.32, "3.32 Mpps", LOCAL, _commands(FILTER_DROP)),
    Anchor("conntrack", 1.8, "1.8 Mpps", LOCAL, _commands(FILTER_DROP, CONNTRACK)),
    Anchor("routing_1route", 1.74, "1.74 Mpps", ROUTED, _commands()),
    Anchor("routing_fulltable", 1.37, "1.37 Mpps (752,138 routes)", ROUTED, _full_table),
)
