"""802.1Q tags on receive: __netif_receive_skb_core() takes an outer 802.1Q/802.1ad
tag out of the frame (skb_vlan_untag(): skb->vlan_proto, vlan_tci) before TC and the
netdev ingress hook; with no VLAN device to take it (vlan_do_receive()), a frame of a
VLAN other than 0 is PACKET_OTHERHOST (check_vlan_id) and ip_rcv_core() drops it
OTHERHOST, while a priority tag (VLAN 0) is ignored. The netdev ingress hook still
sees the tag where it was (nft_payload_copy_vlan()); skb->protocol is the inner one.
(802.1Q devices, `ip link add ... type vlan`, are not modelled: the lab's kernel has
no CONFIG_VLAN_8021Q.)"""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Dot1Q, Ether

from harness.testing import Host, bridge_up, counted_by_comment, icmp_socket_mask


def _tagged(host: Host, *vids: int, **ip_fields) -> Ether:
    """An echo request from `host` to the DUT, in the tags `vids` (outermost first)."""
    plain = host.to_dut(**ip_fields) / ICMP(type=8, id=7, seq=1) / b"tagged"
    frame = Ether(src=plain.src, dst=plain.dst)
    for vid in vids:
        frame = frame / Dot1Q(vlan=vid, prio=3)
    return frame / plain.payload


def _reply(host: Host) -> Ether:
    return host.from_dut(src=host.dut_ip, dst=host.ip, ttl=64, flags=0) / ICMP(type=0, id=7, seq=1) / b"tagged"


def test_a_frame_of_a_vlan_no_device_takes_is_otherhost_and_dropped_by_ip_rcv(target, hosts):
    h0 = hosts[0]
    target.send(h0.port, _tagged(h0, 10, id=1))
    target.expect_nothing()
    assert [(d.reason, d.stage) for d in target.drops()] == [("OTHERHOST", "IP_RCV")]


def test_a_priority_tag_is_ignored_and_the_frame_delivered(target, hosts):
    """VLAN 0 (802.1p priority tag): check_vlan_id clears the tag; the echo is
    answered, untagged."""
    h0 = hosts[0]
    target.send(h0.port, _tagged(h0, 0, id=2))
    target.expect(h0.port, icmp_socket_mask(_reply(h0)))


def test_a_priority_tag_around_a_vlan_tag_gives_way_to_the_inner_vlan(target, hosts):
    """VLAN 0 with an 802.1Q tag inside: check_vlan_id untags again, and the inner
    VLAN 10 (no device takes it) makes the frame OTHERHOST."""
    h0 = hosts[0]
    target.send(h0.port, _tagged(h0, 0, 10, id=3))
    target.expect_nothing()
    assert [(d.reason, d.stage) for d in target.drops()] == [("OTHERHOST", "IP_RCV")]


def test_netdev_ingress_sees_the_tag_where_it_was_and_the_inner_protocol(target, hosts):
    """At the netdev ingress hook the tag is out of band (skb_vlan_untag() ran
    first): `ether type`, `vlan id` and `vlan pcp` read it in place
    (nft_payload_copy_vlan()); `meta protocol` is the encapsulated ethertype."""
    h0 = hosts[0]
    target.sh("nft -f -", stdin=f'table netdev nd {{\n chain c {{\n type filter hook ingress device "{h0.port.name}" '
                                f'priority 0; policy accept;\n'
                                ' vlan id 10 vlan pcp 3 counter comment "vlan 10"\n'
                                ' ether type vlan counter comment "ether type vlan"\n'
                                ' meta protocol ip counter comment "protocol ip"\n'
                                ' meta protocol vlan counter comment "protocol vlan"\n'
                                ' vlan id 11 counter comment "vlan 11"\n }\n}\n')
    target.send(h0.port, _tagged(h0, 10, id=4))
    target.expect_nothing()
    assert counted_by_comment(target) == {"vlan 10": 1, "ether type vlan": 1, "protocol ip": 1,
                                          "protocol vlan": 0, "vlan 11": 0}


def test_a_tagged_udp_datagram_reaches_no_socket(target, hosts):
    """The socket bound to the DUT's address never sees a datagram of VLAN 10."""
    h0 = hosts[0]
    sock = target.socket("udp", (h0.dut_ip, 5353))
    plain = h0.to_dut(id=5) / UDP(sport=1, dport=5353) / b"vlan"
    target.send(h0.port, Ether(src=plain.src, dst=plain.dst) / Dot1Q(vlan=10) / plain.payload)
    target.expect_nothing()
    assert sock.recv_all() == []
    assert [(d.reason, d.stage) for d in target.drops()] == [("OTHERHOST", "IP_RCV")]


def test_a_bridge_without_vlan_filtering_floods_a_tagged_frame_still_tagged(target):
    """br_handle_frame() gets the frame with its tag out of band; without
    vlan_filtering nothing reads or drops it and the driver writes it back into
    each copy it sends (validate_xmit_vlan())."""
    bridge_up(target)
    tagged = Ether(src="02:00:00:00:0a:01", dst="02:00:00:00:0b:01") / Dot1Q(vlan=10, prio=5) / \
        IP(src="192.0.2.1", dst="192.0.2.2", id=9) / UDP(sport=7, dport=9)
    target.send("p0", tagged)
    target.expect("p1", tagged)
    target.expect("p2", tagged)
    target.expect_nothing()


@pytest.mark.requires("tc")
def test_tc_ingress_sees_the_frame_untagged_and_classifies_by_the_tag_s_protocol(target, hosts, bpf_objects):
    """TC ingress runs after skb_vlan_untag(): a program reading the Ethernet header
    finds the inner ethertype (tc_drop_udp drops the priority-tagged datagram), and
    __tcf_classify() matches a filter's protocol against skb_protocol(skb, false),
    the tag's 802.1Q while one is present, so a `protocol ip` filter never runs on
    it and the datagram reaches the socket."""
    h0 = hosts[0]
    sock = target.socket("udp", (h0.dut_ip, 5353))
    plain = h0.to_dut(id=6) / UDP(sport=1, dport=5353) / b"prio"
    tagged = Ether(src=plain.src, dst=plain.dst) / Dot1Q(vlan=0, prio=4) / plain.payload
    target.sh(f"tc qdisc add dev {h0.port.name} clsact")
    target.sh(f"tc filter add dev {h0.port.name} ingress protocol ip pref 1 bpf da obj {bpf_objects['tc_drop_udp']} "
              "sec tc")
    target.send(h0.port, tagged)
    target.expect_nothing()
    assert [data for data, _ in sock.recv_all()] == [b"prio"]
    target.sh(f"tc filter add dev {h0.port.name} ingress protocol all pref 2 bpf da obj {bpf_objects['tc_drop_udp']} "
              "sec tc")
    target.send(h0.port, tagged)
    target.expect_nothing()
    assert sock.recv_all() == []
    assert [(d.reason, d.stage) for d in target.drops()] == [("TC_INGRESS", "TC_INGRESS")]
