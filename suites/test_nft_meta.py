"""nftables' meta and rt keys, the netdev egress hook and the arp family, on real frames.

Each case loads a small ruleset whose counter rules carry a comment naming
them, sends frames through the DUT and asserts which rules counted each frame
(and, for a drop, that nothing left).
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether

from harness.testing import counted_by_comment

pytestmark = pytest.mark.requires("nftables")


def matched_by(target, deliver) -> set[str]:
    """The comments of the counter rules that counted while `deliver()` ran."""
    before = counted_by_comment(target)
    deliver()
    return {name for name, packets in counted_by_comment(target).items() if packets != before.get(name, 0)}


def forward(target, src_host, dst_host, l4, **ip_fields) -> bytes:
    """Send `l4` from src_host's wire to dst_host through the DUT; return the
    forwarded frame (the DUT decrements the TTL, nothing else changes)."""
    fields = {"dst": dst_host.ip, "id": 7, **ip_fields}
    sent = src_host.to_dut(**fields) / l4
    target.send(src_host.port, sent)
    left = dst_host.from_dut(**{**fields, "src": fields.get("src", src_host.ip), "ttl": sent[IP].ttl - 1}) / l4
    return target.expect(dst_host.port, left)


def forwarded_matches(target, src_host, dst_host, l4, **ip_fields) -> set[str]:
    return matched_by(target, lambda: forward(target, src_host, dst_host, l4, **ip_fields))


# ---------------------------------------------------------------- netdev egress

EGRESS = """
table netdev t {
    chain egress {
        type filter hook egress device "p1" priority filter; policy accept;
        udp dport 9 counter comment "out of p1"
        meta oifname "p1" udp dport 9 counter comment "oifname p1"
        meta iifname "p0" counter comment "iifname at egress"
        udp dport 10 counter drop comment "dropped at egress"
    }
}
"""


def test_a_netdev_egress_chain_sees_what_its_device_sends_and_can_drop_it(target, router):
    """nf_hook_egress() runs in __dev_queue_xmit() of the chain's device only,
    with the device as the output device and no input device: `meta iifname`
    is empty there. A drop at egress sends nothing."""
    h0, h1, h2 = router
    target.sh("nft -f -", stdin=EGRESS)
    udp9 = UDP(sport=1000, dport=9)
    seen = {"to h1": forwarded_matches(target, h0, h1, udp9), "to h2": forwarded_matches(target, h0, h2, udp9)}
    assert seen == {"to h1": {"out of p1", "oifname p1"}, "to h2": set()}

    def dropped():
        target.send(h0.port, h0.to_dut(dst=h1.ip, id=8) / UDP(sport=1000, dport=10))
        target.expect_nothing([h1.port])
    assert matched_by(target, dropped) == {"dropped at egress"}


# ---------------------------------------------------------------- the arp family

ARP_FAMILY = """
table arp t {
    chain input {
        type filter hook input priority filter; policy accept;
        arp operation request arp daddr ip 10.0.0.1 counter comment "request for p0"
        arp saddr ether %(h0_mac)s arp saddr ip 10.0.0.9 counter comment "from h0"
        arp htype 1 arp ptype ip arp hlen 6 arp plen 4 counter comment "ethernet ipv4"
        arp operation 3-10 counter comment "rarp and inarp"
        arp daddr ip 10.0.2.1 counter drop comment "dropped request"
    }
    chain output {
        type filter hook output priority filter; policy accept;
        arp operation reply arp daddr ip 10.0.0.9 arp daddr ether %(h0_mac)s counter comment "reply out"
    }
}
"""


def test_the_arp_family_sees_requests_in_and_replies_out_and_drops_before_arp_process(target, hosts):
    """NF_ARP_IN runs in arp_rcv() before arp_process() (a drop there is never
    answered, and the sender is not learnt), NF_ARP_OUT in arp_xmit() for the
    reply; `arp` fields read the ARP header at the network header."""
    h0 = hosts[0]
    target.sh("nft -f -", stdin=ARP_FAMILY % {"h0_mac": h0.mac})

    def request(pdst: str):
        return Ether(src=h0.mac, dst="ff:ff:ff:ff:ff:ff") / \
            ARP(op=1, hwsrc=h0.mac, psrc="10.0.0.9", hwdst="00:00:00:00:00:00", pdst=pdst)

    def answered():
        target.send(h0.port, request(h0.dut_ip))
        target.expect(h0.port, Ether(src=h0.port.mac, dst=h0.mac) /
                      ARP(op=2, hwsrc=h0.port.mac, psrc=h0.dut_ip, hwdst=h0.mac, pdst="10.0.0.9"))

    def dropped():
        target.send(h0.port, request("10.0.2.1"))
        target.expect_nothing([h0.port])

    assert matched_by(target, answered) == {"request for p0", "from h0", "ethernet ipv4", "reply out"}
    target.sh(f"ip neigh flush dev {h0.port.name}")
    assert matched_by(target, dropped) == {"from h0", "ethernet ipv4", "dropped request"}
    assert "10.0.0.9 " not in target.sh(f"ip neigh show dev {h0.port.name}")
