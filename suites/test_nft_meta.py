"""nftables' meta and rt keys, the netdev egress hook and the arp family, on real frames.

Each case loads a small ruleset whose counter rules carry a comment naming
them, sends frames through the DUT and asserts which rules counted each frame
(and, for a drop, that nothing left).
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import UDP
from scapy.layers.l2 import ARP, Ether

from harness.testing import forwarded_matches, matched_by, socket_datagram_mask

pytestmark = pytest.mark.requires("nftables")


# ---------------------------------------------------------------- netdev egress

EGRESS = """
table netdev t {
    chain egress {
        type filter hook egress device "%(p1)s" priority filter; policy accept;
        udp dport 9 counter comment "out of p1"
        meta oifname "%(p1)s" udp dport 9 counter comment "oifname p1"
        meta iifname "%(p0)s" counter comment "iifname at egress"
        udp dport 10 counter drop comment "dropped at egress"
    }
}
"""


def test_a_netdev_egress_chain_sees_what_its_device_sends_and_can_drop_it(target, router):
    """nf_hook_egress() runs in __dev_queue_xmit() of the chain's device only,
    with the device as the output device and no input device: `meta iifname`
    is empty there. A drop at egress sends nothing."""
    h0, h1, h2 = router
    target.sh("nft -f -", stdin=EGRESS % {"p0": h0.port.name, "p1": h1.port.name})
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


# ---------------------------------------------------------------- meta and rt keys

META_KEYS = """
table inet t {
    chain prerouting {
        type filter hook prerouting priority filter; policy accept;
        udp dport 9 meta rtclassid "cosmos" counter comment "rtclassid before routing"
        udp dport 9 rt ipsec missing counter comment "rt before routing"
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        udp dport 9 iifgroup 5 counter comment "iifgroup 5"
        udp dport 9 oifgroup "default" counter comment "oifgroup default"
        udp dport 9 oifgroup 5 counter comment "oifgroup 5"
        udp dport 9 meta iiftype ether meta oiftype ether counter comment "ether in and out"
        udp dport 9 meta iiftype loopback counter comment "from lo"
        udp dport 9 meta cpu < 4096 counter comment "cpu"
        udp dport 9 meta random != 0 counter comment "random"
        udp dport 9 meta ipsec missing counter comment "no secpath"
        udp dport 9 meta rtclassid "cosmos" counter comment "realm 0"
        udp dport 9 meta sdifname != "vrf1" counter comment "no vrf"
        udp dport 9 meta time > "2022-07-01 11:00:00" counter comment "after 2022-07-01"
        udp dport 9 meta time < "2022-07-01 11:00:00" counter comment "before 2022-07-01"
        udp dport 9 meta day { "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday" } counter comment "any day"
        udp dport 9 meta hour >= "00:00" counter comment "any hour"
        udp dport 9 meta skuid 0 counter comment "forwarded skuid"
        udp dport 9 rt ip nexthop %(h1)s counter comment "nexthop h1"
        udp dport 9 rt classid "cosmos" rt ipsec missing counter comment "rt classid ipsec"
    }
    chain output {
        type filter hook output priority filter; policy accept;
        udp dport 9 meta skuid 0 meta skgid 0 counter comment "root's socket"
        udp dport 9 meta skuid != 0 counter comment "another user's"
        udp dport 9 meta cgroup 0 counter comment "no net_cls classid"
    }
}
"""


@pytest.mark.requires("sockets")
def test_meta_and_rt_keys_of_a_forwarded_and_a_locally_sent_packet(target, router):
    """nft_meta_get_eval() and nft_rt_get_eval() on one forwarded datagram and
    one a root socket of the DUT sends: device groups and types of the input
    and output devices, the wall clock, the route (none yet in prerouting:
    those rules break), the socket (none when forwarding: the rule breaks)."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=META_KEYS % {"h1": h1.ip})
    target.sh(f"ip link set dev {h0.port.name} group 5")
    try:
        forwarded = forwarded_matches(target, h0, h1, UDP(sport=1000, dport=9))
    finally:
        target.sh(f"ip link set dev {h0.port.name} group default")
    assert forwarded == {"iifgroup 5", "oifgroup default", "ether in and out", "cpu", "random", "no secpath",
                         "realm 0", "no vrf", "after 2022-07-01", "any day", "any hour", "nexthop h1",
                         "rt classid ipsec"}

    def send_from_a_socket():
        target.socket("udp", (h1.dut_ip, 5000)).sendto(b"local", (h1.ip, 9))
        target.expect(h1.port, socket_datagram_mask(h1.from_dut(src=h1.dut_ip, dst=h1.ip, ttl=64, flags="DF") /
                                                    UDP(sport=5000, dport=9) / b"local"))
    assert matched_by(target, send_from_a_socket) == {"root's socket", "no net_cls classid"}
