"""Bridged IPv6 and netfilter: br_netfilter (net.bridge.bridge-nf-call-ip6tables,
1 by default) puts bridged IPv6 frames through the ip6 family's (and an inet
table's) PREROUTING, FORWARD and POSTROUTING hooks, with the bridge as their
input and output device, and through conntrack (net/bridge/br_netfilter_ipv6.c
br_nf_pre_routing_ipv6(), br_netfilter_hooks.c br_nf_forward_ip(),
br_nf_post_routing()).

    container a 2001:db8:17::2 --- t1 | p1 ┐
                                          ├ br0  DUT
    container b 2001:db8:17::3 --- t2 | p2 ┘

The DUT only bridges, with IPv6 off on every device (the bridge needs none to
bridge it, nor br_netfilter to filter it), so it says nothing of its own.
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Ether

from harness.target import PORTS
from harness.testing import auto_flowlabel_mask, bridge_up

pytestmark = pytest.mark.requires("nftables")

PORT_A, PORT_B = PORTS[1], PORTS[2]
IP6_A, IP6_B = "2001:db8:17::2", "2001:db8:17::3"

IP6_CHAINS = """
table ip6 filter {
    chain prerouting {
        type filter hook prerouting priority filter; policy accept;
        iifname "br0" udp dport 9 counter
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        iifname "br0" oifname "br0" udp dport 9 counter
    }
    chain postrouting {
        type filter hook postrouting priority filter; policy accept;
        oifname "br0" udp dport 9 counter
    }
}
"""

INET_FORWARD = """
table inet filter {
    chain forward {
        type filter hook forward priority filter; policy accept;
        meta nfproto ipv4 udp dport 9 counter
        meta nfproto ipv6 udp dport 9 counter
        icmpv6 type echo-request counter
    }
}
"""

IP6_FORWARD_DROP = """
table ip6 filter {
    chain forward {
        type filter hook forward priority filter; policy accept;
        ip6 saddr 2001:db8:17::2 udp dport 9 counter drop
    }
}
"""

CONNTRACK = """
table ip6 filter {
    chain forward {
        type filter hook forward priority filter; policy accept;
        ct state new counter
        ct state established counter
        ct state untracked counter
    }
}
"""


@pytest.fixture
def bridge(target):
    """br0 with p1 and p2, up; no address, IPv6 off."""
    bridge_up(target, ports=(PORT_A.name, PORT_B.name))
    return target


def a_to_b(flow: int, **ipv6) -> Ether:
    return Ether(src=PORT_A.peer_mac, dst=PORT_B.peer_mac) / IPv6(src=IP6_A, dst=IP6_B, fl=flow, **ipv6) / \
        UDP(sport=7, dport=9) / b"bridged"


def snmp6(target, *names: str) -> list[int]:
    """Counters of /proc/net/snmp6 (the namespace's), by name."""
    values = dict(line.split() for line in target.sh("cat /proc/net/snmp6").splitlines() if line.strip())
    return [int(values[name]) for name in names]


def counters(target) -> list[tuple[str, str, int]]:
    return [(c.family, c.chain, c.packets) for c in target.counters()]


def test_a_bridged_ipv6_frame_crosses_the_ip6_prerouting_forward_and_postrouting_hooks(bridge):
    """Each hook once, with br0 as the device; the frame leaves unchanged (hop
    limit 1 kept: it is bridged, not forwarded)."""
    bridge.sh("nft -f -", stdin=IP6_CHAINS)
    bridge.send(PORT_A, a_to_b(11, hlim=1))
    bridge.expect(PORT_B, a_to_b(11, hlim=1))
    bridge.expect_nothing()
    assert counters(bridge) == [("ip6", "prerouting", 1), ("ip6", "forward", 1), ("ip6", "postrouting", 1)]


def test_an_inet_forward_chain_sees_bridged_ipv4_and_ipv6_frames_each_as_its_own_family(bridge):
    bridge.sh("nft -f -", stdin=INET_FORWARD)
    ipv4 = Ether(src=PORT_A.peer_mac, dst=PORT_B.peer_mac) / IP(src="172.17.0.2", dst="172.17.0.3", id=12) / \
        UDP(sport=7, dport=9)
    echo = Ether(src=PORT_A.peer_mac, dst=PORT_B.peer_mac) / IPv6(src=IP6_A, dst=IP6_B) / ICMPv6EchoRequest(id=3)
    bridge.send(PORT_A, [a_to_b(12), ipv4, echo])
    bridge.expect(PORT_B, a_to_b(12))
    bridge.expect(PORT_B, ipv4)
    bridge.expect(PORT_B, echo)
    assert [c.packets for c in bridge.counters()] == [1, 1, 1]


@pytest.mark.parametrize("call_iptables, call_ip6tables, counted", [
    ("0", "1", 1), ("1", "0", 0)], ids=["ip6tables-only", "iptables-only"])
def test_call_ip6tables_alone_decides_for_ipv6(bridge, call_iptables, call_ip6tables, counted):
    bridge.sh(f"sysctl -w net.bridge.bridge-nf-call-iptables={call_iptables}")
    bridge.sh(f"sysctl -w net.bridge.bridge-nf-call-ip6tables={call_ip6tables}")
    bridge.sh("nft -f -", stdin=IP6_CHAINS)
    bridge.send(PORT_A, a_to_b(13))
    bridge.expect(PORT_B, a_to_b(13))
    bridge.expect_nothing()
    assert counters(bridge) == [("ip6", "prerouting", counted), ("ip6", "forward", counted),
                                ("ip6", "postrouting", counted)]


def test_the_bridges_own_nf_call_ip6tables_calls_them_with_the_sysctl_off(bridge):
    """br_nf_pre_routing(): `!brnet->call_ip6tables && !br_opt_get(br, BROPT_NF_CALL_IP6TABLES)`."""
    bridge.sh("sysctl -w net.bridge.bridge-nf-call-ip6tables=0")
    bridge.sh("ip link set dev br0 type bridge nf_call_ip6tables 1")
    bridge.sh("nft -f -", stdin=IP6_CHAINS)
    bridge.send(PORT_A, a_to_b(19))
    bridge.expect(PORT_B, a_to_b(19))
    assert counters(bridge) == [("ip6", "prerouting", 1), ("ip6", "forward", 1), ("ip6", "postrouting", 1)]


def test_call_ip6tables_stores_any_non_zero_write_as_1(bridge):
    bridge.sh("sysctl -w net.bridge.bridge-nf-call-ip6tables=-3")
    assert bridge.sh("sysctl -n net.bridge.bridge-nf-call-ip6tables").strip() == "1"


@pytest.mark.requires("drop_reasons")
def test_an_ip6_forward_chain_drops_a_bridged_ipv6_frame_while_call_ip6tables_is_on(bridge):
    bridge.sh("nft -f -", stdin=IP6_FORWARD_DROP)
    bridge.send(PORT_A, a_to_b(14))
    bridge.expect_nothing()
    assert [(d.reason, d.stage, d.location) for d in bridge.drops()] == [
        ("NETFILTER_DROP", "NF_FORWARD", "nft_do_chain")]
    bridge.sh("sysctl -w net.bridge.bridge-nf-call-ip6tables=0")
    bridge.send(PORT_A, a_to_b(15))
    bridge.expect(PORT_B, a_to_b(15))
    assert counters(bridge) == [("ip6", "forward", 1)]


@pytest.mark.requires("drop_reasons")
@pytest.mark.parametrize("call_ip6tables", ["1", "0"], ids=["on", "off"])
def test_a_payload_length_past_the_frame_is_freed_by_br_validate_ipv6_only_while_call_ip6tables_is_on(
        bridge, call_ip6tables):
    """br_nf_pre_routing_ipv6() checks the header as ipv6_rcv() would; the bridge
    alone forwards whatever it is given."""
    bridge.sh(f"sysctl -w net.bridge.bridge-nf-call-ip6tables={call_ip6tables}")
    long_claim = a_to_b(16, plen=200)
    bridge.send(PORT_A, long_claim)
    if call_ip6tables == "1":
        bridge.expect_nothing()
        assert [(d.reason, d.stage, d.location) for d in bridge.drops()] == [
            ("IP_INHDR", "NF_PREROUTING", "br_nf_pre_routing_ipv6")]
    else:
        bridge.expect(PORT_B, long_claim)
        bridge.expect_nothing()
        assert bridge.drops() == []
    assert snmp6(bridge, "Ip6InTruncatedPkts", "Ip6InHdrErrors") == [int(call_ip6tables), 0]


@pytest.mark.parametrize("call_ip6tables, states", [("1", [1, 1, 0]), ("0", [0, 0, 0])], ids=["on", "off"])
def test_conntrack_tracks_a_bridged_ipv6_flow_only_through_br_netfilter(bridge, call_ip6tables, states):
    """With call-ip6tables a's datagram is new and b's answer established; without
    it conntrack never sees either (not even as untracked: no ip6 hook runs)."""
    bridge.sh(f"sysctl -w net.bridge.bridge-nf-call-ip6tables={call_ip6tables}")
    bridge.sh("nft -f -", stdin=CONNTRACK)
    bridge.send(PORT_A, a_to_b(17))
    bridge.expect(PORT_B, a_to_b(17))
    answer = Ether(src=PORT_B.peer_mac, dst=PORT_A.peer_mac) / IPv6(src=IP6_B, dst=IP6_A, fl=18) / \
        UDP(sport=9, dport=7) / b"answer"
    bridge.send(PORT_B, answer)
    bridge.expect(PORT_A, answer)
    bridge.expect_nothing()
    assert [c.packets for c in bridge.counters()] == states


HOST_CHAINS = """
table ip6 filter {
    chain prerouting {
        type filter hook prerouting priority filter; policy accept;
        icmpv6 type echo-request counter
    }
    chain input {
        type filter hook input priority filter; policy accept;
        icmpv6 type echo-request counter
    }
}
"""


def test_a_bridged_ipv6_frame_for_the_host_crosses_ip6_prerouting_once(bridge):
    """br_nf_pre_routing_ipv6() ran the ip6 PRE_ROUTING hooks with the frame on
    the port; going up from br0 ip_sabotage_in() (NF_IP6_PRI_FIRST) skips them
    to ip6_rcv_finish(), so the echo request counts once there, once at input."""
    bridge_mac = "02:42:ac:11:00:01"
    for command in (f"ip link set dev br0 address {bridge_mac}",
                    "sysctl -q -w net.ipv6.conf.br0.accept_dad=0 net.ipv6.conf.br0.router_solicitations=0",
                    "sysctl -q -w net.ipv6.conf.br0.disable_ipv6=0",
                    "ip -6 addr add 2001:db8:17::1/64 dev br0 nodad",
                    f"ip -6 neigh replace {IP6_A} lladdr {PORT_A.peer_mac} dev br0 nud permanent"):
        bridge.sh(command)
    bridge.sh("nft -f -", stdin=HOST_CHAINS)
    bridge.send(PORT_A, Ether(src=PORT_A.peer_mac, dst=bridge_mac) / IPv6(src=IP6_A, dst="2001:db8:17::1") /
                ICMPv6EchoRequest(id=5, seq=1, data=b"to br0"))
    bridge.expect(PORT_A, auto_flowlabel_mask(Ether(src=bridge_mac, dst=PORT_A.peer_mac) /
                                              IPv6(src="2001:db8:17::1", dst=IP6_A) /
                                              ICMPv6EchoReply(id=5, seq=1, data=b"to br0")))
    assert counters(bridge) == [("ip6", "prerouting", 1), ("ip6", "input", 1)]
