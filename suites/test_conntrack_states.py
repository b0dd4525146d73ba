"""ct state as rules see it: untracked, invalid, new and established for ICMP echo."""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, TCP, UDP

from harness.testing import counted

pytestmark = pytest.mark.requires("nftables", "conntrack")


def test_notrack_in_raw_makes_the_packet_untracked_and_leaves_no_entry(target, hosts):
    h0 = hosts[0]
    target.sh("nft -f -", stdin="""
table ip t {
    chain raw {
        type filter hook prerouting priority raw; policy accept;
        udp dport 9999 notrack
    }
    chain input {
        type filter hook input priority filter; policy accept;
        ct state untracked counter accept
    }
}
""")
    sock = target.socket("udp", (h0.dut_ip, 9999))
    target.send(h0.port, h0.to_dut(id=81) / UDP(sport=1, dport=9999) / b"stateless")
    assert sock.recv()[0] == b"stateless"
    assert counted(target, "untracked") == 1
    assert [e for e in target.conntrack() if e.proto == "udp"] == []


def test_a_bare_fin_is_invalid_and_can_be_dropped_as_such(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin="""
table ip t {
    chain forward {
        type filter hook forward priority filter; policy accept;
        ct state invalid counter drop
    }
}
""")
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=82) / TCP(sport=5, dport=80, flags="F", seq=1))
    target.expect_nothing()
    assert [(d.reason, d.stage) for d in target.drops()] == [("NETFILTER_DROP", "NF_FORWARD")]
    assert counted(target, "invalid") == 1


def test_icmp_echo_request_is_new_and_its_reply_established(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin="""
table ip t {
    chain forward {
        type filter hook forward priority filter; policy accept;
        ct state new counter
        ct state established counter
    }
}
""")
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=83) / ICMP(type=8, id=0x4242, seq=1))
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=83, ttl=63) / ICMP(type=8, id=0x4242, seq=1))
    target.send(h1.port, h1.to_dut(dst=h0.ip, id=84) / ICMP(type=0, id=0x4242, seq=1))
    target.expect(h0.port, h0.from_dut(src=h1.ip, dst=h0.ip, id=84, ttl=63) / ICMP(type=0, id=0x4242, seq=1))
    assert (counted(target, "ct state new"), counted(target, "ct state established")) == (1, 1)
    entries = [e for e in target.conntrack() if e.proto == "icmp"]
    assert [(e.original, e.reply) for e in entries] == [
        ((h0.ip, h1.ip, 0x4242, 8 << 8), (h1.ip, h0.ip, 0x4242, 0))]
