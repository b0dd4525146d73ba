"""nft 1.0.6 lists two relationals in a row as one range (netlink_delinearize.c
stmt_expr_postprocess(), expr_may_merge_range()): `>=` then `<=` as a range, `<` then
`>` as a negated one, comparing only the kinds of the left-hand expressions. Expected
listings are the real nft 1.0.6's (6.18 netns lab)."""
from __future__ import annotations

import pytest

from harness.mockkernel.target import MockTarget

RULES = {
    "ip ttl < 3 ip length > 100 counter": "ip length != 3-100 counter packets 0 bytes 0",
    "ip length >= 3 ip length <= 100 counter": "ip length 3-100 counter packets 0 bytes 0",
    "ip ttl >= 3 ip length <= 100 counter": "ip length 3-100 counter packets 0 bytes 0",
    "meta length < 50 meta mark > 5 counter": "meta mark != 0x00000032-0x00000005 counter packets 0 bytes 0",
    "tcp dport < 10 tcp sport > 100 counter": "tcp sport != 10-100 counter packets 0 bytes 0",
    "ip ttl < 3 meta length > 100 counter": "ip ttl < 3 meta length > 100 counter packets 0 bytes 0",
    "ip ttl > 3 ip length < 100 counter": "ip ttl > 3 ip length < 100 counter packets 0 bytes 0",
}


@pytest.mark.parametrize("rule", RULES)
def test_two_relationals_of_one_expression_kind_list_as_one_range_whichever_fields_they_load(rule):
    target = MockTarget()
    try:
        target.sh(["nft", "-f", "-"], stdin="table ip t {\n\tchain c {\n\t\ttype filter hook input priority 0;\n"
                                            f"\t\t{rule}\n\t}}\n}}\n")
        listed = [line.strip() for line in target.sh("nft list ruleset").splitlines()]
        assert RULES[rule] in listed
    finally:
        target.close()
