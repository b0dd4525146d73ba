"""nftables' stateful statements and objects on the mock (netfilter/nft_quota.py,
nft_exprs.py's counter, limit and log, nft_objects.py and the statements of
their own modules): listed and refused as nft 1.0.6 lists and refuses them
(answers recorded in tests/golden/nft/ by tests/golden/record_nft), and
evaluated on crafted packets as the kernel's nft_*_eval() do, with the
expected outcomes written out by hand."""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP

from harness.mockkernel.netfilter.core import NF_ACCEPT, NF_DROP, NF_INET_LOCAL_IN
from harness.mockkernel.target import sh
from test_nft import (FILTER_INPUT, _without_json_handles, chain_hops, hook, kernel, listing, packet,  # noqa: F401
                      real_tools)

CHAIN = "table %s t {\n\tchain c {\n\t\ttype filter hook input priority filter; policy accept;\n\t\t%s\n\t}\n}\n"

# statements as nft 1.0.6 takes them, and lists them back normalised
RULES = [
    "quota 1025 bytes", "quota over 2 kbytes", "quota until 1048576 bytes", "quota 10 mbytes used 1 mbytes",
    "quota over 3072 bytes used 1024 bytes", "quota 1023000 mbytes",
    "limit rate 1 kbytes / second", "limit rate 2048 bytes/second burst 1024 bytes", "limit rate over 5/minute",
    "limit rate 10/second burst 5 packets", "limit rate 1025 mbytes/second burst 1025 kbytes",
    "counter bytes 1024 packets 1", "counter packets 2 bytes 3 packets 4",
    "log group 2 snaplen 33 queue-threshold 4", "log prefix \"x\" group 0", "log flags all",
    "log level debug flags ip options flags skuid", "log flags tcp sequence,options flags ether",
    "log flags tcp options,sequence", "log level audit", "log level warn",
    "ipsec in reqid 1", "ipsec in spnum 0 reqid 0xffffffff", "ipsec in spnum 3 ip6 saddr dead::beef",
    "ipsec in ip saddr { 1.2.3.4, 10.6.0.0/16 }", "ipsec in spi 1-561 counter",
    "osf name \"Linux\"", "osf ttl loose version \"Linux:3.0\"", "osf name { \"Windows\", \"MacOs\" }",
    "ct mark set osf name map { \"Windows\" : 1, \"MacOs\" : 2 }", "meta mark set numgen inc mod 2",
    "meta mark set numgen random mod 10 offset 5", "ct mark set jhash ip saddr . tcp dport mod 4 seed 0x1 offset 3",
    "meta mark set jhash ip saddr mod 2", "meta mark set symhash mod 3", "meta mark set symhash mod 3 offset 7",
]


@pytest.mark.parametrize("family, rule", [("ip", r) for r in RULES] + [("inet", "quota over 1 kbytes used 1 bytes")])
def test_a_stateful_statement_lists_back_as_real_nft_lists_it(family, rule, real_tools):
    steps = [(["nft", "-f", "-"], CHAIN % (family, rule)), (["nft", "-a", "list", "ruleset"], None),
             (["nft", "-s", "list", "ruleset"], None), (["nft", "-j", "list", "ruleset"], None)]
    real_tools.assert_same_as_real(steps, _without_json_handles)


PREROUTING = CHAIN.replace("hook input", "hook prerouting")
# in a prerouting chain (tproxy takes no other hook), in each family: accepted or refused as nft 1.0.6 does
PREROUTING_RULES = [
    "meta l4proto udp tproxy to 192.0.2.1", "meta l4proto tcp tproxy ip to 192.0.2.1:50080",
    "ip protocol 6 tproxy to :50080", "meta l4proto tcp tproxy ip6 to [2001:db8::1]",
    "meta l4proto udp tproxy ip6 to [2001:db8::1]:80", "tproxy to :1", "meta l4proto tcp tproxy to 2001:db8::1",
    "socket transparent 1", "socket mark 0x5 accept", "socket wildcard 0", "socket transparent 2",
    "osf name \"Linux\"",
]


@pytest.mark.parametrize("family", ["ip", "ip6", "inet"])
def test_prerouting_statements_list_back_or_are_refused_as_real_nft_does(family, real_tools):
    steps = [(["nft", "-f", "-"], PREROUTING % (family, "accept"))]
    steps += [(["nft", "add", "rule", family, "t", "c", *rule.split()], None) for rule in PREROUTING_RULES]
    steps += [(["nft", "-a", "list", "ruleset"], None), (["nft", "-j", "list", "ruleset"], None)]
    real_tools.assert_same_as_real(steps, _without_json_handles)


def test_dup_in_an_ip_table_lists_back_as_real_nft_lists_it(real_tools):
    steps = [(["nft", "-f", "-"], CHAIN % ("ip", "accept"))]
    steps += [(["nft", "add", "rule", "ip", "t", "c", *rule.split()], None) for rule in (
        "dup to 192.168.2.1", "dup to 192.168.2.1 device lo", "dup to ip saddr map { 192.168.2.120 : 192.168.2.1 } device lo",
        "udp dport 9 dup to 10.0.0.1 counter")]
    steps += [(["nft", "-a", "list", "ruleset"], None), (["nft", "-j", "list", "ruleset"], None)]
    real_tools.assert_same_as_real(steps, _without_json_handles)


def test_dup_in_an_ip6_table_lists_back_and_inet_refuses_it_as_real_nft_does(real_tools):
    """nft_dup_ipv6: an IPv6 address (or a map giving one) and a device; in an
    inet table stmt_evaluate_dup() says "unsupported family"."""
    steps = [(["nft", "-f", "-"], CHAIN % ("ip6", "accept") + CHAIN % ("inet", "accept"))]
    steps += [(["nft", "add", "rule", "ip6", "t", "c", *rule.split()], None) for rule in (
        "dup to abcd::1", "dup to abcd::1 device lo", "dup to ip6 saddr map { abcd::1 : cafe::cafe } device lo",
        "udp dport 9 dup to 2001:db8::1 counter", "dup to 10.0.0.1")]
    steps += [(["nft", "add", "rule", "inet", "t", "c", *rule.split()], None) for rule in (
        "dup to abcd::1", "dup to 10.0.0.1 device lo")]
    steps += [(["nft", "-a", "list", "ruleset"], None), (["nft", "-j", "list", "ruleset"], None)]
    real_tools.assert_same_as_real(steps, _without_json_handles)


METERS = [
    "meter xyz size 8192 { ip saddr timeout 30s counter}", "meter m2 { ip saddr . tcp dport limit rate 10/second }",
    "tcp dport 22 meter m3 size 10 { ip saddr limit rate over 1/minute } drop", "meter m4 size 0 { ip saddr quota 10 bytes }",
    "meter m5 { ip saddr ct count 2 }", "meter m6 { ip saddr . tcp dport timeout 1m limit rate 1/second burst 3 packets }",
    "flow table m7 { ip saddr counter }", "meter m8 { ip saddr log }", "meter m9 { ip saddr comment \"x\" counter }",
    "meter m3 { ip saddr counter }", "meter s { ip saddr counter }", "meter m10 { 1.2.3.4 counter }",
    "meter m11 { iif . ip saddr timeout 600s counter }",
]


def test_meters_list_back_or_are_refused_as_real_nft_does(real_tools):
    """stmt_evaluate_meter(): a set of the meter's name (NFT_SET_EVAL, and
    NFT_SET_TIMEOUT with a timeout) that `list ruleset` leaves out and
    `list meters` shows; a stateful statement only; a name in use is the
    kernel's EOPNOTSUPP/EBUSY (another meter's) or EEXIST/EINVAL (a set's)."""
    steps = [(["nft", "-f", "-"], CHAIN % ("ip", "accept")), (["nft", "add", "set", "ip", "t", "s", "{ type ipv4_addr; }"], None)]
    steps += [(["nft", "add", "rule", "ip", "t", "c", *rule.split()], None) for rule in METERS]
    steps += [(["nft", "add", "rule", "ip6", "t", "c", *rule.split()], None) for rule in (
        "meter acct_out size 4096 { meta iif . ip6 saddr timeout 600s counter }",
        "meter acct_in size 12345 { ip6 saddr . meta iif timeout 600s counter }")]
    steps += [(["nft", "-a", "list", "ruleset"], None), (["nft", "-j", "list", "ruleset"], None),
              (["nft", "list", "meters"], None), (["nft", "-j", "list", "meters"], None),
              (["nft", "list", "meter", "ip", "t", "m6"], None), (["nft", "list", "meter", "ip", "t", "s"], None),
              (["nft", "list", "set", "ip", "t", "xyz"], None)]
    real_tools.assert_same_as_real([(["nft", "-f", "-"], CHAIN % ("ip6", "accept"))] + steps, _without_json_handles)


# what nft 1.0.6 (or the kernel, "Could not process rule") refuses
REFUSED = [
    "quota 1 foo", "quota over", "log level audit prefix \"x\"", "log level audit flags all",
    "log group 1 level info", "log group 1 flags all", "log flags tcp", "log flags ip", "log flags foo",
    "limit rate 1023000 mbytes/second", "limit rate over 1025000 mbytes/second burst 1023 mbytes",
    "limit rate 1 foo / second", "limit rate 0/second", "counter packets", "counter bytes foo",
    "ipsec out reqid 1", "ipsec in spnum 256 reqid 1", "ipsec in ip foo 1", "osf ttl foo name \"x\"",
    "meta mark set numgen inc", "meta mark set jhash mod 2",
]


# bison reads a whole rule before nft evaluates it: a syntax error after an evaluation error wins
PARSED_BEFORE_EVALUATED = [
    "ipsec out spnum 0x100000000", "ipsec out spnum 0xffffffff", "ipsec i reqid 1", "ipsec foo reqid 1",
    "ipsec out foo", "ipsec in spnum 256 reqid 1", "ipsec exists", "ipsec missing counter", "ipsec 1",
    "foo tcp dport 22", "foo bar", "foo bar baz", "foo ip saddr vmap { 1.2.3.4 : drop }",
    "foo tcp dport 22 counter", "ct bytes original", "ct bytes original reply", "ct bytes 1 2",
    "filter-input ip6 saddr vmap { 1234:1234:1234:1234:1234:1234:bbbb:::accept::adda : drop}",
]


def test_a_rule_is_parsed_whole_before_it_is_evaluated_as_real_nft_does(real_tools):
    """A bare `ipsec` not followed by in|out is `meta ipsec` (meta_key_unqualified);
    `ipsec out spnum N` lacks its key whatever N; a bare symbol or a value nft
    cannot read ends its statement, and what follows is parsed on."""
    steps = [(["nft", "-f", "-"], CHAIN % ("inet", "accept"))]
    steps += [(["nft", "add", "rule", "inet", "t", "c", *rule.split()], None) for rule in PARSED_BEFORE_EVALUATED]
    real_tools.assert_same_as_real(steps + [(["nft", "list", "ruleset"], None), (["nft", "-j", "list", "ruleset"], None)],
                                   _without_json_handles)


def test_stateful_statements_real_nft_refuses_are_refused_with_its_message(real_tools):
    steps = [(["nft", "-f", "-"], CHAIN % ("ip", "accept"))]
    steps += [(["nft", "add", "rule", "ip", "t", "c", *rule.split()], None) for rule in REFUSED]
    real_tools.assert_same_as_real(steps + [(["nft", "list", "ruleset"], None)])


OBJECTS = """table %s t {
\tcounter c1 { packets 3 bytes 4 }
\tquota q1 { over 25 mbytes used 1 kbytes }
\tquota q2 { 1048576 bytes }
\tlimit l1 { rate over 1024 bytes/second burst 512 bytes }
\tlimit l2 { rate 400/minute }
\tct helper h1 { type "ftp" protocol tcp; }
\tct timeout t1 { protocol tcp; policy = { established:122, close:16, syn_sent:120 } ; l3proto ip ;}
\tct timeout t2 { protocol udp; policy = { replied:14, unreplied:19 }; }
\tct expectation e1 { protocol tcp; dport 1234; timeout 2m; size 12; l3proto ip; }
\tsynproxy s1 { mss 1460; wscale 7; timestamp sack-perm }
\tsynproxy s2 { mss 1400; wscale 5; }
\tchain c { type filter hook output priority 0;
\t\tcounter name "c1"
\t\tcounter name tcp dport map { 443 : "c1", 80 : "c2", 22 : "c1" }
\t\tip saddr 1.1.1.1 quota name "q1"
\t\tlimit name "l1"
\t\tct helper set "h1"
\t\tct helper set tcp dport map { 21 : "h1", 2121 : "h1" }
\t\tct timeout set "t1"
\t\tct expectation set "e1"
\t}
\tcounter c2 { }
\tchain i { type filter hook input priority 0; synproxy name tcp dport map { 443 : "s1", 80 : "s2" }; }
}
"""


@pytest.mark.parametrize("family", ["ip", "inet"])
def test_stateful_objects_list_back_as_real_nft_lists_them(family, real_tools):
    """Objects come before sets and chains, take handles after the chains of
    their table block; `list counters|quotas|limits|synproxys`, `list counter`,
    `reset counters|quotas` (listed, then zeroed) and `delete` of one in use."""
    steps = [(["nft", "-f", "-"], OBJECTS % family), (["nft", "-a", "list", "ruleset"], None),
             (["nft", "-s", "list", "ruleset"], None), (["nft", "-j", "list", "ruleset"], None),
             (["nft", "-s", "-j", "list", "ruleset"], None)]
    steps += [(["nft", *cmd.split()], None) for cmd in (
        "list counters", "list quotas", "list limits", "list synproxys", f"list counters table {family} t",
        f"list counter {family} t c1", "reset counters", "reset quotas", "list counters", "list quotas",
        f"delete counter {family} t c1", f"delete counter {family} t nosuch", f"list counter {family} t nosuch",
        f"add quota {family} t q3 until 2 kbytes used 1 kbytes", f"add limit {family} t l3 rate 1/second",
        f"add counter {family} t c3 packets 1 bytes 2", f"create counter {family} t c3",
        f"delete limit {family} t l3", f"add rule {family} t c counter name c3",
        f"add rule {family} t c quota name \"nosuch\"", f"add rule {family} t c synproxy name \"s1\"",
        f"list ruleset")]
    real_tools.assert_same_as_real(steps, _without_json_handles)


OBJECTS_REFUSED = [
    "add ct helper ip t h2 { type \"ftp\" protocol tcp; l3proto ip6; }",
    "add ct timeout ip t t3 { protocol udp; policy = { syn_sent:122 } ;}",
    "add ct timeout ip t t4 {protocol tcp; policy = { estalbished:100 } ;}",
    "add ct expectation ip t e2 { protocol udp; }", "add synproxy ip t s2 wscale 5 mss 1400", "add ct expectation ip t e3 { protocol tcp; dport 4321; timeout 2m; }",
    "add quota ip t q foo bytes", "add limit ip t l rate 1023000 mbytes/second", "add synproxy ip t s3 { mss 1400; wscale 5 ; timestamp }",
    "add rule ip t c counter name \"nosuch\"",
]


def test_stateful_objects_real_nft_refuses_are_refused_with_its_message(real_tools):
    steps = [(["nft", "-f", "-"], CHAIN % ("ip", "accept"))]
    steps += [(["nft", cmd], None) for cmd in OBJECTS_REFUSED]
    real_tools.assert_same_as_real(steps + [(["nft", "list", "ruleset"], None)])


# ------------------------------------------------------------------ on crafted packets

def _passes(k, count: int, size: int = 0) -> list[bool]:
    """Whether each of `count` UDP datagrams of 28 + size bytes gets through the input chain."""
    return [hook(k, packet(k, IP(dst="10.0.0.1") / UDP() / (b"x" * size)), NF_INET_LOCAL_IN) == NF_ACCEPT
            for _ in range(count)]


def test_quota_passes_until_the_consumed_bytes_reach_it_then_over_takes_over():
    """nft_overquota(): consumed (this packet included) > quota is over; 100-byte
    datagrams against 200 bytes: the 1st and 2nd are under (100, 200: the
    quota reached, not passed), the 3rd is at 300 and over."""
    k = kernel(FILTER_INPUT.replace("accept;", "drop;") % "\t\tquota 200 bytes accept")
    assert _passes(k, 4, size=72) == [True, True, False, False]
    k = kernel(FILTER_INPUT.replace("accept;", "drop;") % "\t\tquota over 200 bytes accept")
    assert _passes(k, 4, size=72) == [False, False, True, True]


def test_quota_lists_what_it_consumed_capped_at_the_quota():
    """nft_quota_do_dump(): 1028 bytes used of 2 kbytes, then 2056 shown as the quota's 2048."""
    k = kernel(FILTER_INPUT % "\t\tquota 2 kbytes")
    _passes(k, 1, size=1000)
    assert "quota 2 kbytes used 1028 bytes" in listing(k)
    assert "\t\tquota 2 kbytes\n" in listing(k, "-s")
    _passes(k, 1, size=1000)
    assert "quota 2 kbytes used 2 kbytes" in listing(k)


def test_rules_naming_one_counter_object_count_into_it_and_a_map_picks_the_object():
    """nft_objref_eval(): the object's own eval; nft_objref_map_eval(): the name
    the map gives, a miss breaks the rule (its verdict is not reached)."""
    k = kernel("table ip filter {\n\tcounter a { }\n\tcounter b { }\n"
               "\tchain input { type filter hook input priority filter; policy accept;\n"
               "\t\tcounter name \"a\"\n\t\tudp dport 9 counter name \"a\"\n"
               "\t\tcounter name udp dport map { 9 : \"b\", 10 : \"a\" } accept\n\t\tdrop\n\t}\n}\n")
    verdicts = [hook(k, packet(k, IP(dst="10.0.0.1") / UDP(dport=dport) / b"abcd"), NF_INET_LOCAL_IN)
                for dport in (9, 10, 11)]
    assert verdicts == [NF_ACCEPT, NF_ACCEPT, NF_DROP]
    listed = sh(k, ["nft", "list", "counters"])
    assert "counter a {\n\t\tpackets 5 bytes 160\n" in listed  # 3 + 1 (rule 2, port 9) + 1 (the map, port 10)
    assert "counter b {\n\t\tpackets 1 bytes 32\n" in listed


def test_a_quota_object_is_shared_by_the_rules_that_name_it():
    k = kernel("table ip filter {\n\tquota q { 200 bytes }\n"
               "\tchain input { type filter hook input priority filter; policy drop;\n"
               "\t\tudp dport 1 quota name \"q\" accept\n\t\tudp dport 2 quota name \"q\" accept\n\t}\n}\n")
    passed = [hook(k, packet(k, IP(dst="10.0.0.1") / UDP(dport=dport) / (b"x" * 72)), NF_INET_LOCAL_IN) == NF_ACCEPT
              for dport in (1, 2, 1)]
    assert passed == [True, True, False]
    assert "quota q {\n\t\t200 bytes used 200 bytes\n" in sh(k, ["nft", "list", "quotas"])
    sh(k, ["nft", "reset", "quotas"])
    assert hook(k, packet(k, IP(dst="10.0.0.1") / UDP(dport=2) / (b"x" * 72)), NF_INET_LOCAL_IN) == NF_ACCEPT



def test_a_meter_counts_each_source_apart_and_forgets_it_after_its_timeout():
    """nft_dynset_eval() with NFT_DYNSET_OP_UPDATE: a new key gets a clone of
    the counter, a known one runs its own and has its timeout refreshed; an
    expired element is gone, so the source starts a new counter."""
    k = kernel(FILTER_INPUT % "\t\tmeter per_src { ip saddr timeout 10s counter }")
    for src in ("10.0.0.2", "10.0.0.3", "10.0.0.2"):
        assert hook(k, packet(k, IP(src=src, dst="10.0.0.1") / UDP(dport=9) / (b"x" * 12)), NF_INET_LOCAL_IN) \
            == NF_ACCEPT
    assert "elements = { 10.0.0.2 counter packets 2 bytes 80 timeout 10s expires 10s, " \
           "10.0.0.3 counter packets 1 bytes 40 timeout 10s expires 10s }" in sh(k, ["nft", "list", "meters"])
    k.clock.advance(11)
    hook(k, packet(k, IP(src="10.0.0.2", dst="10.0.0.1") / UDP(dport=9) / (b"x" * 12)), NF_INET_LOCAL_IN)
    assert "elements = { 10.0.0.2 counter packets 1 bytes 40 timeout 10s expires 10s }" in \
        sh(k, ["nft", "list", "meters"])  # nft_rhash_walk(): an expired element is not listed


def test_a_full_meter_breaks_the_rule_for_a_new_key():
    """nft_dynset_eval(): no room for the new element (size 1) is NFT_BREAK: the
    rule's drop does not apply to the second source."""
    k = kernel(FILTER_INPUT % "\t\tmeter one size 1 { ip saddr counter } drop")
    verdicts = [hook(k, packet(k, IP(src=src, dst="10.0.0.1") / UDP(dport=9)), NF_INET_LOCAL_IN)
                for src in ("10.0.0.2", "10.0.0.3")]
    assert verdicts == [NF_DROP, NF_ACCEPT]
