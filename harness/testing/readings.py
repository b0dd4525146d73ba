"""What suites read back from the DUT, in the same shape on every target."""
from __future__ import annotations

import re

from harness.target import Target

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
