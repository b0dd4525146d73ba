"""nftables' meta and rt keys, the netdev egress hook and the arp family, on real frames.

Each case loads a small ruleset whose counter rules carry a comment naming
them, sends frames through the DUT and asserts which rules counted each frame
(and, for a drop, that nothing left).
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP

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
