"""`ip rule` and `ip -6 rule` (iproute2 6.1 ip/iprule.c): add/del [not]
[from P] [to P] [iif X] [oif X] [fwmark M[/MASK]] [tos T] [pref N]
[protocol P] [suppress_prefixlength N] [table T | lookup T | blackhole |
unreachable | prohibit | goto N | nop]; show; flush.

The request goes to the family's rules (core/fib_rules.py, ops by family):
IPv6 with -6, else IPv4; a prefix of the other family is the kernel's
"Invalid source address" (fib_nl2rule() checks its length against the
family's). Without a priority the kernel picks one (fib_default_rule_pref()).
`add` looks up main unless an action or table was named (an action alone
leaves table 0, which IPv4 turns into an empty table and IPv6 refuses).
`del` removes the first rule matching everything it names. `flush` deletes
every rule but those of priority 0 (the kernel dumps no priority for them,
so iproute2 cannot name them), which takes the main and default rules too.
"""
from __future__ import annotations

import errno

from harness.mockkernel.cmd.args import ToolError, c_uint, not_modelled
from harness.mockkernel.cmd.iputils import (IpOptions, Printed, get_prefix, get_prefix6, get_value, inet6_ntoa,
                                            invarg, is_inet6, matches, protocol_id, protocol_name, render,
                                            route_type, table_id, table_name, unknown_command)
from harness.mockkernel.core import fib_rules
from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.core.fib_rules import AF_INET, AF_INET6, FibRulesOps, RuleSelectors
from harness.mockkernel.net import RT_TABLE_MAIN, FibRule, RouteType, int_to_ip

# the route types a rule's action may name (iprule.c: FR_ACT_BLACKHOLE, _UNREACHABLE, _PROHIBIT)
ACTIONS = (RouteType.RTN_BLACKHOLE, RouteType.RTN_UNREACHABLE, RouteType.RTN_PROHIBIT)
NOT_MODELLED = ("realms", "tun_id", "suppress_ifgroup", "sup_group", "l3mdev", "uidrange", "nat", "map-to",
                "ipproto", "sport", "dport")


def do_iprule(net, tokens, opts: IpOptions) -> str:
    ops = net.rules_ops[AF_INET6 if opts.inet6_only else AF_INET]
    if not tokens:
        return _list(net, ops, opts)
    verb = tokens.pop()
    if matches(verb, "list") or matches(verb, "lst") or matches(verb, "show"):
        if tokens:
            raise not_modelled(f"ip rule {verb} selectors ({tokens.peek()})")
        return _list(net, ops, opts)
    if matches(verb, "add"):
        return _modify(net, ops, tokens, opts, add=True)
    if matches(verb, "delete"):
        if not tokens:
            raise ToolError('"ip rule del" requires arguments.', 1)
        return _modify(net, ops, tokens, opts, add=False)
    if matches(verb, "flush"):
        ops.rules[:] = [r for r in ops.rules if r.priority == 0]
        return ""
    if any(matches(verb, v) for v in ("save", "restore", "help")):
        raise not_modelled(f"ip rule {verb}")
    raise unknown_command(verb, "rule")


def _selector(text: str, ops: FibRulesOps, opts: IpOptions, direction: str) -> tuple[int, int] | None:
    """from/to: get_prefix() in the command's family ("any valid" without -4/-6);
    the kernel keeps the address as given, a /0 selects all. A prefix longer
    than the family's addresses is fib_nl2rule()'s EINVAL."""
    if opts.inet6_only:
        addr6, plen = get_prefix6(text, "inet6")
        addr, bits = int.from_bytes(addr6, "big"), 128
    elif not opts.inet_only and is_inet6(text):
        addr6, plen = get_prefix6(text)
        addr, bits = int.from_bytes(addr6, "big"), 128
    else:
        addr, plen = get_prefix(text, "inet" if opts.inet_only else "any valid")
        bits = 32
    if plen and bits != ops.addr_bits:
        raise RtnlError(errno.EINVAL, "Invalid source address" if direction == "from" else "Invalid dst address")
    return (addr, plen) if plen else None


def _tos(text: str) -> int | None:
    """rtnl_dsfield_a2n(): hexadecimal, one byte."""
    value = c_uint(text, 16)
    return value if value is not None and value < 256 else None


def _modify(net, ops: FibRulesOps, tokens, opts: IpOptions, add: bool) -> str:
    rule = FibRule(0, table=0, action="")
    mark = mask = pref = None
    table_named = False
    while tokens:
        token = tokens.pop()
        if token == "not":
            rule.invert = True
        elif token in ("from", "to"):
            setattr(rule, "src" if token == "from" else "dst", _selector(tokens.pop(), ops, opts, token))
        elif any(matches(token, k) for k in ("preference", "order", "priority")):
            pref = get_value(tokens, c_uint, "preference value is invalid")
        elif token == "tos" or matches(token, "dsfield"):
            rule.tos = get_value(tokens, _tos, "TOS value is invalid")
        elif token == "fwmark":
            mark_text, slash, mask_text = tokens.pop().partition("/")
            mark = c_uint(mark_text)
            if mark is None:
                raise invarg("fwmark value is invalid", mark_text)
            mask = c_uint(mask_text) if slash else 0xFFFFFFFF if mark else 0
            if mask is None:
                raise invarg("fwmask value is invalid", mask_text)
        elif matches(token, "protocol"):
            rule.protocol = protocol_name(str(get_value(tokens, protocol_id, '"protocol" value is invalid')))
        elif matches(token, "table") or token == "lookup":
            rule.table = get_value(tokens, table_id, "invalid table ID")
            table_named = True
        elif token in ("dev", "iif"):
            rule.iif = tokens.pop()
        elif token == "oif":
            rule.oif = tokens.pop()
        elif token in ("suppress_prefixlength", "sup_pl"):
            rule.suppress_prefixlength = get_value(tokens, c_uint, "suppress_prefixlength value is invalid")
        elif token in NOT_MODELLED:
            raise not_modelled(f"ip rule {token}")
        else:
            rule.action = _action(tokens, token, rule)
    rule.fwmark, rule.fwmask = (mark, mask) if mark is not None else (None, 0xFFFFFFFF)
    rule.priority = pref or 0
    given = RuleSelectors(priority=pref is not None, action=bool(rule.action), table=bool(rule.table))
    if add:
        if not rule.action and not table_named:
            rule.table = RT_TABLE_MAIN
        rule.action = rule.action or "lookup"
        fib_rules.fib_nl_newrule(net, ops, rule, given)
    else:
        fib_rules.fib_nl_delrule(net, ops, rule, given)
    return ""


def _action(tokens, token: str, rule: FibRule) -> str:
    """The rule's action: goto N, nop, or a route type naming one."""
    if token == "type":
        token = tokens.pop()
    if matches(token, "goto"):
        rule.goto = get_value(tokens, c_uint, "invalid target")
        return "goto"
    if matches(token, "nop"):
        return "nop"
    rtype = route_type(token)
    if rtype is None:
        raise invarg("Failed to parse rule type", token)
    if rtype is RouteType.RTN_UNICAST:
        return "lookup"
    if rtype not in ACTIONS:
        raise not_modelled(f"rule action {rtype.keyword}")
    return rtype.keyword


def _list(net, ops: FibRulesOps, opts: IpOptions) -> str:
    return render([_print_rule(net, ops, r, opts) for r in ops.rules], opts)


def _prefix(out: Printed, word: str, key: str, selector: tuple[int, int], bits: int) -> None:
    value, plen = selector
    addr = int_to_ip(value) if bits == 32 else inet6_ntoa(value.to_bytes(16, "big"))
    out.add(key, addr, f" {word} {addr}" if plen == bits else f" {word} {addr}/{plen}")
    if plen != bits:
        out.add(f"{key}len", plen)


def _print_rule(net, ops: FibRulesOps, rule: FibRule, opts: IpOptions) -> Printed:
    """print_rule(): "PRIO:\t", then the fields separated by single spaces."""
    out = Printed().add("priority", rule.priority, f"{rule.priority}:\t")
    if rule.invert:
        out.add("not", None, " not")
    if rule.src is None:
        out.add("src", "all", " from all")
    else:
        _prefix(out, "from", "src", rule.src, ops.addr_bits)
    key, value, text = out.fields[1]
    out.fields[1] = (key, value, text.lstrip(" "))
    if rule.dst is not None:
        _prefix(out, "to", "dst", rule.dst, ops.addr_bits)
    if rule.tos:
        out.add("tos", f"0x{rule.tos:02x}", f" tos 0x{rule.tos:02x}")
    mark, mask = (rule.fwmark, rule.fwmask) if rule.fwmark is not None else (0, 0)
    if mark or mask:
        masked = f"/{_hex(mask)}" if mask != 0xFFFFFFFF else ""
        out.add("fwmark", _hex(mark), f" fwmark {_hex(mark)}{masked}")
        if mask != 0xFFFFFFFF:
            out.add("fwmask", _hex(mask))
    for key, name in (("iif", rule.iif), ("oif", rule.oif)):
        if name is not None:
            out.add(key, name, f" {key} {name}")
            if net.dev_by_name(name) is None:
                out.add(f"{key}_detached", None, " [detached]")
    if rule.table:
        out.add("table", table_name(rule.table), f" lookup {table_name(rule.table)}")
        if rule.suppress_prefixlength >= 0:
            out.add("suppress_prefixlen", rule.suppress_prefixlength,
                    f" suppress_prefixlength {rule.suppress_prefixlength}")
    if rule.action == "goto":
        out.add("goto", rule.goto, f" goto {rule.goto}")
        if not any(r.priority == rule.goto for r in ops.rules):
            out.add("unresolved", None, " [unresolved]")
    elif rule.action == "nop":
        out.add("nop", None, " nop")
    elif rule.action != "lookup":
        out.add("action", rule.action, f" {rule.action}")
    if rule.protocol not in ("unspec", "kernel") or opts.details:
        out.add("protocol", rule.protocol, f" proto {rule.protocol}")
    return out.add(None, None, "\n")


def _hex(value: int) -> str:
    """printf("%#x"): no 0x for zero."""
    return f"{value:#x}" if value else "0"
