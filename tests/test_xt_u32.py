"""-m u32 on the mock (netfilter/xt_u32.py): libxt_u32.c's parse and its
messages (as iptables-nft 1.8.9 printed them in a network namespace of this
machine), u32_dump()'s save, and xt_u32.c u32_match_it() on crafted bytes,
each value worked out by hand."""
from __future__ import annotations

import pytest
from scapy.layers.inet import UDP

from harness.mockkernel.netfilter.xt_u32 import u32_match_it, u32_parse
from harness.mockkernel.target import MockTarget

PREFIX = "iptables v1.8.9 (nf_tables): "


@pytest.mark.parametrize("tests, message", [
    ("0=", "u32: test ended with no value specified"),
    ("=1", "u32: at char 0: location spec missing"),
    ("0", "u32: abrupt end of input after location specifier"),
    ("0<1=1", "u32: at char 2: a second '<' was expected"),
    ("0%1=1", "u32: at char 1: operator expected"),
    ("0=1&2", "u32: at char 4: a second '&' was expected"),
    ("0=1;2", 'u32: at char 3: expected "," or "&&"'),
    ("0=-1", "u32: at char 2: not a number or out of range"),
    ("0=0x100000000", "u32: at char 2: not a number or out of range"),
    ("0=1,2,3,4,5,6,7,8,9,10,11", 'u32: at char 25: too many ","s'),
    ("0&1&1&1&1&1&1&1&1&1&1=1", "u32: at char 21: too many operators"),
    ("&&".join(["0=1"] * 11), 'u32: at char 53: too many "&&"s'),
    ("09=1", "u32: at char 1: operator expected"),
])
def test_a_malformed_test_is_refused_with_libxt_u32s_message_naming_the_character(refusal, tests, message):
    assert refusal(MockTarget(), f"iptables -A INPUT -m u32 --u32 '{tests}'").splitlines()[0] == PREFIX + message


def test_u32_without_its_option_is_refused(refusal):
    assert refusal(MockTarget(), "iptables -A INPUT -m u32").splitlines()[0] == \
        PREFIX + 'u32: option "--u32" must be specified'


def test_numbers_are_read_as_strtoumax_reads_them_and_saved_in_hex():
    """Spaces around each number, `+`, 0x hex and 0 octal; a range of equal
    ends is saved as one number, an inversion before --u32."""
    target = MockTarget()
    target.sh("iptables -A INPUT -m u32 ! --u32 ' +0x10 = 010 : 9 , 7&&0>>22&0x3C@4=0x50'")
    assert "-A INPUT -m u32 ! --u32 \"0x10=0x8:0x9,0x7&&0x0>>0x16&0x3c@0x4=0x50\"" in target.sh("iptables-save")


def _packet() -> bytes:
    """An IPv4 header of 24 bytes (IHL 6: one option word), then 8 bytes."""
    return bytes([0x46, 0, 0, 32, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 2, 10, 0, 1, 2, 1, 1, 0, 0,
                  0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE, 0xF0])


@pytest.mark.parametrize("tests, matches", [
    ("0>>24=0x46", True),  # the first byte: version and IHL
    ("6&0xFF=17", True),  # the protocol
    ("0>>22&0x3C@0=0x12345678", True),  # past the 24-byte header (IHL * 4) by @
    ("0>>22&0x3C@4=0x9ABCDEF0", True),
    ("0>>22&0x3C@8=0:0xFFFFFFFF", False),  # a read past the end fails the whole match
    ("28=0x9ABCDEF0", True),  # the last whole word
    ("29=0:0xFFFFFFFF", False),
    ("24<<4=0x23456780", True),  # the shift keeps 32 bits
    ("24>>32=0x12345678", True),  # a count of 32 is x86's shift by 0
    ("6&0xFF=6,17&&0>>24=0x45", False),  # every test must hold
    ("6&0xFF=1:5,16:18", True),  # any of the ranges
])
def test_u32_match_it_reads_big_endian_words_from_the_ip_header(tests, matches):
    data = b"\0" * 14 + _packet()
    assert u32_match_it(u32_parse(tests), data, 14, len(data)) is matches


def test_a_u32_drop_shows_in_the_journey_as_nft_lists_the_rule(mock_router):
    target, hosts = mock_router
    target.sh("iptables -A FORWARD -m u32 --u32 '6&0xFF=17' -j DROP")
    target.send(hosts[0].port, hosts[0].to_dut(dst=hosts[1].ip) / UDP(sport=1, dport=2))
    journey = target.journeys()[-1]
    assert [str(h) for h in journey.hops if h.stage == "NF_FORWARD"] == [
        "NF_FORWARD[ip filter FORWARD] -> DROP (rule 2: xt match u32 counter drop)"]
    assert (journey.drop.reason, journey.drop.stage) == ("NETFILTER_DROP", "NF_FORWARD")
