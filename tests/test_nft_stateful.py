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
]


@pytest.mark.parametrize("family, rule", [("ip", r) for r in RULES] + [("inet", "quota over 1 kbytes used 1 bytes")])
def test_a_stateful_statement_lists_back_as_real_nft_lists_it(family, rule, real_tools):
    steps = [(["nft", "-f", "-"], CHAIN % (family, rule)), (["nft", "-a", "list", "ruleset"], None),
             (["nft", "-s", "list", "ruleset"], None), (["nft", "-j", "list", "ruleset"], None)]
    real_tools.assert_same_as_real(steps, _without_json_handles)


# what nft 1.0.6 (or the kernel, "Could not process rule") refuses
REFUSED = [
    "quota 1 foo", "quota over", "log level audit prefix \"x\"", "log level audit flags all",
    "log group 1 level info", "log group 1 flags all", "log flags tcp", "log flags ip", "log flags foo",
    "limit rate 1023000 mbytes/second", "limit rate over 1025000 mbytes/second burst 1023 mbytes",
    "limit rate 1 foo / second", "limit rate 0/second", "counter packets", "counter bytes foo",
]


def test_stateful_statements_real_nft_refuses_are_refused_with_its_message(real_tools):
    steps = [(["nft", "-f", "-"], CHAIN % ("ip", "accept"))]
    steps += [(["nft", "add", "rule", "ip", "t", "c", *rule.split()], None) for rule in REFUSED]
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
