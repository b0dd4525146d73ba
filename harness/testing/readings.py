"""What suites read back from the DUT, in the same shape on every target."""
from __future__ import annotations

import re

from harness.target import Target
from harness.testing.plan import forward

COMMENT = re.compile(r'comment "([^"]*)"$')


def drops(target: Target) -> list[tuple[str, str, str]]:
    """Every drop so far as (reason, stage, location), in order."""
    return [(d.reason, d.stage, d.location) for d in target.drops()]


def counted(target: Target, needle: str) -> int:
    """Packets counted by the counter rules whose text holds `needle`."""
    return sum(c.packets for c in target.counters() if needle in c.rule)


def counted_in_chain(target: Target, chain: str) -> int:
    """Packets counted by the counter rules of `chain`."""
    return sum(c.packets for c in target.counters() if c.chain == chain)


def counted_by_comment(target: Target) -> dict[str, int]:
    """Packets counted so far by each counter rule, by the rule's comment."""
    return {m.group(1): c.packets for c in target.counters() if (m := COMMENT.search(c.rule))}


def matched_by(target: Target, deliver) -> set[str]:
    """The comments of the counter rules that counted while `deliver()` ran."""
    before = counted_by_comment(target)
    deliver()
    return {name for name, packets in counted_by_comment(target).items() if packets != before.get(name, 0)}


def forwarded_matches(target: Target, src_host, dst_host, l4, **ip_fields) -> set[str]:
    """matched_by() a forward() from src_host to dst_host."""
    return matched_by(target, lambda: forward(target, src_host, dst_host, l4, **ip_fields))
