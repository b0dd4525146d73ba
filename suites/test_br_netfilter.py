"""Bridged IPv4 and netfilter: the bridge family's own chains, and br_netfilter
(net.bridge.bridge-nf-call-iptables, 1 by default) putting bridged IPv4 frames
through the ip family's PREROUTING, FORWARD and POSTROUTING hooks, with the
bridge as their input and output device, and through conntrack.

    container a 172.17.0.2 --- t1 | p1 ┐
                                      ├ br0  DUT
    container b 172.17.0.3 --- t2 | p2 ┘

The DUT only bridges: br0 has no address. A drop by either family's chain frees
the frame NETFILTER_DROP at that hook (nft_do_chain), the stage of the hook it
ran at.
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Dot1Q, Ether

from harness.target import PORTS
from harness.testing import bridge_up

pytestmark = pytest.mark.requires("nftables")

PORT_A, PORT_B = PORTS[1], PORTS[2]
IP_A, IP_B = "172.17.0.2", "172.17.0.3"

IP_CHAINS = """
table ip filter {
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

IP_FORWARD_DROP = """
table ip filter {
    chain forward {
        type filter hook forward priority filter; policy accept;
        iifname "br0" oifname "br0" udp dport 9 counter drop
    }
}
"""

BRIDGE_FORWARD_DROP = f"""
table bridge filter {{
    chain forward {{
        type filter hook forward priority filter; policy accept;
        ether saddr {PORT_A.peer_mac} udp dport 9 counter drop
    }}
}}
"""

CONNTRACK = """
table ip filter {
    chain forward {
        type filter hook forward priority filter; policy accept;
        ct state new counter
    }
}
"""


@pytest.fixture
def bridge(target):
    """br0 with p1 and p2, up; no address."""
    bridge_up(target, ports=(PORT_A.name, PORT_B.name))
    return target


def a_to_b(ident: int) -> Ether:
    return Ether(src=PORT_A.peer_mac, dst=PORT_B.peer_mac) / IP(src=IP_A, dst=IP_B, id=ident) / \
        UDP(sport=7, dport=9) / b"bridged"


def counters(target) -> list[tuple[str, str, int]]:
    return [(c.family, c.chain, c.packets) for c in target.counters()]


def test_default_sysctls_call_iptables_for_bridged_frames(bridge):
    assert [bridge.sh(f"sysctl -n net.bridge.bridge-nf-call-{tables}").strip()
            for tables in ("iptables", "ip6tables", "arptables")] == ["1", "1", "1"]


def test_a_bridged_frame_crosses_the_ip_prerouting_forward_and_postrouting_hooks(bridge):
    """The reference's scenario table: container traffic through a bridge
    crosses PREROUTING -> FORWARD -> POSTROUTING, each once, with br0 as the
    device, and leaves unchanged (no TTL decrement: it is bridged)."""
    bridge.sh("nft -f -", stdin=IP_CHAINS)
    bridge.send(PORT_A, a_to_b(11))
    bridge.expect(PORT_B, a_to_b(11))
    bridge.expect_nothing()
    assert counters(bridge) == [("ip", "prerouting", 1), ("ip", "forward", 1), ("ip", "postrouting", 1)]


BRIDGE_CHAINS = """
table bridge filter {
    chain prerouting { type filter hook prerouting priority filter; policy accept; }
    chain forward { type filter hook forward priority filter; policy accept; }
    chain postrouting { type filter hook postrouting priority filter; policy accept; }
}
"""


@pytest.mark.requires("nftrace")
def test_each_bridge_chain_runs_before_the_ip_chain_br_netfilter_runs_at_its_hook(bridge):
    """br_nf_pre_routing and br_nf_forward_ip sit at NF_BR_PRI_BRNF (0, and -1),
    br_nf_post_routing at NF_BR_PRI_LAST: a bridge chain at priority filter (-200)
    sees the frame first at each hook."""
    bridge.sh("nft -f -", stdin=IP_CHAINS)
    bridge.sh("nft -f -", stdin=BRIDGE_CHAINS)
    bridge.send(PORT_A, a_to_b(18))
    bridge.expect(PORT_B, a_to_b(18))
    hops = [(h.stage, h.where) for j in bridge.journeys() for h in j.hops if h.where.endswith(" filter prerouting")
            or h.where.endswith(" filter forward") or h.where.endswith(" filter postrouting")]
    assert hops == [("NF_PREROUTING", "bridge filter prerouting"), ("NF_PREROUTING", "ip filter prerouting"),
                    ("NF_FORWARD", "bridge filter forward"), ("NF_FORWARD", "ip filter forward"),
                    ("NF_POSTROUTING", "bridge filter postrouting"), ("NF_POSTROUTING", "ip filter postrouting")]


def test_with_call_iptables_off_bridged_frames_skip_the_ip_hooks(bridge):
    bridge.sh("sysctl -w net.bridge.bridge-nf-call-iptables=0")
    bridge.sh("nft -f -", stdin=IP_CHAINS)
    bridge.send(PORT_A, a_to_b(12))
    bridge.expect(PORT_B, a_to_b(12))
    assert counters(bridge) == [("ip", "prerouting", 0), ("ip", "forward", 0), ("ip", "postrouting", 0)]


def test_call_iptables_stores_any_non_zero_write_as_1(bridge):
    bridge.sh("sysctl -w net.bridge.bridge-nf-call-iptables=7")
    assert bridge.sh("sysctl -n net.bridge.bridge-nf-call-iptables").strip() == "1"


@pytest.mark.requires("drop_reasons")
def test_an_ip_forward_chain_drops_a_bridged_frame_when_call_iptables_is_on(bridge):
    bridge.sh("nft -f -", stdin=IP_FORWARD_DROP)
    bridge.send(PORT_A, a_to_b(13))
    bridge.expect_nothing()
    assert [(d.reason, d.stage, d.location) for d in bridge.drops()] == [
        ("NETFILTER_DROP", "NF_FORWARD", "nft_do_chain")]
    bridge.sh("sysctl -w net.bridge.bridge-nf-call-iptables=0")
    bridge.send(PORT_A, a_to_b(14))
    bridge.expect(PORT_B, a_to_b(14))
    assert counters(bridge) == [("ip", "forward", 1)]


@pytest.mark.requires("drop_reasons")
def test_a_bridge_family_forward_chain_drops_by_ether_source_whatever_the_sysctl(bridge):
    bridge.sh("sysctl -w net.bridge.bridge-nf-call-iptables=0")
    bridge.sh("nft -f -", stdin=BRIDGE_FORWARD_DROP)
    bridge.send(PORT_A, a_to_b(15))
    from_b = Ether(src=PORT_B.peer_mac, dst=PORT_A.peer_mac) / IP(src=IP_B, dst=IP_A, id=16) / UDP(sport=7, dport=9)
    bridge.send(PORT_B, from_b)
    bridge.expect(PORT_A, from_b)
    bridge.expect_nothing()
    assert [(d.reason, d.stage, d.location) for d in bridge.drops()] == [
        ("NETFILTER_DROP", "NF_FORWARD", "nft_do_chain")]
    assert counters(bridge) == [("bridge", "forward", 1)]


BRIDGE_OUTPUT_DROP = """
table bridge filter {
    chain output {
        type filter hook output priority out; policy accept;
        udp dport 9 counter drop
    }
}
"""


@pytest.mark.requires("drop_reasons")
def test_a_bridge_output_chain_drops_the_hosts_own_frame_at_nf_output(bridge):
    """What the host sends out of br0 (br_dev_xmit) crosses NF_BR_LOCAL_OUT, not FORWARD."""
    bridge.sh("ip addr add 172.17.0.1/16 dev br0")
    bridge.sh(f"ip neigh replace {IP_B} lladdr {PORT_B.peer_mac} dev br0 nud permanent")
    bridge.sh("nft -f -", stdin=BRIDGE_OUTPUT_DROP)
    bridge.socket("udp", ("172.17.0.1", 7)).sendto(b"from the host", (IP_B, 9))
    bridge.expect_nothing()
    # b's address is in no fdb entry yet: the frame floods, a copy for each port, each dropped
    assert [(d.reason, d.stage, d.location) for d in bridge.drops()] == [
        ("NETFILTER_DROP", "NF_OUTPUT", "nft_do_chain")] * 2
    assert counters(bridge) == [("bridge", "output", 2)]


BRIDGED_DNAT = """
table ip nat {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        ip daddr 172.17.0.1 tcp dport 8080 dnat to 172.17.0.3:80
    }
}
"""


def test_a_frame_dnatted_to_a_host_behind_the_same_bridge_stays_bridged(bridge):
    """a asks br0's address for port 8080, published by b: br_nf_pre_routing_finish()
    sees the new address routed out of br0 itself, so the frame is bridged on to b's
    neighbour entry (its MAC), not routed (TTL kept); b's answer is bridged back and
    un-NATed in the POSTROUTING br_nf_post_routing() runs."""
    bridge_mac = "02:42:ac:11:00:01"
    for command in (f"ip link set dev br0 address {bridge_mac}", "ip addr add 172.17.0.1/16 dev br0",
                    f"ip neigh replace {IP_A} lladdr {PORT_A.peer_mac} dev br0 nud permanent",
                    f"ip neigh replace {IP_B} lladdr {PORT_B.peer_mac} dev br0 nud permanent",
                    "sysctl -w net.ipv4.ip_forward=1"):
        bridge.sh(command)
    bridge.sh("nft -f -", stdin=BRIDGED_DNAT)
    syn = TCP(sport=40000, dport=8080, flags="S", seq=1)
    bridge.send(PORT_A, Ether(src=PORT_A.peer_mac, dst=bridge_mac) / IP(src=IP_A, dst="172.17.0.1", id=21) / syn)
    bridge.expect(PORT_B, Ether(src=PORT_A.peer_mac, dst=PORT_B.peer_mac) / IP(src=IP_A, dst=IP_B, id=21) /
                  TCP(sport=40000, dport=80, flags="S", seq=1))
    syn_ack = TCP(sport=80, dport=40000, flags="SA", seq=9, ack=2)
    bridge.send(PORT_B, Ether(src=PORT_B.peer_mac, dst=PORT_A.peer_mac) / IP(src=IP_B, dst=IP_A, id=22) / syn_ack)
    bridge.expect(PORT_A, Ether(src=PORT_B.peer_mac, dst=PORT_A.peer_mac) / IP(src="172.17.0.1", dst=IP_A, id=22) /
                  TCP(sport=8080, dport=40000, flags="SA", seq=9, ack=2))
    bridge.expect_nothing()


@pytest.mark.requires("conntrack")
@pytest.mark.parametrize("call_iptables, tracked", [("1", True), ("0", False)], ids=["on", "off"])
def test_conntrack_tracks_a_bridged_flow_only_through_br_netfilter(bridge, call_iptables, tracked):
    bridge.sh(f"sysctl -w net.bridge.bridge-nf-call-iptables={call_iptables}")
    bridge.sh("nft -f -", stdin=CONNTRACK)
    bridge.send(PORT_A, a_to_b(17))
    bridge.expect(PORT_B, a_to_b(17))
    entries = [(e.original, e.reply) for e in bridge.conntrack() if e.proto == "udp"]
    assert entries == ([((IP_A, IP_B, 7, 9), (IP_B, IP_A, 9, 7))] if tracked else [])
    assert counters(bridge) == [("ip", "forward", 1 if tracked else 0)]


def test_a_vlan_tagged_bridged_frame_skips_the_ip_hooks(bridge):
    """The port's receive took the tag out of band (skb_vlan_untag()); IS_IP()
    needs no tag present and is_vlan_ip() needs filter-vlan-tagged (0 by
    default), so br_nf_pre_routing() lets the frame through without the ip
    family's hooks; it leaves with its tag."""
    bridge.sh("nft -f -", stdin=IP_CHAINS)
    plain = a_to_b(12)
    tagged = Ether(src=plain.src, dst=plain.dst) / Dot1Q(vlan=10) / plain.payload
    bridge.send(PORT_A, tagged)
    bridge.expect(PORT_B, tagged)
    bridge.expect_nothing()
    assert counters(bridge) == [("ip", "prerouting", 0), ("ip", "forward", 0), ("ip", "postrouting", 0)]
