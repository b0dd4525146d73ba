"""nft's expression machinery on the mock: bitwise operations (nft_bitwise.py),
conntrack keys (nft_exprs.Ct), sets' element order, dynamic sets and
concatenated intervals (nft_set.py, nft_dynset.py). Listings are pinned to what
nft 1.0.6 answers (tests/golden/nft/, recorded by tests/golden/record_nft); the
datapath runs on crafted packets with expected values written out by hand."""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from harness.mockkernel.kernel import Kernel
from harness.mockkernel.netfilter import nf_tables
from harness.mockkernel.netfilter.core import NF_ACCEPT, NF_DROP, NF_INET_LOCAL_IN
from harness.mockkernel.target import sh
from harness.target import CommandError
from harness.mockkernel.netfilter.nf_conntrack import IP_CT_NEW, NfConn, Tuple
from test_nft import _without_json_handles, hook, kernel, packet, real_tools  # noqa: F401  (a fixture, by name)

CHAIN = "table %s t {\n\tchain c {\n\t\ttype filter hook input priority filter; policy accept;\n\t\t%s\n\t}\n}\n"


def _listed_as_real(family: str, rule: str, real_tools) -> None:
    steps = [(["nft", "-f", "-"], CHAIN % (family, rule)), (["nft", "-a", "list", "ruleset"], None),
             (["nft", "-j", "list", "ruleset"], None)]
    real_tools.assert_same_as_real(steps, _without_json_handles)


# ------------------------------------------------------------------ bitwise

BITWISE_RULES = [
    "ct mark or 0x23 == 0x11",
    "ct mark xor 0x3 != 0x1",  # binop_transfer(): the xor moves to the value
    "ct mark and 0x23 == 0x11",
    "meta mark set meta mark or 0x10",
    "ct mark set ct mark and 0xff",
    "ct mark set ct mark & 0xff | 0x3 ^ 0x1",  # `|` binds loosest: 3 ^ 1 is folded first
    "ct mark set ct mark or 0x1 xor 0x3",
    "ct mark set meta mark xor 0xff00 and 0xffff",
    "ct mark set 0x11 xor 0x1331",
    "meta mark set 0xffffffe9 or 0x16",
    "ct mark set (meta mark | 0x10) << 8",
    "meta mark set ct mark >> 8",
    "meta mark set ip saddr and 255.255.0.0 map { 10.1.0.0 : 0x2a, 10.2.0.0 : 0x17 }",
]


@pytest.mark.parametrize("rule", BITWISE_RULES)
def test_bitwise_operations_list_back_as_real_nft_folds_and_prints_them(rule, real_tools):
    _listed_as_real("ip", rule, real_tools)


def _marks(rules: str, mark: int, ct_mark: int | None = None) -> tuple[int, int | None, int]:
    """(skb mark, ct mark, verdict) after the input chain ran on a UDP packet."""
    k = kernel(CHAIN % ("ip", rules))
    skb = packet(k, IP(src="10.1.2.3", dst="10.0.0.1") / UDP(dport=53))
    skb.mark = mark
    if ct_mark is not None:
        skb.nfct, skb.ctinfo = NfConn(Tuple(0, 0, 17, 0, 0), Tuple(0, 0, 17, 0, 0)), IP_CT_NEW
        skb.nfct.mark = ct_mark
    verdict = hook(k, skb, NF_INET_LOCAL_IN)
    return skb.mark, skb.nfct.mark if ct_mark is not None else None, verdict


@pytest.mark.parametrize("rules, mark, ct_mark, expected", [
    ("meta mark set meta mark or 0x10", 0x101, None, (0x111, None, NF_ACCEPT)),
    ("meta mark set meta mark and 0xff", 0x1234, None, (0x34, None, NF_ACCEPT)),
    ("meta mark set meta mark xor 0xff", 0x1234, None, (0x12CB, None, NF_ACCEPT)),
    ("ct mark set meta mark & 0xff | 0x3 ^ 0x1", 0x1234, 0, (0x1234, 0x36, NF_ACCEPT)),
    ("ct mark set (meta mark | 0x10) << 8", 0x01000001, 0, (0x01000001, 0x1100, NF_ACCEPT)),
    ("meta mark set ct mark >> 8", 0, 0xABCD, (0xAB, 0xABCD, NF_ACCEPT)),
    ("ct mark or 0x23 == 0x33 drop", 0, 0x10, (0, 0x10, NF_DROP)),
    ("ct mark or 0x23 == 0x33 drop", 0, 0x04, (0, 0x04, NF_ACCEPT)),
    ("ct mark xor 0x3 == 0x1 drop", 0, 0x2, (0, 0x2, NF_DROP)),
    ("ct mark xor 0x3 != 0x1 drop", 0, 0x2, (0, 0x2, NF_ACCEPT)),
    ("meta mark set ip saddr and 255.255.0.0 map { 10.1.0.0 : 0x2a, 10.2.0.0 : 0x17 }", 0, None,
     (0x2A, None, NF_ACCEPT)),
])
def test_bitwise_operations_compute_what_nft_bitwise_computes(rules, mark, ct_mark, expected):
    assert _marks(rules, mark, ct_mark) == expected


# ------------------------------------------------------------------ conntrack keys

CT_RULES = [
    ("ip", "ct expiration 1m-1h"), ("ip", "ct expiration != 233"), ("ip", "ct expiration { 33, 55, 67, 88 }"),
    ("ip", "ct expiration 30000ms"), ("ip", 'ct helper "ftp"'), ("ip", "ct l3proto ipv4"),
    ("ip", "ct original protocol 17 ct reply proto-src 53"), ("ip", "ct original bytes > 100000"),
    ("ip", "ct reply packets < 100"), ("ip", "ct avgpkt > 200"), ("ip", "ct original zone 1"), ("ip", "ct id 12345"),
    ("ip", "ct label 127"), ("ip", "ct label set 127"), ("ip", "ct event set new | related | destroy | label"),
    ("ip", "ct event set 0x0"), ("ip", "ct reply zone set 1"), ("ip", "ct zone set mark map { 1 : 1, 2 : 2 }"),
    ("ip", "ct count over 3"), ("ip", "ct state . ct mark { new . 0x12345678, new . 0x34127856, established . 0x12785634 }"),
    ("ip", "meta mark set ct original daddr map { 1.1.1.1 : 0x11 }"),
    ("ip", "ct original saddr 1.2.3.4"), ("ip", "ct label 128"), ('ip', 'ct helper "12345678901234567"'),
    ("ip", "ct zone set { 1, 2 }"), ("ip6", "ct original ip6 saddr . meta mark { ::1 . 1 }"),
]


@pytest.mark.parametrize("family, rule", CT_RULES)
def test_conntrack_keys_list_back_or_fail_as_real_nft(family, rule, real_tools):
    _listed_as_real(family, rule, real_tools)


def _flow(k: Kernel, sport: int, count: int = 1, size: int = 0) -> None:
    """`count` UDP packets of one flow from 10.0.0.2 to the DUT's 10.0.0.1, into p0."""
    mac = k.dev_by_name("p0").mac
    frame = bytes(Ether(dst=mac) / IP(src="10.0.0.2", dst="10.0.0.1") / UDP(sport=sport, dport=53) / bytes(size))
    k.receive("p0", [frame] * count)


def _routed_kernel(rules: str, raw: str = "") -> Kernel:
    k = kernel(CHAIN % ("ip", rules) + "table ip raw {\n\tchain pre {\n\t\ttype filter hook prerouting priority raw;"
               f"\n\t\t{raw}\n\t}}\n}}\n")
    sh(k, ["ip", "addr", "add", "10.0.0.1/24", "dev", "p0"])
    return k


def _counts(k: Kernel) -> list[int]:
    return [c.packets for c in nf_tables.counters(k)]


def test_ct_packets_bytes_and_avgpkt_read_the_accounting_a_rule_turns_on():
    """nft_ct_get_init() calls nf_ct_set_acct(): the flow's entry counts its
    packets (IP length 28 + 72 bytes of payload = 100 bytes each)."""
    k = _routed_kernel("ct packets 1 counter\n\t\tct original packets 3 counter\n\t\tct reply packets 0 counter\n"
                       "\t\tct bytes 300 counter\n\t\tct avgpkt 100 counter")
    _flow(k, 1000, count=3, size=72)
    assert _counts(k) == [1, 1, 3, 1, 3]


def test_ct_expiration_counts_down_the_entry_timeout_in_virtual_time():
    """UDP's unreplied timeout is 30 s (nf_conntrack_udp_timeout)."""
    k = _routed_kernel("ct expiration 30s counter\n\t\tct expiration < 20s counter")
    _flow(k, 1000)
    k.advance(15)
    _flow(k, 1000)
    assert _counts(k) == [2, 0]


def test_ct_zone_set_before_conntrack_makes_the_entry_in_that_zone():
    k = _routed_kernel("ct zone 3 counter\n\t\tct zone 0 counter\n\t\tct original zone 3 counter", raw="udp sport 1000 ct zone set 3")
    _flow(k, 1000)
    _flow(k, 1001)
    assert _counts(k) == [1, 1, 1]


def test_ct_label_set_sets_a_bit_the_next_packet_matches():
    k = _routed_kernel("ct label 5 counter\n\t\tct label set 5\n\t\tct label 5 counter")
    _flow(k, 1000, count=2)
    assert _counts(k) == [1, 2]


def test_ct_count_counts_the_connections_the_rule_saw_that_still_exist():
    k = _routed_kernel("ct count over 2 counter drop\n\t\tcounter")
    for sport in (1000, 1001, 1002, 1000):
        _flow(k, sport)
    assert _counts(k) == [1, 3]


def test_ct_l3proto_protocol_and_ports_read_the_tuples():
    k = _routed_kernel("ct l3proto ipv4 ct protocol udp ct original proto-dst 53 ct reply proto-dst 1000 counter\n"
                       "\t\tct l3proto ipv6 counter\n\t\tct helper \"ftp\" counter")
    _flow(k, 1000)
    assert _counts(k) == [1, 0, 0]


# ------------------------------------------------------------------ dynamic sets

DYNSETS = """table ip t {
\tset d { type ipv4_addr; flags dynamic,timeout; timeout 1m; }
\tset pairs { type ipv4_addr . ipv4_addr; }
\tset small { type ipv4_addr; size 3; }
\tset ports { type inet_service; }
\tchain c {
\t\ttype filter hook input priority filter; policy accept;
\t\t%s
\t}
}
"""


@pytest.mark.parametrize("rule", [
    "update @d { ip saddr timeout 10s }", "add @d { ip saddr }", "delete @d { ip saddr }",
    "add @pairs { ip saddr . ip daddr }", "add @small { ip saddr }", "add @ports { udp dport }",
    "add @nosuch { ip saddr }",
])
def test_set_statements_list_back_or_fail_as_real_nft(rule, real_tools):
    """nft_dynset_init(): a set without `flags dynamic` whose backend has no
    update (the fast hash of a 4-byte key of known size, the bitmap of a
    2-byte key) is EOPNOTSUPP."""
    steps = [(["nft", "-f", "-"], DYNSETS % rule), (["nft", "-a", "list", "ruleset"], None),
             (["nft", "-j", "list", "ruleset"], None)]
    real_tools.assert_same_as_real(steps, _without_json_handles)


@pytest.mark.parametrize("command", [
    "add set ip t s { type ipv4_addr; flags interval, dynamic; }",
    "add set ip t s { type ipv4_addr . inet_service; flags interval, dynamic, timeout; }",
    "add set ip t s { type ipv4_addr; flags interval; }",
])
def test_an_interval_set_updated_from_the_packet_path_cannot_be_made(command, real_tools):
    """nft_select_set_ops(): no set backend takes NFT_SET_INTERVAL with
    NFT_SET_EVAL (rbtree and pipapo have no update, the hashes no intervals):
    EOPNOTSUPP when the set is made, and nothing of the batch stays."""
    steps = [(["nft", "-f", "-"], f"add table ip t\n{command}\n"), (["nft", "list", "ruleset"], None)]
    real_tools.assert_same_as_real(steps)


def test_a_statement_inside_a_set_statements_element_is_an_error_naming_it():
    with pytest.raises(CommandError) as info:
        sh(Kernel(), ["nft", "-f", "-"], DYNSETS % "add @d { ip saddr counter }")
    assert "counter in a set statement's element is not modelled by the mock kernel" in str(info.value)


def _received(k: Kernel, src: str, dport: int = 53) -> None:
    mac = k.dev_by_name("p0").mac
    k.receive("p0", [bytes(Ether(dst=mac) / IP(src=src, dst="10.0.0.1") / UDP(sport=1000, dport=dport))])


def _dynset_kernel(rules: str, sets: str) -> Kernel:
    k = kernel(f"table ip t {{\n\t{sets}\n\tchain c {{\n\t\ttype filter hook input priority filter; "
               f"policy accept;\n\t\t{rules}\n\t}}\n}}\n")
    sh(k, ["ip", "addr", "add", "10.0.0.1/24", "dev", "p0"])
    return k


def test_update_refreshes_the_timeout_and_an_element_expires_in_virtual_time():
    k = _dynset_kernel("ip saddr @d counter\n\t\tudp dport 53 update @d { ip saddr timeout 10s }\n"
                       "\t\tudp dport 54 add @d { ip saddr timeout 10s }",
                       "set d { type ipv4_addr; flags dynamic,timeout; }")
    _received(k, "10.0.0.2")  # added: expires at 10 s
    k.advance(8)
    _received(k, "10.0.0.2")  # found, refreshed: expires at 18 s
    k.advance(8)
    _received(k, "10.0.0.2", dport=54)  # found; add leaves the timeout
    k.advance(3)
    _received(k, "10.0.0.2", dport=54)  # expired at 18 s: not found, added again
    assert _counts(k) == [2]
    assert "10.0.0.2 timeout 10s expires 10s" in sh(k, ["nft", "list", "set", "ip", "t", "d"])


def test_a_full_set_breaks_the_rule_of_the_statement_that_would_add():
    k = _dynset_kernel("add @s { ip saddr } counter", "set s { type ipv4_addr; size 2; flags dynamic; }")
    for src in ("10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.2"):
        _received(k, src)
    assert _counts(k) == [3]


# ------------------------------------------------------------------ concatenated intervals

PIPAPO = "ip saddr . udp dport { 10.0.0.0/8 . 10-23, 192.168.1.1-192.168.3.8 . 80-443, 172.16.0.1 . 53 } counter"


def test_concatenated_intervals_in_a_rule_list_back_as_real_nft(real_tools):
    _listed_as_real("inet", PIPAPO, real_tools)


def test_concatenated_intervals_in_a_named_set_list_back_as_real_nft(real_tools):
    steps = [(["nft", "-f", "-"], "table ip t {\n\tset s {\n\t\ttype ipv4_addr . inet_service\n\t\tflags interval\n"
              "\t\telements = { 10.0.0.0/8 . 10-23, 1.1.1.1 . 53 }\n\t}\n}\n"),
             (["nft", "add", "element", "ip", "t", "s", "{ 2.0.0.0/16 . 1-2 }"], None),
             (["nft", "list", "ruleset"], None), (["nft", "-j", "list", "ruleset"], None)]
    real_tools.assert_same_as_real(steps)


@pytest.mark.parametrize("src, dport, counted", [
    ("10.9.9.9", 23, 1), ("10.9.9.9", 24, 0), ("192.168.2.200", 443, 1), ("192.168.3.9", 80, 0),
    ("172.16.0.1", 53, 1), ("172.16.0.1", 54, 0),
])
def test_a_concatenated_interval_key_matches_when_every_field_is_in_its_range(src, dport, counted):
    k = _dynset_kernel(PIPAPO, "")
    _received(k, src, dport)
    assert _counts(k) == [counted]


def test_raw_payload_writes_list_as_the_field_they_amount_to_as_real_nft_does(real_tools):
    """A byte-aligned raw write lists as the field of the rule's protocol at
    its place (`th`'s when none is established), else raw; one off byte
    boundaries is not modelled (the mock says so, nft takes it)."""
    steps = [(["nft", "-f", "-"], CHAIN % ("ip", "accept") + CHAIN % ("arp", "accept"))]
    steps += [(["nft", "add", "rule", "ip", "t", "c", *rule.split()], None) for rule in (
        "@nh,64,8 set 5", "@th,16,16 set 53", "meta l4proto udp @th,16,16 set 53", "@ll,0,48 set 0x112233445566",
        "meta l4proto tcp @th,32,32 set 0x10")]
    steps += [(["nft", "add", "rule", "arp", "t", "c", *rule.split()], None) for rule in (
        "arp ptype 0x0800 arp htype 1 arp hlen 6 arp plen 4 @nh,144,48 set 0x112233445566",
        "@nh,144,48 set 0x112233445566")]
    steps += [(["nft", "list", "ruleset"], None), (["nft", "-j", "list", "ruleset"], None)]
    real_tools.assert_same_as_real(steps, _without_json_handles)


def test_a_raw_write_of_an_ip_field_updates_no_checksum():
    """nft sends a raw write with csum_type 0: nft_payload_set_eval() stores the
    byte and leaves the header checksum as it was."""
    from harness.mockkernel.netfilter.core import NF_INET_LOCAL_IN
    k = kernel(CHAIN % ("ip", "@nh,64,8 set 5"))
    skb = packet(k, IP(dst="10.0.0.1", ttl=64) / UDP(dport=9))
    check = bytes(skb.buf[skb.network_header + 10:skb.network_header + 12])
    hook(k, skb, NF_INET_LOCAL_IN)
    assert skb.buf[skb.network_header + 8] == 5
    assert bytes(skb.buf[skb.network_header + 10:skb.network_header + 12]) == check
