"""The kernel's 802.1D spanning tree on the bridge (stp_state 1; net/bridge/br_stp.c,
br_stp_bpdu.c, br_stp_timer.c): BPDUs heard and sent, the root elected, a loop blocked.

    bridge R (the tester) --- t0 | p0 ┐
    bridge R, the same LAN --- t1 | p1 ├ br0  DUT, bridge id 8000.02:00:00:00:00:01
    host    --------------- t2 | p2 ┘

The tester plays a bridge R of better id (priority 4096) whose LAN reaches the DUT
on both p0 and p1: a loop. Its BPDUs make R the root, p0 the root port (R's port
0x8001 beats 0x8002), p1 a port that blocks (R is designated on that LAN), and p2
the DUT's designated port, out of which it sends R's configuration on.
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import LLC, STP, Dot3, Ether
from scapy.packet import Raw

from harness.target import PORTS

R_MAC, DUT_ID_MAC = "02:00:00:00:0a:0a", PORTS[0].mac
GROUP = "01:80:c2:00:00:00"


def bpdu(src: str, port_id: int, **fields) -> Dot3:
    """A configuration BPDU of bridge R (root itself unless fields say otherwise)."""
    values = dict(rootid=4096, rootmac=R_MAC, pathcost=0, bridgeid=4096, bridgemac=R_MAC, portid=port_id, age=0,
                  maxage=20, hellotime=2, fwddelay=2) | fields
    return Dot3(dst=GROUP, src=src) / LLC(dsap=0x42, ssap=0x42, ctrl=3) / STP(**values)


def states(target) -> dict[str, str]:
    return {line.split(":")[1].strip(): line.split(" state ")[1].split()[0]
            for line in target.sh("bridge link show").splitlines()}


def states_become(target, expected: dict[str, str], within: float = 1.5) -> dict[str, str]:
    """The port states once they are `expected`, polled every 0.1 s for `within`
    seconds (less than forward_delay, so a listening port cannot pass unseen);
    the last states read otherwise."""
    for _ in range(int(within / 0.1)):
        seen = states(target)
        if seen == expected:
            return seen
        target.wait(0.1)
    return states(target)


@pytest.fixture
def stp_bridge(target):
    """br0 with p0..p2, kernel STP, forward_delay 2 s, up: root by itself, each port listening."""
    target.sh("ip link add br0 type bridge stp_state 1 forward_delay 200 mcast_snooping 0")
    for port in PORTS:
        target.sh(f"ip link set {port.name} master br0")
    target.sh("ip link set br0 up")
    return target


def hear_root(target) -> None:
    """R's BPDUs into p0 and p1 (its ports 0x8001 and 0x8002 on one LAN)."""
    target.send(PORTS[0], bpdu("02:00:00:00:0a:01", 0x8001))
    target.send(PORTS[1], bpdu("02:00:00:00:0a:02", 0x8002), flush=False)


def test_a_better_bridges_bpdus_make_it_root_and_block_the_second_port_to_its_lan(stp_bridge):
    hear_root(stp_bridge)
    assert states(stp_bridge) == {"p0": "listening", "p1": "blocking", "p2": "listening"}


def test_the_dut_passes_the_roots_configuration_on_out_of_its_designated_port(stp_bridge):
    """br_received_config_bpdu() on the root port: the root's timer values taken,
    then br_config_bpdu_generation(): root R, cost = p0's path cost (2 for a
    veth: 10 Gb/s), the DUT's own bridge id and port id, message age one jiffy
    (the time it held it plus MESSAGE_AGE_INCR), R's max age, hello and forward delay."""
    hear_root(stp_bridge)
    sent = Dot3(stp_bridge.expect(PORTS[2], bpdu(PORTS[2].mac, 0x8003, pathcost=2, bridgeid=32768,
                                                   bridgemac=DUT_ID_MAC, age=1 / 256)))
    assert sent[STP].rootmac == R_MAC


def test_with_the_loop_blocked_frames_cross_only_the_root_port(stp_bridge):
    """Two forward delays after the ports opened p0 and p2 forward; p1 stays
    blocking, so what comes in on it is dropped and nothing goes out of it."""
    hear_root(stp_bridge)
    stp_bridge.wait(4.2)
    assert states(stp_bridge) == {"p0": "forwarding", "p1": "blocking", "p2": "forwarding"}
    broadcast = Ether(src=PORTS[2].peer_mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="10.9.0.2", dst="10.9.0.255") / \
        UDP(sport=7, dport=9)
    stp_bridge.send(PORTS[2], broadcast)
    stp_bridge.expect(PORTS[0], broadcast)
    into_blocked = Ether(src="02:00:00:00:0b:0b", dst=PORTS[2].peer_mac) / IP(src="10.9.0.3", dst="10.9.0.2") / \
        UDP(sport=7, dport=9)
    stp_bridge.send(PORTS[1], into_blocked)
    assert [(d.reason, d.location) for d in stp_bridge.drops() if d.location == "br_handle_frame"] == [
        ("BRIDGE_INGRESS_STP_STATE", "br_handle_frame")]
    assert stp_bridge.collect(PORTS[1].name) == []


def test_a_topology_change_is_notified_to_the_root_out_of_the_root_port(stp_bridge):
    """p0 and p2 forwarding is a topology change; the DUT is not root, so it sends
    a TCN BPDU out of its root port (br_transmit_tcn()), again every hello time
    until the root acknowledges it."""
    hear_root(stp_bridge)
    stp_bridge.wait(4.2)
    tcn = Dot3(dst=GROUP, src=PORTS[0].mac) / LLC(dsap=0x42, ssap=0x42, ctrl=3) / Raw(b"\x00\x00\x00\x80")
    stp_bridge.expect(PORTS[0], tcn)


@pytest.mark.requires("drop_reasons")
def test_a_received_bpdu_ends_in_stp_pdu_rcv(stp_bridge):
    """LLC hands the BPDU to br_stp_rcv() (net/802/stp.c stp_pdu_rcv()), which frees
    it with kfree_skb() once taken in."""
    stp_bridge.send(PORTS[0], bpdu("02:00:00:00:0a:01", 0x8001))
    assert [(d.reason, d.stage, d.location) for d in stp_bridge.drops()] == [
        ("NOT_SPECIFIED", "BRIDGE", "stp_pdu_rcv")]


def test_the_root_answers_an_inferior_bpdu_with_its_own(stp_bridge):
    """br_received_config_bpdu(): a worse bridge's BPDU on a designated port gets
    br_reply(): the DUT's configuration, root itself, cost 0, message age 0."""
    stp_bridge.send(PORTS[0], bpdu("02:00:00:00:0a:01", 0x8001, rootid=0xF000, bridgeid=0xF000))
    stp_bridge.expect(PORTS[0], bpdu(PORTS[0].mac, 0x8001, rootid=32768, rootmac=DUT_ID_MAC, bridgeid=32768,
                                     bridgemac=DUT_ID_MAC, maxage=20, hellotime=2, fwddelay=2))
    assert states(stp_bridge) == {"p0": "listening", "p1": "listening", "p2": "listening"}


def test_when_the_roots_bpdus_stop_the_blocked_port_opens_after_max_age(stp_bridge):
    """br_message_age_timer_expired(): R's information, max age 6 s, expires on
    p0 and p1; each becomes designated, the DUT root again, and p1 walks to
    forwarding like a new port."""
    stp_bridge.send(PORTS[0], bpdu("02:00:00:00:0a:01", 0x8001, maxage=6))
    stp_bridge.send(PORTS[1], bpdu("02:00:00:00:0a:02", 0x8002, maxage=6), flush=False)
    assert states(stp_bridge)["p1"] == "blocking"
    stp_bridge.wait(6)  # max age from the BPDUs' arrival, which on a lab DUT comes after send() returns
    opened = {"p0": "forwarding", "p1": "listening", "p2": "forwarding"}
    assert states_become(stp_bridge, opened) == opened


def details(target, dev: str, kind: str) -> list[tuple[str, str]]:
    """The `bridge ...` or `bridge_slave ...` line of `ip -d link show DEV` as
    (attribute, value) pairs, timers left out (their values are times). The
    vlan_* attributes past vlan_filtering are left out too: the lab's kernel is
    built without VLAN filtering, which the mock's has (br_fill_info())."""
    line = next(line.strip() for line in target.sh(f"ip -d link show {dev}").splitlines()
                if line.strip().startswith(kind + " "))
    words = line.split()[1:]
    pairs = list(zip(words[::2], words[1::2]))
    return [(name, value) for name, value in pairs
            if not name.endswith("_timer") and not (name.startswith("vlan_") and name != "vlan_filtering")]


def test_ip_d_link_shows_the_elected_root_on_the_bridge_and_its_ports(stp_bridge):
    """br_fill_info(), br_port_fill_attrs(); iproute2 6.1 prints the bridge's
    designated_root from IFLA_BR_BRIDGE_ID (its own id): the root shows in
    root_port, root_path_cost and the ports' designated_root."""
    hear_root(stp_bridge)
    assert details(stp_bridge, "br0", "bridge") == [
        ("forward_delay", "200"), ("hello_time", "200"), ("max_age", "2000"), ("ageing_time", "30000"),
        ("stp_state", "1"), ("priority", "32768"), ("vlan_filtering", "0"), ("bridge_id", "8000.2:0:0:0:0:1"),
        ("designated_root", "8000.2:0:0:0:0:1"), ("root_port", "1"), ("root_path_cost", "2"),
        ("topology_change", "0"), ("topology_change_detected", "0"), ("group_fwd_mask", "0"),
        ("group_address", "01:80:c2:00:00:00"), ("mcast_snooping", "0"), ("no_linklocal_learn", "0"),
        ("mcast_vlan_snooping", "0"), ("mcast_router", "1"), ("mcast_query_use_ifaddr", "0"),
        ("mcast_querier", "0"), ("mcast_hash_elasticity", "16"), ("mcast_hash_max", "4096"),
        ("mcast_last_member_count", "2"), ("mcast_startup_query_count", "2"),
        ("mcast_last_member_interval", "100"), ("mcast_membership_interval", "26000"),
        ("mcast_querier_interval", "25500"), ("mcast_query_interval", "12500"),
        ("mcast_query_response_interval", "1000"), ("mcast_startup_query_interval", "3124"),
        ("mcast_stats_enabled", "0"), ("mcast_igmp_version", "2"), ("mcast_mld_version", "1"),
        ("nf_call_iptables", "0"), ("nf_call_ip6tables", "0"), ("nf_call_arptables", "0"),
        ("addrgenmode", "eui64"), ("numtxqueues", "1"), ("numrxqueues", "1"), ("gso_max_size", "65536"),
        ("gso_max_segs", "65535"), ("tso_max_size", "524280"), ("tso_max_segs", "65535"),
        ("gro_max_size", "65536")]
    blocked = dict(details(stp_bridge, "p1", "bridge_slave"))
    assert {name: blocked[name] for name in ("state", "cost", "port_id", "port_no", "designated_port",
                                             "designated_cost", "designated_bridge", "designated_root")} == {
        "state": "blocking", "cost": "2", "port_id": "0x8002", "port_no": "0x2", "designated_port": "32770",
        "designated_cost": "0", "designated_bridge": "1000.2:0:0:0:a:a", "designated_root": "1000.2:0:0:0:a:a"}
    designated = dict(details(stp_bridge, "p2", "bridge_slave"))
    assert {name: designated[name] for name in ("state", "designated_port", "designated_cost",
                                                "designated_bridge", "designated_root")} == {
        "state": "listening", "designated_port": "32771", "designated_cost": "2",
        "designated_bridge": "8000.2:0:0:0:0:1", "designated_root": "1000.2:0:0:0:a:a"}
