"""nft's icmp field dependencies, on real frames.

A field of one ICMP message type is matched only in messages of that type:
nftables' src/proto.c gives `icmp mtu` the destination-unreachable type,
`icmp gateway` the redirect type and `icmp id` the echo types, and
src/payload.c payload_gen_icmp_dependency() puts `icmp type 3` (or `icmp type
{ echo-reply, echo-request }`) in front of the field, so the kernel
(net/netfilter/nft_payload.c) loads the bytes at the field's offset only
after that comparison. The frames here carry the same bytes at those offsets
in three message types: without the dependency each rule would count all of
them.
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, UDP

from harness.testing import counted_by_comment, quoted

pytestmark = pytest.mark.requires("nftables")

ICMP_FIELDS = """
table ip t {
    chain forward {
        type filter hook forward priority filter; policy accept;
        icmp mtu 1400 counter comment "mtu 1400"
        icmp gateway 1400 counter comment "gateway 1400"
        icmp id 9 counter comment "id 9"
    }
}
"""


def test_icmp_fields_match_only_the_message_type_they_belong_to(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=ICMP_FIELDS)
    about = h1.to_dut(src=h1.ip, dst=h0.ip, id=5) / UDP(sport=53, dport=5353)
    frames = {  # bytes 4-7 of each: 00 09 05 78, 00 00 05 78, 00 00 05 78
        "echo request id 9 seq 1400": ICMP(type=8, id=9, seq=1400),
        "fragmentation needed, mtu 1400": ICMP(type=3, code=4, nexthopmtu=1400) / quoted(about),
        "redirect to 0.0.5.120": ICMP(type=5, code=1, gw="0.0.5.120") / quoted(about),
    }
    seen = {}
    for name, l4 in frames.items():
        before = counted_by_comment(target)
        sent = h0.to_dut(dst=h1.ip, id=7) / l4
        target.send(h0.port, sent)
        target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=7, ttl=sent.ttl - 1) / l4)
        seen[name] = {rule for rule, packets in counted_by_comment(target).items() if packets != before.get(rule, 0)}
    assert seen == {
        "echo request id 9 seq 1400": {"id 9"},
        "fragmentation needed, mtu 1400": {"mtu 1400"},
        "redirect to 0.0.5.120": {"gateway 1400"},
    }


def test_icmp_fields_list_without_the_dependency_nft_added(target):
    """netlink_delinearize.c: payload_may_dependency_kill_icmp() leaves out the
    `icmp type 3` the field needs; the echo types stay."""
    target.sh("nft -f -", stdin=ICMP_FIELDS)
    listing = target.sh("nft list chain ip t forward")
    assert [line.strip() for line in listing.splitlines()[3:6]] == [
        'icmp mtu 1400 counter packets 0 bytes 0 comment "mtu 1400"',
        'icmp gateway 1400 counter packets 0 bytes 0 comment "gateway 1400"',
        'icmp type { echo-reply, echo-request } icmp id 9 counter packets 0 bytes 0 comment "id 9"',
    ]
