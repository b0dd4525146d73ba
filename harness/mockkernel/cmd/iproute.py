"""`ip route` (iproute2 ip/iproute.c): add/append/prepend/replace/change/del
[TYPE] PREFIX|default [via GW] [dev X] [src S] [metric N] [table T] [proto P]
[scope S] [mtu N] [advmss N]; show/flush [table T|all] [dev X] [proto P] [scope S]
[type T] [PREFIX].

iproute_modify()'s defaults: proto boot; scope link for a unicast route without
a gateway, host for local, link for broadcast, else global; table local for
local and broadcast routes, else main. A delete names only what it gives (scope
"nowhere" = any). `show PREFIX` is an exact match; a selector given is left out
of each printed route, as print_route() does.
"""
from __future__ import annotations

from dataclasses import dataclass

from harness.mockkernel.cmd.args import ToolError, c_uint, not_modelled
from harness.mockkernel.cmd.iputils import (IpOptions, Printed, device, duparg2, get_addr, get_value,
                                            get_prefix, invarg, matches, protocol_id, protocol_name,
                                            render, route_type, scope_id, scope_name, table_id,
                                            table_name, unknown_command)
from harness.mockkernel.core.rtnetlink import NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE
from harness.mockkernel.ipv4 import fib_frontend
from harness.mockkernel.ipv4.fib_frontend import RouteMatch
from harness.mockkernel.net import (RT_SCOPE_HOST, RT_SCOPE_LINK, RT_SCOPE_NOWHERE, RT_SCOPE_UNIVERSE,
                                    RT_TABLE_LOCAL, RT_TABLE_MAIN, FibRoute, RouteType, int_to_ip)

MODIFY_FLAGS = (("add", NLM_F_CREATE | NLM_F_EXCL), ("change", NLM_F_REPLACE), ("chg", NLM_F_REPLACE),
                ("replace", NLM_F_CREATE | NLM_F_REPLACE), ("prepend", NLM_F_CREATE),
                ("append", NLM_F_CREATE | NLM_F_APPEND))
MODELLED_TYPES = (RouteType.RTN_UNICAST, RouteType.RTN_LOCAL, RouteType.RTN_BROADCAST, RouteType.RTN_BLACKHOLE,
                  RouteType.RTN_UNREACHABLE, RouteType.RTN_PROHIBIT, RouteType.RTN_THROW)
MODIFY_NOT_MODELLED = ("as", "from", "tos", "dsfield", "expires", "onlink", "pervasive", "features",
                       "quickack", "congctl", "rtt", "rto_min", "window", "cwnd", "initcwnd", "initrwnd",
                       "rttvar", "ssthresh", "realms", "mpath", "mp", "vrf", "pref", "encap",
                       "ttl-propagate", "nexthop", "nhid", "hoplimit", "reordering",
                       "fastopen_no_cookie")
LIST_NOT_MODELLED = ("iif", "mark", "metric", "priority", "preference", "via", "src", "realms", "from",
                     "root", "match", "tos", "dsfield", "cached", "cloned", "vrf")
USAGE = ToolError("Usage: ip route { add | del | change | append | replace } ROUTE", 255)
NO_TABLE = ToolError("Error: ipv4: FIB table does not exist.\nDump terminated", 2)


def do_iproute(net, tokens, opts: IpOptions) -> str:
    if not tokens:
        return _list(net, tokens, opts)
    verb = tokens.pop()
    for name, flags in MODIFY_FLAGS:
        if verb == name or (name != "chg" and matches(verb, name)):
            return _modify(net, tokens, opts, flags)
    if matches(verb, "test"):
        raise not_modelled("ip route test")
    if matches(verb, "delete"):
        return _modify(net, tokens, opts, None)
    if matches(verb, "list") or matches(verb, "show") or matches(verb, "lst"):
        return _list(net, tokens, opts)
    if matches(verb, "get"):
        raise not_modelled("ip route get")
    if matches(verb, "flush"):
        return _flush(net, tokens, opts)
    if any(matches(verb, v) for v in ("restore", "showdump", "save", "help")):
        raise not_modelled(f"ip route {verb}")
    raise unknown_command(verb, "route")


@dataclass
class RouteRequest:
    """The struct rtmsg + attributes iproute_modify() builds; None: not given."""

    dst: tuple[int, int] | None = None
    type: RouteType | None = None
    gateway: int | None = None
    dev: str | None = None
    prefsrc: int | None = None
    metric: int | None = None
    table: int | None = None
    protocol: str | None = None
    scope: int | None = None
    mtu: int | None = None
    advmss: int | None = None

    def default_table(self) -> int:
        return RT_TABLE_LOCAL if self.type in (RouteType.RTN_LOCAL, RouteType.RTN_BROADCAST) else RT_TABLE_MAIN

    def default_scope(self, delete: bool) -> int:
        if self.type is RouteType.RTN_LOCAL:
            return RT_SCOPE_HOST
        if self.type is RouteType.RTN_BROADCAST:
            return RT_SCOPE_LINK
        if self.type in (None, RouteType.RTN_UNICAST):
            if delete:
                return RT_SCOPE_NOWHERE
            return RT_SCOPE_LINK if self.gateway is None else RT_SCOPE_UNIVERSE
        return RT_SCOPE_NOWHERE if delete else RT_SCOPE_UNIVERSE


def _parse_modify(tokens, opts: IpOptions) -> RouteRequest:
    req = RouteRequest()
    family = "inet" if opts.inet_only else "any valid"
    while tokens:
        token = tokens.pop()
        if token == "src":
            req.prefsrc = get_addr(tokens.pop(), family)
        elif token == "via":
            if req.gateway is not None:
                raise invarg("use nexthop syntax to specify multiple via", token)
            value = tokens.pop()
            req.gateway = get_addr(tokens.pop() if value == "inet" else value, family)
            family = "inet"
        elif any(matches(token, k) for k in ("metric", "priority", "preference")):
            req.metric = get_value(tokens, c_uint, '"metric" value is invalid')
        elif matches(token, "table"):
            req.table = get_value(tokens, table_id, '"table" value is invalid')
        elif token in ("dev", "oif"):
            req.dev = tokens.pop()
        elif matches(token, "protocol"):
            req.protocol = protocol_name(str(get_value(tokens, protocol_id, '"protocol" value is invalid')))
        elif matches(token, "scope"):
            req.scope = get_value(tokens, scope_id, 'invalid "scope" value')
        elif token == "mtu":
            if tokens.peek() == "lock":
                raise not_modelled("ip route ... mtu lock")
            req.mtu = get_value(tokens, c_uint, '"mtu" value is invalid')
        elif token == "advmss":
            if tokens.peek() == "lock":
                raise not_modelled("ip route ... advmss lock")
            req.advmss = get_value(tokens, c_uint, '"mss" value is invalid')
        elif token in MODIFY_NOT_MODELLED:
            raise not_modelled(f"ip route option {token}")
        else:
            if token == "to":
                token = tokens.pop()
            if not token[:1].isdigit() and (rtype := route_type(token)) is not None:
                if rtype not in MODELLED_TYPES:
                    raise not_modelled(f"route type {rtype.keyword}")
                req.type = rtype
                token = tokens.pop()
            if req.dst is not None:
                raise duparg2("to", token)
            req.dst = get_prefix(token, family)
            family = "inet"
    if req.dst is None:
        raise USAGE
    return req


def _modify(net, tokens, opts: IpOptions, flags: int | None) -> str:
    """`flags` None is a delete."""
    req = _parse_modify(tokens, opts)
    oif = device(net, req.dev).ifindex if req.dev is not None else None
    # fib_new_table(): table 0 (unspec) is main
    table = req.default_table() if req.table is None else req.table or RT_TABLE_MAIN
    scope = req.scope if req.scope is not None else req.default_scope(delete=flags is None)
    route = FibRoute(table, *req.dst, type=req.type or RouteType.RTN_UNICAST, oif=oif, gateway=req.gateway,
                     prefsrc=req.prefsrc, metric=req.metric or 0, scope=scope,
                     protocol=req.protocol or "boot", mtu=req.mtu, advmss=req.advmss)
    if flags is None:
        fib_frontend.fib_table_delete(net, RouteMatch(route, req.type, scope, req.prefsrc, req.protocol))
    else:
        fib_frontend.fib_table_insert(net, route, flags)
    return ""


@dataclass
class RouteFilter:
    """iproute_list_flush_or_save()'s selectors; table 0 is all tables."""

    table: int = RT_TABLE_MAIN
    dev: int | None = None
    protocol: str | None = None
    scope: int | None = None
    type: RouteType | None = None
    prefix: tuple[int, int] | None = None

    def matches(self, r: FibRoute) -> bool:
        return ((self.table in (0, r.table)) and self.dev in (None, r.oif)
                and self.protocol in (None, protocol_name(r.protocol)) and self.scope in (None, r.scope)
                and self.type in (None, r.type) and self.prefix in (None, (r.dst, r.plen)))


def _parse_filter(net, tokens, opts: IpOptions) -> RouteFilter:
    sel = RouteFilter()
    family = "inet" if opts.inet_only else "any valid"
    while tokens:
        token = tokens.pop()
        if matches(token, "table"):
            value = tokens.pop()
            if value == "cache":
                raise not_modelled("ip route show table cache")
            sel.table = 0 if value == "all" else table_id(value)
            if sel.table is None:
                raise invarg("table id value is invalid", value)
        elif matches(token, "protocol"):
            sel.protocol = protocol_name(str(get_value(tokens, protocol_id, 'invalid "protocol"')))
        elif matches(token, "scope"):
            sel.scope = get_value(tokens, scope_id, 'invalid "scope"')
        elif matches(token, "type"):
            sel.type = get_value(tokens, route_type, "node type value is invalid")
        elif token in ("dev", "oif"):
            sel.dev = device(net, tokens.pop()).ifindex
        elif token in LIST_NOT_MODELLED:
            raise not_modelled(f"ip route selector {token}")
        else:
            if token in ("exact", "to"):
                token = tokens.pop()
            sel.prefix = get_prefix(token, family)
    if sel.table and sel.table not in net.tables:
        raise NO_TABLE
    return sel


def _selected(net, sel: RouteFilter) -> list[FibRoute]:
    tables = sorted(net.tables, key=lambda t: (t & 0xFF, t)) if sel.table == 0 else [sel.table]
    return [r for t in tables for r in net.tables[t] if sel.matches(r)]


def _list(net, tokens, opts: IpOptions) -> str:
    sel = _parse_filter(net, tokens, opts)
    return render([_print_route(net, r, sel, opts) for r in _selected(net, sel)], opts)


def _flush(net, tokens, opts: IpOptions) -> str:
    if not tokens:
        raise ToolError('"ip route flush" requires arguments.', 1)
    if tokens.peek() == "cache":  # no IPv4 route cache since Linux 3.6: nothing to do
        tokens.pop()
        return ""
    sel = _parse_filter(net, tokens, opts)
    for r in _selected(net, sel):
        net.tables[r.table].remove(r)
    return ""


def _print_route(net, r: FibRoute, sel: RouteFilter, opts: IpOptions) -> Printed:
    """print_route(): type (unless unicast), destination, via, dev, table (when
    listing all), proto (unless boot), scope (unless global), src, metric,
    flags, metrics; -d prints type, proto and scope always."""
    out = Printed()
    if r.type is not RouteType.RTN_UNICAST or opts.details:
        out.add("type", r.type.keyword, f"{r.type.keyword} ")
    dst = "default" if r.plen == 0 else int_to_ip(r.dst) if r.plen == 32 else f"{int_to_ip(r.dst)}/{r.plen}"
    out.add("dst", dst, f"{dst} ")
    if r.gateway is not None:
        out.add("gateway", int_to_ip(r.gateway), f"via {int_to_ip(r.gateway)} ")
    if r.oif is not None and sel.dev is None:
        out.add("dev", net.devices[r.oif].name, f"dev {net.devices[r.oif].name} ")
    if r.table != RT_TABLE_MAIN and sel.table == 0:
        out.add("table", table_name(r.table), f"table {table_name(r.table)} ")
    if (r.protocol != "boot" or opts.details) and sel.protocol is None:
        out.add("protocol", protocol_name(r.protocol), f"proto {protocol_name(r.protocol)} ")
    if (r.scope != RT_SCOPE_UNIVERSE or opts.details) and sel.scope is None:
        out.add("scope", scope_name(r.scope), f"scope {scope_name(r.scope)} ")
    if r.prefsrc is not None:
        out.add("prefsrc", int_to_ip(r.prefsrc), f"src {int_to_ip(r.prefsrc)} ")
    if r.metric:
        out.add("metric", r.metric, f"metric {r.metric} ")
    out.add("flags", [])
    metrics = {name: value for name, value in (("mtu", r.mtu), ("advmss", r.advmss)) if value is not None}
    if metrics:  # RTA_METRICS in RTAX_* order
        out.add("metrics", [metrics], "".join(f"{name} {value} " for name, value in metrics.items()))
    return out.add(None, None, "\n")

