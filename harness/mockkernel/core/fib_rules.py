"""The policy routing rules both families share (net/core/fib_rules.c): one
engine, each family plugging its half in as the kernel's struct fib_rules_ops
does.

- `FibRulesOps` is struct fib_rules_ops: the family's rules_list in priority
  order and its callbacks as methods: match (the family's selectors: source,
  destination, tos), action (look the rule's table up, or fail as the rule
  says), suppress (suppress_prefixlength), configure (what a new rule must
  satisfy) and compare (rule_exists()'s family part). IPv4's is
  ipv4/route.py Fib4RulesOps (net/ipv4/fib_rules.c), IPv6's
  ipv6/fib6_rules.py Fib6RulesOps (net/ipv6/fib6_rules.c); each namespace
  registers them in `net.rules_ops` by family (fib_rules_register()).
- fib_rules_lookup(): the walk, with fib_rule_match()'s generic part (iif,
  oif, fwmark, `not`), goto (to the first rule of the target priority) and
  nop; an action answering EAGAIN goes on to the next rule, a result the
  family suppresses too; nothing left is ESRCH.
- fib_nl_newrule() / fib_nl_delrule(): fib_nl2rule()'s checks, the default
  priority (fib_default_rule_pref()), rule_exists() and rule_find().

Rules keep their iif/oif by name and resolve it per lookup, which is what the
kernel's iifindex, kept up to date by fib_rules_event() on device
registration, amounts to. Left out: uidrange, ipproto/sport/dport, tun_id,
l3mdev, suppress_ifgroup.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass

from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.net import FibRule

AF_INET, AF_INET6 = 2, 10
EAGAIN, ESRCH = errno.EAGAIN, errno.ESRCH


@dataclass(slots=True)
class Flowi:
    """What a rule matches of a flow (struct flowi): addresses as ints of the
    family's width, `iif`/`oif` ifindexes (0: none), `mark`, `tos`, IPv4's
    `scope` (flowi4_scope) and, for IPv6, whether the flow has a source
    address yet (RT6_LOOKUP_F_HAS_SADDR: a rule with `from` matches no flow
    without one) and `lookup`, the table lookup the action calls
    (fib6_rule_lookup()'s lookup pointer, input or output)."""

    daddr: int
    saddr: int
    iif: int
    oif: int
    mark: int = 0
    tos: int = 0
    scope: int = 0
    has_saddr: bool = True
    lookup: object = None


@dataclass
class RuleSelectors:
    """Which parts of a rule the command named: fib_nl_delrule() compares only
    those, and rule_exists() compares prefixes and tos only when given."""

    priority: bool = False
    action: bool = False
    table: bool = False


class FibRulesOps:
    """struct fib_rules_ops: one family's rules in priority order."""

    family = 0
    addr_bits = 0

    def __init__(self, default_rules: list[FibRule]) -> None:
        self.rules = default_rules

    def match(self, rule: FibRule, flow: Flowi) -> bool:
        raise NotImplementedError

    def action(self, net, rule: FibRule, flow: Flowi):
        """The rule's result: a route, or an errno (EAGAIN: try the next rule)."""
        raise NotImplementedError

    def suppress(self, rule: FibRule, result) -> bool:
        raise NotImplementedError

    def configure(self, net, rule: FibRule) -> None:
        raise NotImplementedError

    def compare(self, r: FibRule, rule: FibRule) -> bool:
        """fib4_rule_compare() / fib6_rule_compare(): source, destination and tos, where given."""
        return ((rule.src is None or r.src == rule.src) and (rule.dst is None or r.dst == rule.dst)
                and (rule.tos is None or r.tos == rule.tos))


def fib_rules_register(net, ops: FibRulesOps) -> None:
    net.rules_ops[ops.family] = ops


def fib_rule_match(net, ops: FibRulesOps, rule: FibRule, flow: Flowi) -> bool:
    """fib_rule_match(): iif (a detached device matches nothing), oif, fwmark
    under its mask, then the family's selectors; `not` inverts the lot."""
    matched = False
    if rule.iif is not None and _ifindex(net, rule.iif) != flow.iif:
        pass
    elif rule.oif is not None and _ifindex(net, rule.oif) != flow.oif:
        pass
    elif rule.fwmark is not None and (flow.mark ^ rule.fwmark) & rule.fwmask:
        pass
    else:
        matched = ops.match(rule, flow)
    return matched is not rule.invert


def _ifindex(net, name: str) -> int:
    dev = net.dev_by_name(name)
    return dev.ifindex if dev is not None else -1


def fib_rules_lookup(net, ops: FibRulesOps, flow: Flowi):
    """The first rule that matches and whose action gives an answer: a route
    or an errno; ESRCH when none does."""
    rules = ops.rules
    index = 0
    while index < len(rules):
        rule = rules[index]
        index += 1
        if not fib_rule_match(net, ops, rule, flow):
            continue
        if rule.action == "goto":
            # rule->ctarget: the first rule of the target priority, matched next; none, and the walk goes on
            target = next((i for i, r in enumerate(rules) if r.priority == rule.goto), None)
            if target is not None:
                index = target
            continue
        if rule.action == "nop":
            continue
        result = ops.action(net, rule, flow)
        if result.__class__ is int:
            if result == EAGAIN:
                continue
            return result
        if rule.suppress_prefixlength >= 0 and ops.suppress(rule, result):
            continue
        return result
    return ESRCH


def fib_default_rule_pref(ops: FibRulesOps) -> int:
    """One below the priority of the second rule in the list, if that is not 0."""
    rules = ops.rules
    if len(rules) > 1 and rules[1].priority:
        return rules[1].priority - 1
    return 0


def _mark(rule: FibRule) -> tuple[int, int]:
    return (rule.fwmark, rule.fwmask) if rule.fwmark is not None else (0, 0)


def fib_nl_newrule(net, ops: FibRulesOps, rule: FibRule, given: RuleSelectors) -> None:
    """fib_nl2rule()'s checks, rule_exists() (EEXIST), the family's configure(),
    then the rule goes after every rule of lower or equal priority."""
    if not given.priority:
        rule.priority = fib_default_rule_pref(ops)
    if rule.action == "goto" and rule.goto <= rule.priority:
        raise RtnlError(errno.EINVAL, "Backward goto not supported")
    for r in ops.rules:  # rule_exists()
        if ((r.action, r.table, r.priority, r.iif, r.oif, _mark(r), r.suppress_prefixlength, r.protocol)
                == (rule.action, rule.table, rule.priority, rule.iif, rule.oif, _mark(rule),
                    rule.suppress_prefixlength, rule.protocol) and ops.compare(r, rule)):
            raise RtnlError(errno.EEXIST)
    if rule.tos is not None and rule.tos & 3:
        raise RtnlError(errno.EINVAL, "Invalid dsfield (tos): ECN bits must be 0")
    ops.configure(net, rule)
    rules = ops.rules
    position = next((i for i, r in enumerate(rules) if r.priority > rule.priority), len(rules))
    rules.insert(position, rule)


def fib_nl_delrule(net, ops: FibRulesOps, rule: FibRule, given: RuleSelectors) -> None:
    """rule_find(): the first rule matching everything the command named."""
    for r in ops.rules:
        if ((not given.action or r.action == rule.action)
                and (not given.table or r.table == rule.table)
                and (not given.priority or r.priority == rule.priority)
                and (rule.iif is None or r.iif == rule.iif)
                and (rule.oif is None or r.oif == rule.oif)
                and (not rule.fwmark or _mark(r)[0] == rule.fwmark)
                and (rule.fwmark is None or not rule.fwmask or _mark(r)[1] == rule.fwmask)
                and (rule.suppress_prefixlength < 0 or r.suppress_prefixlength == rule.suppress_prefixlength)
                and ops.compare(r, rule)):
            ops.rules.remove(r)
            return
    raise RtnlError(errno.ENOENT)
