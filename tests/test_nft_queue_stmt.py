"""nft's `queue` statement on the mock (netfilter/nft_queue.py, netfilter/core.py's nf_queue()): the
mock models a kernel built with nft_queue (the netns lab's is not: it refuses every
queue rule with ENOENT, so no golden answers can be recorded here). Listings and JSON
as nft 1.0.6 prints them (src/statement.c queue_stmt_print(), src/json.c
queue_stmt_json(), as nftables' tests/py/any/queue.t expects), nft_queue_validate()'s
refusals, and the verdicts nft_queue_eval() gives, written out by hand."""
from __future__ import annotations

import json

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from harness.mockkernel.netfilter.core import NF_QUEUE_NR, NF_VERDICT_FLAG_QUEUE_BYPASS
from harness.mockkernel.target import MockTarget
from harness.target import CommandError


def added(rule: str, family: str = "ip", hook: str = "output") -> MockTarget:
    target = MockTarget()
    target.sh(f"nft add table {family} t")
    target.sh(f"nft add chain {family} t c {{ type filter hook {hook} priority 0; }}")
    target.sh(f"nft add rule {family} t c {rule}")
    return target


@pytest.mark.parametrize("rule, listed, as_json", [
    ("queue", "queue to 0", {"num": 0}),
    ("queue num 4-5 fanout bypass", "queue flags bypass,fanout to 4-5",
     {"num": {"range": [4, 5]}, "flags": ["bypass", "fanout"]}),
    ("queue num 2-3 bypass", "queue flags bypass to 2-3", {"num": {"range": [2, 3]}, "flags": "bypass"}),
    ("queue flags bypass to numgen inc mod 65536", "queue flags bypass to numgen inc mod 65536",
     {"num": {"numgen": {"mode": "inc", "mod": 65536, "offset": 0}}, "flags": "bypass"}),
    ("queue to oifname map { \"p1\" : 2 }", "queue to oifname map { \"p1\" : 2 }",
     {"num": {"map": {"key": {"meta": {"key": "oifname"}}, "data": {"set": [["p1", 2]]}}}}),
])
def test_queue_lists_as_nft_prints_it(rule, listed, as_json):
    target = added(rule)
    assert listed in target.sh("nft list table ip t")
    (expr,) = [n["rule"]["expr"] for n in json.loads(target.sh("nft -j list table ip t"))["nftables"] if "rule" in n]
    assert expr == [{"queue": as_json}]


@pytest.mark.parametrize("family, hook", [("ip", "input"), ("ip6", "forward"), ("inet", "postrouting"),
                                          ("bridge", "prerouting")])
def test_queue_is_taken_at_the_inet_hooks_of_ip_ip6_inet_and_bridge(family, hook):
    added("queue num 1", family, hook)


def test_queue_in_a_netdev_or_arp_chain_is_refused_as_nft_queue_validate_refuses_it():
    with pytest.raises(CommandError, match="Could not process rule: Operation not supported"):
        added("queue num 1", "arp", "input")
    target = MockTarget()
    target.sh("nft add table netdev n")
    target.sh('nft add chain netdev n i { type filter hook ingress device "p0" priority 0; }')
    with pytest.raises(CommandError, match="Could not process rule: Operation not supported"):
        target.sh("nft add rule netdev n i queue num 1")


def test_the_queue_verdict_carries_the_queue_number_and_the_bypass_flag():
    assert NF_QUEUE_NR(5) == 0x50003
    assert NF_QUEUE_NR(65535, bypass=True) == 0xFFFF0003 | NF_VERDICT_FLAG_QUEUE_BYPASS


def test_a_queued_packet_with_no_program_is_freed_in_nf_queue_and_its_journey_says_queue():
    target = added("udp dport 9 queue num 7", hook="input")
    h = target.ports[0]
    target.sh(f"ip addr add 10.0.0.1/24 dev {h.name}")
    target.sh(f"ip link set {h.name} up")
    target.send(h.name, Ether(dst=h.mac) / IP(src="10.0.0.2", dst="10.0.0.1") / UDP(dport=9))
    (journey,) = target.journeys()
    assert [(hop.stage, hop.verdict) for hop in journey.hops if hop.stage == "NF_INPUT"] == [("NF_INPUT", "QUEUE")]
    assert [(d.reason, d.stage, d.location) for d in target.drops()] == [("NOT_SPECIFIED", "NF_INPUT", "nf_queue")]
