"""`ip -6 route` (iproute2 6.1 ip/iproute.c for AF_INET6; the kernel side is
ipv6/route.py): add/append/prepend/replace/change/del [TYPE] PREFIX|default
[via GW] [dev X] [metric N] [table T] [proto P] [mtu N]; show/flush
[table T|all] [dev X] [proto P] [type T] [PREFIX].

iproute_modify() for IPv6: proto boot on add (none on delete), table local
for local and anycast routes, else main; the scope iproute2 sends is ignored
by the kernel, which prints every IPv6 route with scope global. A listing
prints each route as print_route() does for AF_INET6: type (unless
unicast), destination, via, dev, table (listing all), proto (unless boot),
metric (always: RTA_PRIORITY), `expires Nsec` while a lifetime runs (the
kernel's rta_expires in clock_t, 100 a second), metrics (mtu, hoplimit), pref;
a selector given is left out
of each line; -d adds type, proto and "scope global".
"""
from __future__ import annotations

import ipaddress

from harness.mockkernel.cmd.args import ToolError, c_uint, not_modelled
from harness.mockkernel.cmd.iputils import (IpOptions, Printed, device, duparg2, get_value, invarg, matches,
                                            protocol_id, protocol_name, render, route_type, table_id,
                                            table_name, unknown_command)
from harness.mockkernel.core.rtnetlink import NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE
from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.ipv6 import addrconf, route
from harness.mockkernel.ipv6.ip6_fib import PREF_NAMES, Fib6Info
from harness.mockkernel.ipv6.netns import RT6_TABLE_LOCAL, RT6_TABLE_MAIN
from harness.mockkernel.net import RouteType
from harness.mockkernel.wire.ipv6 import ANY, addr_str

MODIFY_FLAGS = (("add", NLM_F_CREATE | NLM_F_EXCL), ("change", NLM_F_REPLACE), ("chg", NLM_F_REPLACE),
                ("replace", NLM_F_CREATE | NLM_F_REPLACE), ("prepend", NLM_F_CREATE),
                ("append", NLM_F_CREATE | NLM_F_APPEND))
MODELLED_TYPES = (RouteType.RTN_UNICAST, RouteType.RTN_LOCAL, RouteType.RTN_ANYCAST, RouteType.RTN_MULTICAST,
                  RouteType.RTN_BLACKHOLE, RouteType.RTN_UNREACHABLE, RouteType.RTN_PROHIBIT,
                  RouteType.RTN_THROW)
GET_NOT_MODELLED = ("tos", "dsfield", "vrf", "sport", "dport", "ipproto", "uid", "connected", "fibmatch",
                    "as", "nexthop", "nhid")
MODIFY_NOT_MODELLED = ("src", "as", "from", "tos", "dsfield", "expires", "onlink", "pervasive", "features",
                       "quickack", "congctl", "rtt", "rto_min", "window", "cwnd", "initcwnd", "initrwnd",
                       "rttvar", "ssthresh", "realms", "mpath", "mp", "vrf", "pref", "encap", "advmss",
                       "ttl-propagate", "nhid", "hoplimit", "reordering", "fastopen_no_cookie",
                       "scope")
LIST_NOT_MODELLED = ("iif", "mark", "metric", "priority", "preference", "via", "src", "realms", "from",
                     "root", "match", "tos", "dsfield", "cached", "cloned", "vrf", "scope")
# clock_t ticks a second (the kernel's rta_expires, and iproute2's get_user_hz())
USER_HZ = 100
USAGE = ToolError("Usage: ip route { add | del | change | append | replace } ROUTE", 255)
NO_TABLE = ToolError("Error: ipv6: FIB table does not exist.\nDump terminated", 2)


def do_iproute6(net, tokens, opts: IpOptions) -> str:
    if not tokens:
        return _list(net, tokens, opts)
    verb = tokens.pop()
    for name, flags in MODIFY_FLAGS:
        if verb == name or (name != "chg" and matches(verb, name)):
            return _modify(net, tokens, flags)
    if matches(verb, "delete"):
        return _modify(net, tokens, None)
    if matches(verb, "list") or matches(verb, "show") or matches(verb, "lst"):
        return _list(net, tokens, opts)
    if matches(verb, "flush"):
        return _flush(net, tokens)
    if matches(verb, "get"):
        return _get(net, tokens, opts)
    if any(matches(verb, v) for v in ("test", "restore", "showdump", "save", "help")):
        raise not_modelled(f"ip -6 route {verb}")
    raise unknown_command(verb, "route")


def get_prefix6(text: str) -> tuple[bytes, int]:
    """get_prefix() for AF_INET6: "default", "all" and "any" are ::/0; no length means /128."""
    if text in ("default", "all", "any"):
        return bytes(16), 0
    addr, slash, length = text.partition("/")
    plen = c_uint(length) if slash else 128
    try:
        value = ipaddress.IPv6Address(addr).packed
    except ValueError:
        value = None
    if value is None or plen is None or plen > 128:
        raise ToolError(f'Error: inet6 prefix is expected rather than "{text}".', 1)
    return value, plen


def get_addr6(text: str) -> bytes:
    try:
        return ipaddress.IPv6Address(text).packed
    except ValueError:
        raise ToolError(f'Error: inet6 address is expected rather than "{text}".', 1) from None


def _parse_modify(net, tokens) -> route.Fib6Config:
    cfg = route.Fib6Config(bytes(16), 0)
    dst = table = None
    while tokens:
        token = tokens.pop()
        if token == "via":
            if cfg.gateway is not None:
                raise invarg("use nexthop syntax to specify multiple via", token)
            value = tokens.pop()
            cfg.gateway = get_addr6(tokens.pop() if value == "inet6" else value)
        elif any(matches(token, k) for k in ("metric", "priority", "preference")):
            cfg.metric = get_value(tokens, c_uint, '"metric" value is invalid')
        elif matches(token, "table"):
            table = get_value(tokens, table_id, '"table" value is invalid')
        elif token in ("dev", "oif"):
            cfg.ifindex = device(net, tokens.pop()).ifindex
        elif matches(token, "protocol"):
            cfg.protocol = protocol_name(str(get_value(tokens, protocol_id, '"protocol" value is invalid')))
        elif token == "mtu":
            if tokens.peek() == "lock":
                raise not_modelled("ip -6 route ... mtu lock")
            cfg.mtu = get_value(tokens, c_uint, '"mtu" value is invalid')
        elif token == "nexthop":
            cfg.nexthops = _parse_nexthops(net, tokens)
        elif token in MODIFY_NOT_MODELLED:
            raise not_modelled(f"ip -6 route option {token}")
        else:
            if token == "to":
                token = tokens.pop()
            if not token[:1].isdigit() and (rtype := route_type(token)) is not None:
                if rtype not in MODELLED_TYPES:
                    raise not_modelled(f"route type {rtype.keyword}")
                cfg.type = rtype
                token = tokens.pop()
            if dst is not None:
                raise duparg2("to", token)
            dst = get_prefix6(token)
    if dst is None:
        raise USAGE
    cfg.dst, cfg.dst_len = dst
    local = cfg.type in (RouteType.RTN_LOCAL, RouteType.RTN_ANYCAST)
    # fib6_new_table(): table 0 (unspec) is main
    cfg.table = (RT6_TABLE_LOCAL if local else RT6_TABLE_MAIN) if table is None else table or RT6_TABLE_MAIN
    return cfg


def _parse_nexthops(net, tokens) -> list[route.Fib6Config]:
    """parse_nexthops(): the rest of the line is `nexthop` [via GW] [dev X]
    [weight 1-256] (rtnh_hops = weight - 1), one or more times."""
    nexthops = []
    while True:
        if not tokens:
            raise ToolError('Error: unexpected end of line after "nexthop"', 255)
        nexthop = route.Fib6Config(bytes(16), 0, gateway=None)
        while tokens and tokens.peek() != "nexthop":
            token = tokens.pop()
            if token == "via":
                value = tokens.pop()
                nexthop.gateway = get_addr6(tokens.pop() if value == "inet6" else value)
            elif token == "dev":
                nexthop.ifindex = device(net, tokens.pop()).ifindex
            elif token == "weight":
                nexthop.weight = get_value(tokens, _weight, '"weight" is invalid')
            elif token in ("onlink", "realms", "encap", "as"):
                raise not_modelled(f"ip -6 route nexthop option {token}")
            else:
                raise ToolError(f'Error: "nexthop" or end of line is expected instead of "{token}"', 255)
        nexthops.append(nexthop)
        if not tokens:
            return nexthops
        tokens.pop()


def _weight(text: str) -> int | None:
    value = c_uint(text)
    return value if value is not None and 0 < value <= 256 else None


def _modify(net, tokens, flags: int | None) -> str:
    """`flags` None is a delete."""
    cfg = _parse_modify(net, tokens)
    if flags is None:
        route.ip6_route_del(net, cfg)
    else:
        cfg.protocol = cfg.protocol or "boot"
        route.ip6_route_add(net, cfg, flags)
    return ""


class RouteFilter:
    """iproute_list_flush_or_save()'s selectors; table 0 is all tables."""

    def __init__(self) -> None:
        self.table = RT6_TABLE_MAIN
        self.dev: int | None = None
        self.protocol: str | None = None
        self.type: RouteType | None = None
        self.prefix: tuple[bytes, int] | None = None

    def matches(self, f6i: Fib6Info) -> bool:
        """A multipath route has no RTA_OIF, which a dev selector requires."""
        dev_ok = self.dev is None or (f6i.siblings is None and self.dev == f6i.ifindex)
        return (dev_ok and self.protocol in (None, protocol_name(f6i.protocol))
                and self.type in (None, f6i.type) and self.prefix in (None, (f6i.dst, f6i.dst_len)))


def _parse_filter(net, tokens) -> RouteFilter:
    sel = RouteFilter()
    while tokens:
        token = tokens.pop()
        if matches(token, "table"):
            value = tokens.pop()
            if value == "cache":
                raise not_modelled("ip -6 route show table cache")
            sel.table = 0 if value == "all" else table_id(value)
            if sel.table is None:
                raise invarg("table id value is invalid", value)
        elif matches(token, "protocol"):
            sel.protocol = protocol_name(str(get_value(tokens, protocol_id, 'invalid "protocol"')))
        elif matches(token, "type"):
            sel.type = get_value(tokens, route_type, "node type value is invalid")
        elif token in ("dev", "oif"):
            sel.dev = device(net, tokens.pop()).ifindex
        elif token in LIST_NOT_MODELLED:
            raise not_modelled(f"ip -6 route selector {token}")
        else:
            if token in ("exact", "to"):
                token = tokens.pop()
            sel.prefix = get_prefix6(token)
    if sel.table and sel.table not in net.ipv6.fib_tables:
        raise NO_TABLE
    return sel


def _selected(net, sel: RouteFilter) -> list[Fib6Info]:
    """inet6_dump_fib(): the tables by hash bucket (id mod 256), each walked in
    fib6_walk() order; an ECMP group is one route, dumped at its first member
    (fib6_dump_node() skips the siblings)."""
    tables = net.ipv6.fib_tables
    ids = sorted(tables, key=lambda t: t & 0xFF) if sel.table == 0 else [sel.table]
    return [f6i for t in ids for f6i in tables[t]
            if (f6i.siblings is None or f6i is f6i.siblings[0]) and sel.matches(f6i)]


def _list(net, tokens, opts: IpOptions) -> str:
    sel = _parse_filter(net, tokens)
    return render([_print_route(net, f6i, sel, opts) for f6i in _selected(net, sel)], opts)


def _flush(net, tokens) -> str:
    if not tokens:
        raise ToolError('"ip route flush" requires arguments.', 1)
    sel = _parse_filter(net, tokens)
    for listed in _selected(net, sel):
        for f6i in listed.siblings or (listed,):
            route.ip6_del_rt(net, f6i)
    return ""


def _print_route(net, f6i: Fib6Info, sel: RouteFilter, opts: IpOptions) -> Printed:
    out = Printed()
    if f6i.type is not RouteType.RTN_UNICAST or opts.details:
        out.add("type", f6i.type.keyword, f"{f6i.type.keyword} ")
    dst = "default" if f6i.dst_len == 0 else addr_str(f6i.dst) if f6i.dst_len == 128 else \
        f"{addr_str(f6i.dst)}/{f6i.dst_len}"
    out.add("dst", dst, f"{dst} ")
    if f6i.siblings is None:
        if f6i.gateway is not None:
            out.add("gateway", addr_str(f6i.gateway), f"via {addr_str(f6i.gateway)} ")
        if sel.dev is None:
            name = net.devices[f6i.ifindex].name
            out.add("dev", name, f"dev {name} ")
    if f6i.table != RT6_TABLE_MAIN and sel.table == 0:
        out.add("table", table_name(f6i.table), f"table {table_name(f6i.table)} ")
    if (f6i.protocol != "boot" or opts.details) and sel.protocol is None:
        out.add("protocol", protocol_name(f6i.protocol), f"proto {protocol_name(f6i.protocol)} ")
    if opts.details:
        out.add("scope", "global", "scope global ")
    out.add("metric", f6i.metric, f"metric {f6i.metric} ")
    out.add("flags", [])
    if f6i.expires is not None and (left := int((f6i.expires - net.clock.now) * USER_HZ)) > 0:
        out.add("expires", left // USER_HZ, f"expires {left // USER_HZ}sec ")
    _print_metrics(out, f6i)
    out.add("pref", PREF_NAMES[f6i.pref], f"pref {PREF_NAMES[f6i.pref]}")
    if f6i.siblings is not None:
        out.add("nexthops", [{"gateway": addr_str(nh.gateway), "dev": net.devices[nh.ifindex].name,
                              "weight": nh.weight, "flags": []} for nh in f6i.siblings],
                "".join(f"\n\tnexthop via {addr_str(nh.gateway)} dev {net.devices[nh.ifindex].name} "
                        f"weight {nh.weight} " for nh in f6i.siblings))
    return out.add(None, None, "\n")


def _print_metrics(out: Printed, f6i: Fib6Info) -> None:
    """print_rta_metrics(): RTAX_MTU, then RTAX_HOPLIMIT, as iproute2 orders them."""
    metrics = {name: value for name, value in (("mtu", f6i.mtu), ("hoplimit", f6i.hoplimit)) if value is not None}
    if metrics:
        out.add("metrics", [metrics], "".join(f"{name} {value} " for name, value in metrics.items()))


def _get(net, tokens, opts: IpOptions) -> str:
    """inet6_rtm_getroute(): the input route with `iif`, else the output
    route, for a flow with the source and mark given (an ECMP route's nexthop
    by the hash of those fields), and the source ip6_route_get_saddr() picks
    (the route's preferred source, else ipv6_dev_get_saddr() on its device);
    printed as print_route() prints
    the answer: the destination as given, `from` (:: unless given), the
    route's type, table, proto, metric, `iif` and pref. A failed lookup is the
    dst's errno."""
    daddr = saddr = iif = oif = None
    mark = 0
    while tokens:
        token = tokens.pop()
        if token == "from":
            saddr = get_addr6(tokens.pop())
        elif token == "mark":
            mark = get_value(tokens, c_uint, "invalid mark value")
        elif token in ("iif", "oif"):
            dev = device(net, tokens.pop())
            iif, oif = (dev, oif) if token == "iif" else (iif, dev)
        elif token in GET_NOT_MODELLED:
            raise not_modelled(f"ip -6 route get {token}")
        else:
            if token == "to":
                token = tokens.pop()
            if daddr is not None:
                raise duparg2("to", token)
            daddr = get_addr6(token)
    if daddr is None:
        raise ToolError("need at least a destination address", 1)
    rt = route.ip6_route_input(net, daddr, iif, saddr or ANY, mark) if iif is not None else \
        route.ip6_route_output(net, daddr, oif.ifindex if oif is not None else None, saddr or ANY, mark)
    if rt.error:
        raise RtnlError(rt.error)
    f6i = rt.f6i
    out = Printed()
    if f6i.type is not RouteType.RTN_UNICAST:
        out.add("type", f6i.type.keyword, f"{f6i.type.keyword} ")
    out.add("dst", addr_str(daddr), f"{addr_str(daddr)} ")
    out.add("from", addr_str(saddr or ANY), f"from {addr_str(saddr or ANY)} ")
    if rt.gateway is not None:
        out.add("gateway", addr_str(rt.gateway), f"via {addr_str(rt.gateway)} ")
    out.add("dev", rt.dev.name, f"dev {rt.dev.name} ")
    if f6i.table != RT6_TABLE_MAIN:
        out.add("table", table_name(f6i.table), f"table {table_name(f6i.table)} ")
    if f6i.protocol != "boot":
        out.add("protocol", protocol_name(f6i.protocol), f"proto {protocol_name(f6i.protocol)} ")
    if iif is None:
        prefsrc = f6i.prefsrc or addrconf.ipv6_dev_get_saddr(net, rt.dev, daddr)
        if prefsrc is not None:
            out.add("prefsrc", addr_str(prefsrc), f"src {addr_str(prefsrc)} ")
    out.add("metric", f6i.metric, f"metric {f6i.metric} ")
    out.add("flags", [])
    _print_metrics(out, f6i)
    if iif is not None:
        out.add("iif", iif.name, f"iif {iif.name} ")
    out.add("pref", PREF_NAMES[f6i.pref], f"pref {PREF_NAMES[f6i.pref]}")
    return render([out.add(None, None, "\n")], opts)
