"""IPv6 policy routing rules (net/ipv6/fib6_rules.c): IPv6's half of the
rules engine of core/fib_rules.py, the one IPv4's `ip rule` uses too.

- fib6_rules_net_init(): a namespace starts with two rules, local at 0 and
  main at 32766 (no default table, unlike IPv4).
- fib6_rule_match(): destination prefix; a source prefix only matches a flow
  that has its source address (RT6_LOOKUP_F_HAS_SADDR: every received
  packet, a local one once bound or given `from`); tos against the traffic
  class's DSCP bits.
- fib6_rule_action(): `unreachable` fails with ENETUNREACH (ip6_null_entry),
  `blackhole` with EINVAL (ip6_blk_hole_entry), `prohibit` with EACCES
  (ip6_prohibit_entry); a lookup rule whose table does not exist, gives no
  route (ip6_null_entry) or a throw route (dst.error -EAGAIN) lets the next
  rule try.
- fib6_rule_suppress(): suppress_prefixlength against the route's prefix
  length; a reject route (its dst has an error) is never suppressed.
- fib6_rule_configure(): a lookup rule needs a table (not 0: "Invalid
  table") and makes it (fib6_new_table()); any rule added sets
  fib6_has_custom_rules, never cleared again.
- fib6_rule_lookup(): while no rule was ever added, the local table then
  main, whatever the rules list says; after that the rules engine's walk.
Left out: FIB_RULE_FIND_SADDR (iproute2 never sets it), l3mdev, the flow
dissector keys (ipproto, ports).
"""
from __future__ import annotations

import errno
from dataclasses import dataclass

from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.core.fib_rules import (AF_INET6, EAGAIN, ESRCH, FibRulesOps, Flowi, fib_rules_lookup,
                                               fib_rules_register)
from harness.mockkernel.ipv6.ip6_fib import MASKS, RTF_REJECT, Fib6Info, fib6_new_table
from harness.mockkernel.ipv6.netns import RT6_TABLE_LOCAL, RT6_TABLE_MAIN
from harness.mockkernel.net import RTN_BLACKHOLE, RTN_PROHIBIT, RTN_THROW, RTN_UNREACHABLE, FibRule

ENETUNREACH = errno.ENETUNREACH
# fib6_rule_action(): the errno of the dst each dropping action hands back
RULE_ACTION_ERRORS = {RTN_UNREACHABLE.keyword: ENETUNREACH, RTN_BLACKHOLE.keyword: errno.EINVAL,
                      RTN_PROHIBIT.keyword: errno.EACCES}
DEFAULT_RULES = ((0, RT6_TABLE_LOCAL), (32766, RT6_TABLE_MAIN))


@dataclass(slots=True)
class Flowi6(Flowi):
    """struct flowi6: the common flow plus what the multipath hash reads
    (rt6_multipath_hash()): the flow label, the next header, the ports, the
    received packet when there is one, and `strict` (RT6_LOOKUP_F_IFACE:
    only a route out of the flow's interface)."""

    flowlabel: int = 0
    proto: int = 0
    sport: int = 0
    dport: int = 0
    strict: bool = False
    skb: object = None


class Fib6RulesOps(FibRulesOps):
    family = AF_INET6
    addr_bits = 128

    def match(self, rule: FibRule, flow: Flowi6) -> bool:
        if rule.dst is not None and (flow.daddr ^ rule.dst[0]) & MASKS[rule.dst[1]]:
            return False
        if rule.src is not None and (not flow.has_saddr or (flow.saddr ^ rule.src[0]) & MASKS[rule.src[1]]):
            return False
        return not rule.tos or rule.tos == flow.tos

    def action(self, net, rule: FibRule, flow: Flowi6) -> Fib6Info | int:
        if rule.action in RULE_ACTION_ERRORS:
            return RULE_ACTION_ERRORS[rule.action]
        table = net.ipv6.fib_tables.get(rule.table)
        f6i = flow.lookup(net, table, flow) if table is not None else None
        return EAGAIN if f6i is None or f6i.type is RTN_THROW else f6i

    def suppress(self, rule: FibRule, f6i: Fib6Info) -> bool:
        return not f6i.flags & RTF_REJECT and f6i.dst_len <= rule.suppress_prefixlength

    def configure(self, net, rule: FibRule) -> None:
        if rule.action == "lookup":
            if not rule.table:
                raise RtnlError(errno.EINVAL, "Invalid table")
            fib6_new_table(net, rule.table)
        net.ipv6.fib6_has_custom_rules = True


def fib6_rules_net_init(net) -> None:
    fib_rules_register(net, Fib6RulesOps([FibRule(priority, table, protocol="kernel")
                                          for priority, table in DEFAULT_RULES]))


def fib6_rule_lookup(net, flow: Flowi6) -> Fib6Info | int:
    """The route `flow.lookup` finds in the table the rules pick, or the
    errno of the dst the lookup ends with (ENETUNREACH: ip6_null_entry)."""
    if net.ipv6.fib6_has_custom_rules:
        result = fib_rules_lookup(net, net.rules_ops[AF_INET6], flow)
        return ENETUNREACH if result == ESRCH else result
    tables = net.ipv6.fib_tables
    for table_id in (RT6_TABLE_LOCAL, RT6_TABLE_MAIN):
        f6i = flow.lookup(net, tables[table_id], flow)
        if f6i is not None and f6i.type is not RTN_THROW:
            return f6i
    return ENETUNREACH
