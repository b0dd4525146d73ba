"""802.1Q tags on the mock's receive path (core/dev.py netif_receive_skb(),
core/skbuff.py skb_vlan_untag()): the tag leaves the frame before TC and the
netdev hook, check_vlan_id makes a frame of a VLAN no device takes OTHERHOST, and
the tag goes back into the frame at the driver (validate_xmit_vlan())."""
from __future__ import annotations

from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Dot1Q, Ether

from harness.mockkernel.core.skbuff import SkBuff, skb_vlan_untag
from harness.mockkernel.target import MockTarget
from harness.target import PORTS
from harness.testing import icmp_socket_mask

DUT, PEER = PORTS[0].mac, PORTS[0].peer_mac


def echo(*vids: int) -> Ether:
    frame = Ether(src=PEER, dst=DUT)
    for vid in vids:
        frame = frame / Dot1Q(vlan=vid, prio=6)
    return frame / IP(src="10.0.0.2", dst="10.0.0.1") / ICMP(type=8, id=1, seq=1)


def mock() -> MockTarget:
    target = MockTarget()
    target.sh("ip addr add 10.0.0.1/24 dev p0")
    target.sh(f"ip neigh add 10.0.0.2 lladdr {PEER} dev p0")
    return target


def test_skb_vlan_untag_moves_the_tag_out_of_band_and_the_addresses_over_it():
    frame = bytes(Ether(src=PEER, dst=DUT) / Dot1Q(vlan=10, prio=5) / IP() / UDP())
    skb = SkBuff(frame)
    skb.mac_header, skb.protocol = skb.data, 0x8100
    assert skb_vlan_untag(skb)
    assert (skb.vlan_proto, skb.vlan_tci, skb.protocol) == (0x8100, 5 << 13 | 10, 0x0800)
    assert bytes(skb.buf[skb.mac_header:skb.tail]) == bytes(Ether(src=PEER, dst=DUT) / IP() / UDP())


def test_a_frame_of_a_vlan_no_device_takes_is_dropped_otherhost_in_ip_rcv():
    target = mock()
    target.send("p0", echo(10))
    target.expect_nothing()
    assert [(d.reason, d.stage, d.location) for d in target.drops()] == [("OTHERHOST", "IP_RCV", "ip_rcv_core")]


def test_a_priority_tag_is_ignored():
    target = mock()
    target.send("p0", echo(0))
    reply = Ether(src=DUT, dst=PEER) / IP(src="10.0.0.1", dst="10.0.0.2", flags=0) / ICMP(type=0, id=1, seq=1)
    target.expect("p0", icmp_socket_mask(reply))


def test_a_priority_tag_around_a_vlan_tag_gives_way_to_the_inner_one():
    target = mock()
    target.send("p0", echo(0, 10))
    target.expect_nothing()
    assert [(d.reason, d.stage) for d in target.drops()] == [("OTHERHOST", "IP_RCV")]


def test_a_tagged_frame_too_short_for_its_tag_is_freed_by_skb_vlan_untag():
    target = mock()
    target.send("p0", bytes(Ether(src=PEER, dst=DUT, type=0x8100)) + b"\x00\x0a")
    target.expect_nothing()
    assert [(d.reason, d.location) for d in target.drops()] == [("NOT_SPECIFIED", "skb_vlan_untag")]


def test_nft_netdev_ingress_sees_the_tag_out_of_band_and_the_inner_protocol():
    """At netdev ingress skb->protocol is the inner ethertype and `vlan id` reads
    the out-of-band tag in place (nft_payload_copy_vlan())."""
    target = mock()
    target.sh("nft -f -", stdin='table netdev t {\n chain c {\n type filter hook ingress device "p0" priority 0;\n'
                                ' vlan id 10 vlan pcp 6 meta protocol ip counter\n }\n}\n')
    target.send("p0", echo(10))
    assert "counter packets 1 bytes" in target.sh("nft list ruleset")
