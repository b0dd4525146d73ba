"""The container-host path of the reference's scenario table ("Docker container
traffic (bridge): PREROUTING -> FORWARD -> POSTROUTING"), as a Docker host runs
it: the DUT's bridge br0 (172.17.0.1/16) has the container on port p1, the
uplink is p0 (10.0.0.1/24), and the nat table masquerades what the container
sends out of the uplink and publishes its port 80 as the uplink's 8080.

    container 172.17.0.2 --- t1 | p1 ┐ br0 172.17.0.1  DUT  p0 10.0.0.1 | t0 --- h0 10.0.0.2

The container's frames are addressed to br0, so the bridge passes them up
(br_pass_frame_up) and IPv4 routes them out of p0; with br_netfilter on (the
default: bridge-nf-call-iptables 1) their IPv4 PRE_ROUTING hooks run while the
bridge has them and ip_sabotage_in() keeps them from running twice. Each
hook runs once per packet, whichever way it goes; replies are un-NATed from the
conntrack entry. Expected frames are written out from the plan.
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from harness.target import PORTS

pytestmark = pytest.mark.requires("nftables")

UPLINK, CONTAINER_PORT = PORTS[0], PORTS[1]
BRIDGE_MAC = "02:42:ac:11:00:01"
BRIDGE_IP, CONTAINER_IP, CONTAINER_MAC = "172.17.0.1", "172.17.0.2", CONTAINER_PORT.peer_mac
UPLINK_IP, HOST_IP, HOST_MAC = "10.0.0.1", "10.0.0.2", UPLINK.peer_mac
REMOTE_IP = "198.51.100.7"  # beyond h0, the uplink's gateway
REMOTE_NET = "198.51.100.0/24"

DOCKER_RULESET = """
table ip nat {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        iifname "p0" tcp dport 8080 counter dnat to 172.17.0.2:80
        iifname "br0" ip daddr 172.17.0.1 tcp dport 9000 dnat to 10.0.0.2:80
    }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr 172.17.0.0/16 oifname != "br0" counter masquerade
    }
}
table ip filter {
    chain prerouting {
        type filter hook prerouting priority filter; policy accept;
        iifname "br0" counter
    }
    chain forward {
        type filter hook forward priority filter; policy drop;
        ct state established,related counter accept
        iifname "br0" oifname "p0" counter accept
        iifname "p0" oifname "br0" ip daddr 172.17.0.2 tcp dport 80 counter accept
    }
}
"""


@pytest.fixture
def docker_host(target):
    """br0 with the container's port, the uplink, forwarding on, the ruleset."""
    # no snooping: the bridge joins no 224.0.0.106 (br_multicast_join_snoopers()) to report to the container
    for command in ("ip link add br0 type bridge mcast_snooping 0",
                    f"ip link set dev br0 address {BRIDGE_MAC}", f"ip link set dev {CONTAINER_PORT.name} master br0",
                    "ip link set dev br0 up",
                    f"ip addr add {BRIDGE_IP}/16 dev br0", f"ip addr add {UPLINK_IP}/24 dev {UPLINK.name}",
                    f"ip route add {REMOTE_NET} via {HOST_IP}",  # not default: a lab DUT keeps its own
                    f"ip neigh replace {HOST_IP} lladdr {HOST_MAC} dev {UPLINK.name} nud permanent",
                    f"ip neigh replace {CONTAINER_IP} lladdr {CONTAINER_MAC} dev br0 nud permanent",
                    "sysctl -w net.ipv4.ip_forward=1"):
        target.sh(command)
    target.sh("nft -f -", stdin=DOCKER_RULESET)
    return target


def from_container(**ip_fields) -> Ether:
    return Ether(src=CONTAINER_MAC, dst=BRIDGE_MAC) / IP(src=CONTAINER_IP, **ip_fields)


def to_container(**ip_fields) -> Ether:
    return Ether(src=BRIDGE_MAC, dst=CONTAINER_MAC) / IP(dst=CONTAINER_IP, **ip_fields)


def from_uplink_host(**ip_fields) -> Ether:
    return Ether(src=HOST_MAC, dst=UPLINK.mac) / IP(**ip_fields)


def to_uplink_host(**ip_fields) -> Ether:
    return Ether(src=UPLINK.mac, dst=HOST_MAC) / IP(**ip_fields)


def counters(target) -> dict[str, int]:
    return {c.rule.split(" counter")[0]: c.packets for c in target.counters()}


def test_the_container_is_masqueraded_out_of_the_uplink_and_the_reply_un_natted(docker_host):
    target = docker_host
    target.send(CONTAINER_PORT, from_container(dst=REMOTE_IP, id=101) / UDP(sport=5353, dport=53) / b"query")
    target.expect(UPLINK, to_uplink_host(src=UPLINK_IP, dst=REMOTE_IP, id=101, ttl=63) /
                  UDP(sport=5353, dport=53) / b"query")
    target.send(UPLINK, from_uplink_host(src=REMOTE_IP, dst=UPLINK_IP, id=102) / UDP(sport=53, dport=5353) /
                b"answer")
    target.expect(CONTAINER_PORT, to_container(src=REMOTE_IP, id=102, ttl=63) / UDP(sport=53, dport=5353) / b"answer")
    target.expect_nothing()
    # the container's datagram crossed IPv4 PRE_ROUTING once: in br_nf_pre_routing, not again from br0
    assert counters(target) == {"ct state established,related": 1, 'iifname "br0" oifname "p0"': 1,
                                'iifname "br0"': 1,
                                'iifname "p0" oifname "br0" ip daddr 172.17.0.2 tcp dport 80': 0,
                                'iifname "p0" tcp dport 8080': 0,
                                'ip saddr 172.17.0.0/16 oifname != "br0"': 1}


def test_the_published_port_is_dnatted_to_the_container_through_the_bridge(docker_host):
    target = docker_host
    syn = TCP(sport=40000, dport=8080, flags="S", seq=1000)
    target.send(UPLINK, from_uplink_host(src=REMOTE_IP, dst=UPLINK_IP, id=201) / syn)
    target.expect(CONTAINER_PORT, to_container(src=REMOTE_IP, id=201, ttl=63) /
                  TCP(sport=40000, dport=80, flags="S", seq=1000))
    syn_ack = TCP(sport=80, dport=40000, flags="SA", seq=5000, ack=1001)
    target.send(CONTAINER_PORT, from_container(dst=REMOTE_IP, id=202) / syn_ack)
    target.expect(UPLINK, to_uplink_host(src=UPLINK_IP, dst=REMOTE_IP, id=202, ttl=63) /
                  TCP(sport=8080, dport=40000, flags="SA", seq=5000, ack=1001))
    target.expect_nothing()
    assert counters(target) == {"ct state established,related": 1, 'iifname "br0" oifname "p0"': 0,
                                'iifname "br0"': 1,
                                'iifname "p0" oifname "br0" ip daddr 172.17.0.2 tcp dport 80': 1,
                                'iifname "p0" tcp dport 8080': 1,
                                'ip saddr 172.17.0.0/16 oifname != "br0"': 0}


@pytest.mark.requires("conntrack")
def test_the_conntrack_entries_of_both_flows_name_the_nat(docker_host):
    target = docker_host
    target.send(CONTAINER_PORT, from_container(dst=REMOTE_IP, id=301) / UDP(sport=5353, dport=53))
    target.frame_left(UPLINK, "the container's datagram, masqueraded")
    target.send(UPLINK, from_uplink_host(src=REMOTE_IP, dst=UPLINK_IP, id=302) /
                TCP(sport=40001, dport=8080, flags="S", seq=1))
    target.frame_left(CONTAINER_PORT, "the SYN to the published port, DNAT-ed")
    entries = {e.proto: e for e in target.conntrack()}
    assert (entries["udp"].original, entries["udp"].reply) == \
        ((CONTAINER_IP, REMOTE_IP, 5353, 53), (REMOTE_IP, UPLINK_IP, 53, 5353))
    assert "snat" in entries["udp"].status
    assert (entries["tcp"].original, entries["tcp"].reply) == \
        ((REMOTE_IP, UPLINK_IP, 40001, 8080), (CONTAINER_IP, REMOTE_IP, 80, 40001))
    assert "dnat" in entries["tcp"].status


def test_the_container_reaches_a_service_dnatted_beyond_the_uplink_through_br0(docker_host):
    """DNAT in the PRE_ROUTING br_nf_pre_routing() runs; the new address is routed out
    of p0, not br0, so the frame goes up to the host (br_nf_pre_routing_finish()) and
    is forwarded and masqueraded; the answer comes back un-NATed both ways."""
    target = docker_host
    target.send(CONTAINER_PORT, from_container(dst=BRIDGE_IP, id=401) / TCP(sport=41000, dport=9000, flags="S", seq=7))
    target.expect(UPLINK, to_uplink_host(src=UPLINK_IP, dst=HOST_IP, id=401, ttl=63) /
                  TCP(sport=41000, dport=80, flags="S", seq=7))
    target.send(UPLINK, from_uplink_host(src=HOST_IP, dst=UPLINK_IP, id=402) /
                TCP(sport=80, dport=41000, flags="SA", seq=70, ack=8))
    target.expect(CONTAINER_PORT, to_container(src=BRIDGE_IP, id=402, ttl=63) /
                  TCP(sport=9000, dport=41000, flags="SA", seq=70, ack=8))
    target.expect_nothing()
