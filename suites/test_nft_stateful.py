"""nftables' stateful statements and objects on real frames: what each lets
through, and what `nft list` reads back of its state afterwards.

Cases: a quota (nft_quota.c: consumed bytes, this packet's included, reaching
the quota is over), a packet limit's burst (nft_limit.c's token bucket, far
too slow to refill within the test), `log` in front of a verdict (the verdict
still applies), named counter and quota objects shared by rules and chosen by
a map (nft_objref.c), and `nft reset`.
"""
from __future__ import annotations

import re

import pytest
from scapy.layers.inet import TCP, UDP

pytestmark = pytest.mark.requires("nftables")

FORWARD = """
table ip t {
    chain forward {
        type filter hook forward priority filter; policy accept;
%s
    }
}
"""


def _expect_forwarded(target, router, dport: int, forwarded: list[bool], size: int = 72) -> None:
    """Datagrams of 28 + size bytes from h0 to h1, one per entry of `forwarded`,
    sent one after the other (what left before stays queued); those marked True
    must leave to h1, no other."""
    h0, h1 = router[0], router[1]
    for i, passes in enumerate(forwarded):
        l4 = UDP(sport=40000 + i, dport=dport) / (b"q" * size)
        target.send(h0.port, h0.to_dut(dst=h1.ip, id=100 + i) / l4, flush=i == 0)
        if passes:
            target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=100 + i, ttl=63) / l4)
    target.expect_nothing()


# which sources of 10.0.0.2-9 `jhash ip saddr mod 2 seed 0xdeadbeef` puts in bucket 0 (True) on the netns lab
JHASH_BUCKET_0 = {"10.0.0.2": True, "10.0.0.3": True, "10.0.0.4": False, "10.0.0.5": False, "10.0.0.6": False,
                  "10.0.0.7": False, "10.0.0.8": True, "10.0.0.9": True}


def _rule_line(target, pattern: str) -> str:
    listing = target.sh("nft list table ip t")
    match = re.search(pattern, listing)
    assert match, listing
    return match.group(0)


def test_a_quota_forwards_until_its_bytes_are_consumed_and_lists_them_capped(target, router):
    """100-byte datagrams against `quota 200 bytes`: 100 is under, 200 is the
    quota itself and still under (nft_overquota(): consumed > quota), the
    third brings the consumed bytes to 300, over; `used` is listed capped at
    the quota."""
    target.sh("nft -f -", stdin=FORWARD % "        udp dport 5001 quota 200 bytes accept\n        udp dport 5001 drop")
    _expect_forwarded(target, router, 5001, [True, True, False, False])
    assert _rule_line(target, r"quota .*") == "quota 200 bytes used 200 bytes accept"


def test_quota_over_drops_once_past_the_quota(target, router):
    target.sh("nft -f -", stdin=FORWARD % "        udp dport 5002 quota over 200 bytes drop")
    _expect_forwarded(target, router, 5002, [True, True, False])


def test_a_packet_limit_lets_its_burst_through_then_breaks_the_rule(target, router):
    """`limit rate 1/minute burst 2 packets`: a bucket of two packets, one more
    a minute: of four back-to-back datagrams two match; the others fall through
    to the drop."""
    target.sh("nft -f -", stdin=FORWARD % "        udp dport 5003 limit rate 1/minute burst 2 packets accept\n"
                                          "        udp dport 5003 drop")
    _expect_forwarded(target, router, 5003, [True, True, False, False])


def test_limit_over_matches_once_the_burst_is_spent(target, router):
    target.sh("nft -f -", stdin=FORWARD % "        udp dport 5004 limit rate over 1/minute burst 1 packets drop")
    _expect_forwarded(target, router, 5004, [True, False, False])


def test_a_byte_limit_passes_a_rate_of_bytes_plus_its_burst(target, router):
    """`limit rate 1 kbytes/minute burst 200 bytes`: the bucket holds a minute's
    1024 bytes plus 200 (nft_limit_init(): unit * (rate + burst) / rate), so
    twelve 100-byte datagrams pass, the thirteenth does not."""
    target.sh("nft -f -", stdin=FORWARD % "        udp dport 5005 limit rate 1 kbytes/minute burst 200 bytes accept\n"
                                          "        udp dport 5005 drop")
    _expect_forwarded(target, router, 5005, [True] * 12 + [False])


def test_log_with_group_or_flags_leaves_the_verdict_to_the_rule(target, router):
    target.sh("nft -f -", stdin=FORWARD % "        udp dport 5006 log group 3 snaplen 64 drop\n"
                                          "        udp dport 5007 log prefix \"pj \" flags all accept\n"
                                          "        udp dport 5007 drop")
    _expect_forwarded(target, router, 5006, [False])
    _expect_forwarded(target, router, 5007, [True])


NAMED = """
table ip t {
    counter web { }
    counter dns { }
    quota shared { 200 bytes }
    chain forward {
        type filter hook forward priority filter; policy accept;
        udp dport 5010 counter name "dns"
        counter name udp dport map { 5010 : "dns", 5011 : "web" }
        udp dport { 5012, 5013 } quota name "shared" accept
        udp dport { 5012, 5013 } drop
    }
}
"""


def _counter(target, name: str) -> tuple[int, int]:
    line = _rule_line(target, rf"counter {name} {{\s+packets \d+ bytes \d+")
    packets, octets = re.findall(r"\d+", line.split("{")[1])
    return int(packets), int(octets)


def test_named_counters_count_every_rule_that_names_them_and_a_map_picks_one(target, router):
    """nft_objref: two rules name `dns`, a map names `dns` or `web` by port;
    `reset counters` lists them, then zeroes them."""
    target.sh("nft -f -", stdin=NAMED)
    _expect_forwarded(target, router, 5010, [True, True])
    _expect_forwarded(target, router, 5011, [True])
    _expect_forwarded(target, router, 5014, [True])  # in no map: the rule breaks, nothing counted
    assert (_counter(target, "dns"), _counter(target, "web")) == ((4, 400), (1, 100))
    assert "packets 4 bytes 400" in target.sh("nft reset counters table ip t")
    assert (_counter(target, "dns"), _counter(target, "web")) == ((0, 0), (0, 0))


def test_a_named_quota_is_shared_by_the_ports_that_use_it(target, router):
    target.sh("nft -f -", stdin=NAMED)
    _expect_forwarded(target, router, 5012, [True])
    _expect_forwarded(target, router, 5013, [True, False])
    assert "200 bytes used 200 bytes" in target.sh("nft list quotas")


def _expect_forwarded_from(target, router, sources: dict[str, bool], dport: int) -> None:
    """A datagram from each source address (h0's subnet) to h1; those marked True must leave to h1."""
    h0, h1 = router[0], router[1]
    for i, (src, passes) in enumerate(sources.items()):
        l4 = UDP(sport=41000 + i, dport=dport) / b"q"
        target.send(h0.port, h0.to_dut(src=src, dst=h1.ip, id=200 + i) / l4, flush=i == 0)
        if passes:
            target.expect(h1.port, h1.from_dut(src=src, dst=h1.ip, id=200 + i, ttl=63) / l4)
    target.expect_nothing()


def test_jhash_with_a_seed_picks_the_same_bucket_as_the_kernel(target, router):
    """nft_jhash_eval(): jhash() of the source address with seed 0xdeadbeef,
    reciprocal_scale()d to 2 buckets; bucket 1 is dropped. Which sources land
    in bucket 1 was read on the netns lab (6.18)."""
    target.sh("nft -f -", stdin=FORWARD % "        meta mark set jhash ip saddr mod 2 seed 0xdeadbeef\n"
                                          "        udp dport 5020 meta mark 1 drop")
    _expect_forwarded_from(target, router, JHASH_BUCKET_0, 5020)


def test_numgen_inc_counts_round_its_modulus_from_zero(target, router):
    target.sh("nft -f -", stdin=FORWARD % "        udp dport 5021 meta mark set numgen inc mod 3\n"
                                          "        udp dport 5021 meta mark 1 drop")
    _expect_forwarded(target, router, 5021, [True, False, True, True, False, True])


def test_ipsec_matches_break_on_packets_no_sa_decrypted_or_encrypts(target, router):
    """nft_xfrm: no secpath on the way in, no xfrm bundle on the route out:
    both break the rule, so the drop is never reached."""
    target.sh("nft -f -", stdin=FORWARD % "        udp dport 5022 ipsec in reqid 1 drop\n"
                                          "        udp dport 5022 ipsec out spi 0-0xffffffff drop\n"
                                          "        udp dport 5023 ipsec in spnum 1 ip saddr 10.0.0.0/8 drop")
    _expect_forwarded(target, router, 5022, [True])
    _expect_forwarded(target, router, 5023, [True])


@pytest.mark.requires("conntrack")
def test_osf_calls_every_syn_unknown_when_no_fingerprints_are_loaded(target, router):
    """nft_osf_eval(): a SYN with no fingerprint matching (none loaded: nfnetlink_osf
    is empty until `nfnl_osf -f pf.os`) is "unknown"; a packet without SYN breaks the rule."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=FORWARD % "        tcp dport 5030 osf name \"unknown\" drop\n"
                                          "        tcp dport 5031 osf name \"Linux\" drop")
    syn = TCP(sport=42000, dport=5030, flags="S", seq=1)
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=301) / syn)
    target.expect_nothing()
    for ident, segment in ((302, TCP(sport=42001, dport=5030, flags="A", seq=1, ack=1)),
                           (303, TCP(sport=42002, dport=5031, flags="S", seq=1))):
        target.send(h0.port, h0.to_dut(dst=h1.ip, id=ident) / segment)
        target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=ident, ttl=63) / segment)


SOCKETS = """
table ip t {
    counter any { }
    counter wildcard { }
    counter diverted { }
    chain prerouting {
        type filter hook prerouting priority mangle; policy accept;
        udp dport { 5040, 5041 } socket transparent 0 counter name "any"
        udp dport { 5040, 5041 } socket wildcard 1 counter name "wildcard"
        meta l4proto udp udp dport 5040 tproxy to :5040 counter name "diverted"
    }
}
"""


def test_socket_finds_the_bound_udp_socket_and_tproxy_wants_a_transparent_one(target, router):
    """nft_socket: a datagram to a bound port finds its socket (not transparent,
    bound to the port's address, so no wildcard), one to an unbound port finds
    none and breaks the rule; nft_tproxy: the socket is not IP_TRANSPARENT, so
    the packet is not assigned to it and the rule breaks before its counter."""
    h0 = router[0]
    sock = target.socket("udp", (h0.dut_ip, 5040))
    target.sh("nft -f -", stdin=SOCKETS)
    for ident, dport in ((401, 5040), (402, 5041)):
        target.send(h0.port, h0.to_dut(id=ident) / UDP(sport=43000, dport=dport) / b"q")
    assert sock.recv()[0] == b"q"
    assert [_counter(target, name)[0] for name in ("any", "wildcard", "diverted")] == [1, 0, 0]


def test_dup_sends_a_copy_to_its_gateway_and_the_original_goes_on(target, router):
    """nf_dup_ipv4(): in prerouting the copy has its TTL lowered by one and DF
    set, keeps its addresses and leaves to the gateway given (h2, out of p2);
    the original is forwarded to h1 as ever."""
    h0, h1, h2 = router
    target.sh("nft -f -", stdin="""
table ip t {
    chain prerouting {
        type filter hook prerouting priority mangle; policy accept;
        udp dport 5050 dup to %s
    }
}
""" % h2.ip)
    l4 = UDP(sport=44000, dport=5050) / b"dup me"
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=501) / l4)
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=501, ttl=63) / l4)
    target.expect(h2.port, h2.from_dut(src=h0.ip, dst=h1.ip, id=501, ttl=63, flags="DF") / l4)
    target.expect_nothing()


def test_dup_in_an_ip6_table_sends_a_copy_to_its_gateway_and_the_original_goes_on(target, router6):
    """nf_dup_ipv6(): in prerouting the copy has its hop limit lowered by one,
    keeps its addresses and leaves to the address given (h2, out of p2: no
    gateway on its route, so h2 is the next hop); the original is forwarded to
    h1 as ever. A map picks the address by the source: h1's source is not in
    it, so its datagram is not copied."""
    h0, h1, h2 = router6
    target.sh("nft -f -", stdin="""
table ip6 t {
    chain prerouting {
        type filter hook prerouting priority mangle; policy accept;
        udp dport 5051 dup to %s
        udp dport 5052 dup to ip6 saddr map { %s : %s }
    }
}
""" % (h2.ip6, h0.ip6, h2.ip6))
    for dport in (5051, 5052):
        l4 = UDP(sport=44000, dport=dport) / b"dup me"
        target.send(h0.port, h0.to_dut6(dst=h1.ip6) / l4)
        target.expect(h1.port, h1.from_dut6(src=h0.ip6, dst=h1.ip6, hlim=63) / l4)
        target.expect(h2.port, h2.from_dut6(src=h0.ip6, dst=h1.ip6, hlim=63) / l4)
    l4 = UDP(sport=44001, dport=5052) / b"not mapped"
    target.send(h1.port, h1.to_dut6(dst=h0.ip6) / l4)
    target.expect(h0.port, h0.from_dut6(src=h1.ip6, dst=h0.ip6, hlim=63) / l4)
    target.expect_nothing()


def test_a_meter_keeps_a_limit_and_a_counter_per_source(target, router):
    """`meter NAME { ip saddr STMT }`: nft_dynset's update into the meter's
    set; a new element gets its own copy of the statement, so each source
    has its own token bucket (two packets each, the third over the rate and
    dropped) and its own counter, listed by `nft list meter`."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=FORWARD % (
        "        udp dport 5070 meter seen { ip saddr counter }\n"
        "        udp dport 5070 meter persrc { ip saddr limit rate over 1/minute burst 2 packets } drop"))
    for i, src in enumerate(("10.0.0.2", "10.0.0.3")):
        for n in range(3):
            ident = 700 + 10 * i + n
            l4 = UDP(sport=45000, dport=5070) / (b"m" * 12)
            target.send(h0.port, h0.to_dut(src=src, dst=h1.ip, id=ident) / l4)
            if n < 2:
                target.expect(h1.port, h1.from_dut(src=src, dst=h1.ip, id=ident, ttl=63) / l4)
    target.expect_nothing()
    listing = target.sh("nft list meter ip t seen")
    assert "elements = { 10.0.0.2 counter packets 3 bytes 120, 10.0.0.3 counter packets 3 bytes 120 }" in listing, \
        listing
    assert "meter persrc size 65535 { ip saddr limit rate over 1/minute burst 2 packets } drop" in \
        target.sh("nft list table ip t")
