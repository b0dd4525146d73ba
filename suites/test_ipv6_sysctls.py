"""Per-device IPv6 sysctls (net.ipv6.conf.DEV.*, net/ipv6/addrconf.c): what each
changes in the packets of one port and not of the others, and what a device's
own forwarding flag does not change."""
from __future__ import annotations

from scapy.layers.inet import UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6PacketTooBig, IPv6

from harness.packets import Mask
from harness.testing import drops

PAYLOAD = b"per-device"


def _auto_flowlabel(frame) -> Mask:
    return Mask(frame).ignore(IPv6, "fl", "auto_flowlabels: the flow's hash under a random key")


def test_a_ports_hop_limit_is_the_hop_limit_of_what_the_dut_sends_out_of_it(target, hosts6):
    """ip6_dst_hoplimit(): the egress device's conf hop_limit."""
    h0, h1 = hosts6[0], hosts6[1]
    target.sh(f"sysctl -w net.ipv6.conf.{h0.port.name}.hop_limit=17")
    for host, hop_limit in ((h0, 17), (h1, 64)):
        target.send(host.port, host.to_dut6(hlim=64) / ICMPv6EchoRequest(id=7, seq=1, data=PAYLOAD))
        target.expect(host.port, _auto_flowlabel(host.from_dut6(src=host.dut_ip6, dst=host.ip6, hlim=hop_limit) /
                                                 ICMPv6EchoReply(id=7, seq=1, data=PAYLOAD)))
    target.expect_nothing()


def test_a_ports_ipv6_mtu_below_its_link_mtu_bounds_what_is_forwarded_out_of_it(target, router6):
    """The IPv6 MTU of the egress device (idev->cnf.mtu6), not the link's, is the
    forwarding limit: packet too big with 1280 while the link carries 1500."""
    h0, h1 = router6[0], router6[1]
    target.sh(f"sysctl -w net.ipv6.conf.{h1.port.name}.mtu=1280")
    sent = h0.to_dut6(dst=h1.ip6) / UDP(sport=1111, dport=2222) / (b"x" * 1300)
    target.send(h0.port, sent)
    target.expect(h0.port, _auto_flowlabel(h0.from_dut6(src=h0.dut_ip6, dst=h0.ip6, hlim=64) /
                                           ICMPv6PacketTooBig(mtu=1280) / bytes(sent[IPv6])[:1232]))
    target.expect_nothing()
    assert drops(target) == [("PKT_TOO_BIG", "IP_FORWARD", "ip6_forward")]
    fits = h0.to_dut6(dst=h1.ip6) / UDP(sport=1111, dport=2222) / (b"y" * 1200)
    target.send(h0.port, fits)
    target.expect(h1.port, h1.from_dut6(src=h0.ip6, dst=h1.ip6, hlim=63) / UDP(sport=1111, dport=2222) /
                  (b"y" * 1200))


def test_a_ports_own_forwarding_off_does_not_stop_forwarding_through_it(target, router6):
    """ip6_forward() reads conf/all's forwarding; a device's flag only says whether
    it acts as a router on its link (the NA's R flag, RS, RA)."""
    h0, h1 = router6[0], router6[1]
    target.sh(f"sysctl -w net.ipv6.conf.{h0.port.name}.forwarding=0")
    assert target.sh("sysctl -n net.ipv6.conf.all.forwarding") == "1\n"
    target.send(h0.port, h0.to_dut6(dst=h1.ip6, hlim=9) / UDP(sport=1, dport=2) / PAYLOAD)
    target.expect(h1.port, h1.from_dut6(src=h0.ip6, dst=h1.ip6, hlim=8) / UDP(sport=1, dport=2) / PAYLOAD)
