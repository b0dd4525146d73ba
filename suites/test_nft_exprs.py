"""nftables' expression machinery on forwarded frames: bitwise operations on
marks (nft_bitwise), TCP options matched and stripped (nft_exthdr), conntrack
keys (nft_ct, nft_connlimit) and sets' element order.

Each case loads a small forward-chain ruleset whose counter rules carry a
comment naming them, sends frames through the DUT and asserts which rules
counted each frame (and what left the DUT).
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP

from harness.testing import matched_by

pytestmark = pytest.mark.requires("nftables")

FORWARD = """
table ip t {
    chain f {
        type filter hook forward priority filter; policy accept;
%s
    }
}
"""


def forwarded(target, src, dst, l4, left_l4=None):
    """Send `l4` from src's wire to dst through the DUT; expect it (or `left_l4`) out of dst's port."""
    sent = src.to_dut(dst=dst.ip, id=7) / l4
    target.send(src.port, sent)
    return target.expect(dst.port, dst.from_dut(src=src.ip, dst=dst.ip, id=7, ttl=sent[IP].ttl - 1) /
                         (left_l4 if left_l4 is not None else l4))


# ---------------------------------------------------------------- bitwise

BITWISE = FORWARD % """
        meta mark set meta mark or 0x12
        meta mark 0x12 counter comment "or"
        meta mark set meta mark xor 0x2
        meta mark xor 0x30 == 0x20 counter comment "xor moved to the value"
        meta mark or 0x1 == 0x11 counter comment "or in a relation"
        ct mark set (meta mark | 0x1) << 4
        ct mark 0x110 counter comment "lshift"
        meta mark set ct mark >> 4
        meta mark 0x11 counter comment "rshift"
        meta mark set meta mark & 0xff | 0x3 ^ 0x1
        meta mark 0x13 counter comment "and, or, xor folded"
        meta mark 0x11 counter comment "not this"
"""


def test_bitwise_operations_compute_on_marks_as_nft_bitwise_does(target, router):
    """One NFT_BITWISE_BOOL per and/or/xor chain ((x & mask) ^ xor), shifts of
    their own; `x ^ c == v` is `x == v ^ c` (binop_transfer())."""
    h0, h1, _ = router
    target.sh("nft -f -", stdin=BITWISE)
    assert matched_by(target, lambda: forwarded(target, h0, h1, UDP(sport=1000, dport=9))) == {
        "or", "xor moved to the value", "or in a relation", "lshift", "rshift", "and, or, xor folded"}


# ---------------------------------------------------------------- TCP options

TCP_OPTIONS = FORWARD % """
        tcp option maxseg size 1460 counter comment "maxseg"
        tcp option window count 7 counter comment "window"
        tcp option sack-perm exists counter comment "sack-perm"
        tcp option timestamp tsval 100 tcp option timestamp tsecr 0 counter comment "timestamp"
        tcp option @3,16,8 7 counter comment "raw window"
        tcp option md5sig missing counter comment "no md5sig"
        tcp option 253 exists counter comment "not this"
        tcp option sack left 1 counter comment "no sack blocks"
        reset tcp option timestamp
        tcp option timestamp missing counter comment "stripped"
"""
SYN_OPTIONS = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (100, 0)), ("WScale", 7)]


def test_tcp_options_match_and_reset_strips_one_with_nops(target, router):
    """nft_exthdr_tcp_eval() finds each option by kind; a SACK field of a SYN
    without a SACK option breaks its rule; `reset tcp option timestamp`
    overwrites the option's 10 bytes with NOPs and the checksum stays valid."""
    h0, h1, _ = router
    target.sh("nft -f -", stdin=TCP_OPTIONS)
    syn = TCP(sport=1000, dport=80, flags="S", seq=1, options=SYN_OPTIONS)
    raw = bytes(syn)
    at = raw.index(bytes([8, 10]))  # the timestamp option
    stripped = TCP(raw[:16] + b"\0\0" + raw[18:at] + bytes([1] * 10) + raw[at + 10:])
    del stripped.chksum
    assert matched_by(target, lambda: forwarded(target, h0, h1, syn, stripped)) == {
        "maxseg", "window", "sack-perm", "timestamp", "raw window", "no md5sig", "stripped"}


# ---------------------------------------------------------------- conntrack keys

CT_KEYS = FORWARD % """
        ct l3proto ipv4 ct protocol udp ct original proto-dst 9 ct reply proto-src 9 counter comment "tuple"
        ct original packets 1 counter comment "first packet"
        ct original packets 2 ct bytes 56 ct avgpkt 28 counter comment "second packet"
        ct reply packets 0 counter comment "no reply"
        ct expiration > 25s counter comment "expires in 30s"
        ct zone 0 counter comment "zone 0"
        ct label 3 counter comment "labelled"
        ct label set 3
        ct helper "ftp" counter comment "not this"
"""


def test_conntrack_keys_read_the_flow_entry(target, router):
    """nft_ct_get_eval(): the tuples, the accounting a `ct packets` rule turns
    on (28-byte UDP datagrams), the time left (the unreplied UDP timeout,
    30 s, refreshed: read on the confirmed entry), the zone, the label the
    first packet set."""
    h0, h1, _ = router
    target.sh("nft -f -", stdin=CT_KEYS)
    udp = UDP(sport=1000, dport=9)
    first = matched_by(target, lambda: forwarded(target, h0, h1, udp))
    second = matched_by(target, lambda: forwarded(target, h0, h1, udp))
    assert first >= {"tuple", "first packet", "no reply", "zone 0"} and "labelled" not in first
    assert second == {"tuple", "second packet", "no reply", "expires in 30s", "zone 0", "labelled"}


CONNLIMIT = FORWARD % """
        ct count over 2 counter drop comment "over 2"
        counter comment "all"
"""


def test_ct_count_drops_the_flows_past_its_limit(target, router):
    """nft_connlimit: each flow through the rule counts while its entry lives."""
    h0, h1, _ = router
    target.sh("nft -f -", stdin=CONNLIMIT)
    seen = [matched_by(target, lambda s=sport: forwarded(target, h0, h1, UDP(sport=s, dport=9)))
            for sport in (1000, 1001)]

    def dropped():
        target.send(h0.port, h0.to_dut(dst=h1.ip, id=7) / UDP(sport=1002, dport=9))
        target.expect_nothing([h1.port])
    assert seen + [matched_by(target, dropped)] == [{"all"}, {"all"}, {"over 2"}]


# ---------------------------------------------------------------- sets

SORTED = """
table ip t {
    set names { type ifname; elements = { "eth1", "lo", "dummy0", "eth0" } }
    set pairs { type inet_service . ipv4_addr; elements = { 80 . 10.0.0.2, 22 . 10.0.0.3, 22 . 10.0.0.1 } }
    chain f {
        type filter hook forward priority filter; policy accept;
        iifname . ip saddr { "p0" . 10.0.0.2, "p1" . 10.0.1.2 } counter comment "pair"
    }
}
"""


def test_set_elements_list_in_nfts_order_and_a_concatenation_matches(target, router):
    """list_expr_sort(): a name sorts as a little-endian number, a
    concatenation by its last part first (its bytes read little-endian)."""
    h0, h1, _ = router
    target.sh("nft -f -", stdin=SORTED)
    listing = " ".join(target.sh("nft list table ip t").split())
    assert 'elements = { "lo", "eth0", "eth1", "dummy0" }' in listing
    assert "elements = { 22 . 10.0.0.1, 80 . 10.0.0.2, 22 . 10.0.0.3 }" in listing
    assert matched_by(target, lambda: forwarded(target, h0, h1, UDP(sport=1000, dport=9))) == {"pair"}


DYNSET = """
table ip t {
    set seen { type ipv4_addr; flags dynamic; }
    chain f {
        type filter hook forward priority filter; policy accept;
        ip saddr @seen counter comment "seen before"
        udp dport 9 add @seen { ip saddr }
        udp dport 10 delete @seen { ip saddr }
    }
}
"""


def test_add_and_delete_from_the_packet_path_change_what_a_lookup_finds(target, router):
    """nft_dynset_eval(): `add @seen { ip saddr }` inserts the source, the next
    packet's lookup finds it, `delete` takes it out again."""
    h0, h1, _ = router
    target.sh("nft -f -", stdin=DYNSET)
    seen = [matched_by(target, lambda p=dport: forwarded(target, h0, h1, UDP(sport=1000, dport=p)))
            for dport in (9, 9, 10, 9)]
    assert seen == [set(), {"seen before"}, {"seen before"}, set()]
    assert "elements = { 10.0.0.2 }" in " ".join(target.sh("nft list set ip t seen").split())


PIPAPO = FORWARD % """
        ip saddr . udp dport { 10.0.0.0/24 . 5-9, 10.0.1.0/24 . 20-30 } counter comment "in both ranges"
        ip saddr . udp dport { 10.0.0.0/24 . 20-30 } counter comment "not this"
"""


def test_a_concatenated_interval_key_matches_when_every_field_is_in_its_range(target, router):
    """nft_set_pipapo: each field of the key in its element's range."""
    h0, h1, _ = router
    target.sh("nft -f -", stdin=PIPAPO)
    assert matched_by(target, lambda: forwarded(target, h0, h1, UDP(sport=1000, dport=9))) == {"in both ranges"}


# ---------------------------------------------------------------- raw payload writes

def test_a_raw_payload_write_lists_as_the_field_and_leaves_the_checksum_alone(target, router):
    """`@th,16,16 set 5091` after `meta l4proto udp`: nft lists it as `udp dport
    set 5091` (payload_expr_complete()) but sends it raw, with no checksum to
    update (csum_type 0): the datagram leaves with the new port and its old,
    now wrong, UDP checksum (nft_payload_set_eval())."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=FORWARD % "        meta l4proto udp udp dport 5090 @th,16,16 set 5091")
    assert "udp dport 5090 udp dport set 5091" in target.sh("nft list table ip t")
    sent = h0.to_dut(dst=h1.ip, id=7) / UDP(sport=47000, dport=5090) / b"raw"
    checksum = sent.__class__(bytes(sent))[UDP].chksum
    forwarded(target, h0, h1, UDP(sport=47000, dport=5090) / b"raw",
              UDP(sport=47000, dport=5091, chksum=checksum) / b"raw")
