"""nft's expression machinery on the mock: bitwise operations (nft_bitwise.py),
conntrack keys (nft_exprs.Ct), sets' element order, dynamic sets and
concatenated intervals (nft_set.py, nft_dynset.py). Listings are pinned to what
nft 1.0.6 answers (tests/golden/nft/, recorded by tests/golden/record_nft); the
datapath runs on crafted packets with expected values written out by hand."""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP

from harness.mockkernel.netfilter.core import NF_ACCEPT, NF_DROP, NF_INET_LOCAL_IN
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
