"""What suites read back from the DUT, in the same shape on every target."""
from __future__ import annotations

import re

from harness.target import Target
from harness.testing.plan import forward

COMMENT = re.compile(r'comment "([^"]*)"$')
SAVED_COUNT = re.compile(r'^\[(\d+):\d+\] -A \S+ .*-m comment --comment ("[^"]*"|\S+)')


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


def counted_by_iptables_comment(target: Target, table: str = "filter", prog: str = "iptables") -> dict[str, int]:
    """Packets counted so far by each `prog` (iptables, ip6tables) rule of `table`, by
    its `-m comment` (`prog`-save -c: nft lists an iptables-nft comment as nothing)."""
    out = {}
    for line in target.sh([f"{prog}-save", "-c", "-t", table]).splitlines():
        found = SAVED_COUNT.match(line)
        if found:
            out[found.group(2).strip('"')] = int(found.group(1))
    return out


def matched_by(target: Target, deliver, reading=counted_by_comment) -> set[str]:
    """The names of the counting rules that counted while `deliver()` ran, as
    `reading(target)` names and counts them (by default nft rules' comments)."""
    before = reading(target)
    deliver()
    return {name for name, packets in reading(target).items() if packets != before.get(name, 0)}


def forwarded_matches(target: Target, src_host, dst_host, l4, **ip_fields) -> set[str]:
    """matched_by() a forward() from src_host to dst_host."""
    return matched_by(target, lambda: forward(target, src_host, dst_host, l4, **ip_fields))


def wait_until(target: Target, condition, timeout: float, step: float = 0.05) -> float | None:
    """now() when `condition()` first holds, polling `step` apart (virtual time on the
    mock), or None after `timeout`."""
    deadline = target.now() + timeout
    while target.now() < deadline:
        if condition():
            return target.now()
        target.wait(step)
    return None
