"""Which netfilter chains a packet crosses, in which order: the reference document's
"chains traversed" table, with a base chain at every table's priority."""
from __future__ import annotations

import pytest
from scapy.layers.inet import UDP

pytestmark = pytest.mark.requires("nftables", "nftrace")

# `ct state new` turns conntrack on for the namespace: without a rule that uses
# conntrack or NAT, nat chains are never traversed (seen on the lab).
EVERY_TABLE = """
table ip t {
    chain raw_pre {
        type filter hook prerouting priority raw; policy accept;
        ct state new counter
    }
    chain mangle_pre { type filter hook prerouting priority mangle; policy accept; }
    chain nat_pre { type nat hook prerouting priority dstnat; policy accept; }
    chain filter_pre { type filter hook prerouting priority filter; policy accept; }
    chain mangle_in { type filter hook input priority mangle; policy accept; }
    chain filter_in { type filter hook input priority filter; policy accept; }
    chain security_in { type filter hook input priority security; policy accept; }
    chain nat_in { type nat hook input priority 100; policy accept; }
    chain mangle_fwd { type filter hook forward priority mangle; policy accept; }
    chain filter_fwd { type filter hook forward priority filter; policy accept; }
    chain security_fwd { type filter hook forward priority security; policy accept; }
    chain raw_out { type filter hook output priority raw; policy accept; }
    chain mangle_out { type route hook output priority mangle; policy accept; }
    chain nat_out { type nat hook output priority -100; policy accept; }
    chain filter_out { type filter hook output priority filter; policy accept; }
    chain security_out { type filter hook output priority security; policy accept; }
    chain mangle_post { type filter hook postrouting priority mangle; policy accept; }
    chain nat_post { type nat hook postrouting priority srcnat; policy accept; }
}
"""
PRE = [("NF_PREROUTING", f"ip t {c}") for c in ("raw_pre", "mangle_pre", "nat_pre", "filter_pre")]
INPUT = [("NF_INPUT", f"ip t {c}") for c in ("mangle_in", "filter_in", "security_in", "nat_in")]
FORWARD = [("NF_FORWARD", f"ip t {c}") for c in ("mangle_fwd", "filter_fwd", "security_fwd")]
OUTPUT = [("NF_OUTPUT", f"ip t {c}") for c in ("raw_out", "mangle_out", "nat_out", "filter_out", "security_out")]
POST = [("NF_POSTROUTING", f"ip t {c}") for c in ("mangle_post", "nat_post")]


def chains(journey) -> list[tuple[str, str]]:
    """The base chains a journey crossed, as both targets report them."""
    return [(h.stage, h.where) for h in journey.hops if h.where.startswith("ip t ")]


def test_packet_for_a_local_socket_crosses_prerouting_then_input(target, hosts):
    h0 = hosts[0]
    target.sh("nft -f -", stdin=EVERY_TABLE)
    sock = target.socket("udp", (h0.dut_ip, 7000))
    target.send(h0.port, h0.to_dut(id=1001) / UDP(sport=1, dport=7000) / b"in")
    assert sock.recv()[0] == b"in"
    assert [chains(j) for j in target.journeys() if chains(j)] == [PRE + INPUT]


def test_forwarded_packet_crosses_prerouting_forward_postrouting(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=EVERY_TABLE)
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=1002) / UDP(sport=1, dport=2) / b"through")
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=1002, ttl=63) / UDP(sport=1, dport=2) / b"through")
    assert [chains(j) for j in target.journeys() if chains(j)] == [PRE + FORWARD + POST]


def test_locally_generated_packet_crosses_output_then_postrouting(target, hosts):
    h1 = hosts[1]
    target.sh("nft -f -", stdin=EVERY_TABLE)
    sock = target.socket("udp", (h1.dut_ip, 7001))
    sock.sendto(b"out", (h1.ip, 9))
    target.frame_left(h1.port, "the socket's datagram")
    assert [chains(j) for j in target.journeys() if chains(j)] == [OUTPUT + POST]


def test_nat_chains_see_only_the_first_packet_of_a_connection(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=EVERY_TABLE)
    for ident in (1003, 1004):
        target.send(h0.port, h0.to_dut(dst=h1.ip, id=ident) / UDP(sport=11, dport=22) / b"flow")
        target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=ident, ttl=63) / UDP(sport=11, dport=22) / b"flow")
    first, second = [chains(j) for j in target.journeys() if chains(j)]
    assert first == PRE + FORWARD + POST
    assert second == [c for c in PRE + FORWARD + POST if "nat_" not in c[1]]
