"""iproute2 `ip` over the mock's configuration: link, addr, route, rule, neigh.

Address changes do what net/ipv4/fib_frontend.c does on this kernel (6.18):
fib_add_ifaddr() installs `local ADDR` in table local at once, and, while the
device is up, the prefix route in main (proto kernel, scope link, src ADDR)
and the subnet broadcast route in local for prefixes shorter than /31. Bringing
a device down removes those routes and its routes in every table
(fib_disable_ip) and flushes its non-permanent neighbours; up re-adds them. A
loopback device brought up with no address gets 127.0.0.1/8 (inetdev_event).
"""
from __future__ import annotations

from ipaddress import IPv4Network

from harness.mockkernel.cmd.args import Args
from harness.mockkernel.net import (NUD_FAILED, NUD_NAMES, NUD_NOARP, NUD_PERMANENT, NUD_REACHABLE,
                                    NUD_STALE, RT_SCOPE_HOST, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE,
                                    ROUTE_TYPES, SCOPE_NAMES, TABLE_NAMES, FibRoute, FibRule, InAddr,
                                    Neighbour, int_to_ip, ip_to_int, prefix_mask, NUD_DELAY, NUD_PROBE)
from harness.mockkernel.wire.ethernet import mac_to_bytes, mac_to_str

NUD_BY_NAME = {"permanent": NUD_PERMANENT, "reachable": NUD_REACHABLE, "stale": NUD_STALE,
               "noarp": NUD_NOARP, "delay": NUD_DELAY, "probe": NUD_PROBE, "failed": NUD_FAILED}
SCOPE_BY_VALUE = {0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere"}


def run(net, argv: list[str], stdin: str | None = None) -> str:
    args = Args(argv)
    while args.peek() and args.peek().startswith("-"):
        option = args.take()
        if option in ("-4", "-s", "-d", "-details", "-stats"):
            continue
        raise args.error(f'Option "{option}" is unknown or not supported on the mock target, try "ip -help".')
    obj = args.take("object")
    for names, handler in ((("link", "l"), _link), (("address", "addr", "a"), _addr),
                           (("route", "ro", "r"), _route), (("rule", "ru"), _rule),
                           (("neighbour", "neighbor", "neigh", "n"), _neigh)):
        if obj in names:
            return handler(net, args)
    raise args.error(f'Object "{obj}" is unknown, try "ip help".')


def _device(net, args: Args, name: str):
    dev = net.dev_by_name(name)
    if dev is None:
        raise args.error(f'Cannot find device "{name}"')
    return dev


def _prefix(args: Args, token: str) -> tuple[int, int]:
    if token == "default":
        return 0, 0
    try:
        network = IPv4Network(token, strict=False)
    except ValueError:
        raise args.error(f'Error: any valid prefix is expected rather than "{token}".') from None
    addr = ip_to_int(token.split("/")[0])
    if addr & ~prefix_mask(network.prefixlen) & 0xFFFFFFFF:
        raise args.error("Error: Invalid prefix for given prefix length.")
    return addr, network.prefixlen


def _address(args: Args, token: str) -> int:
    try:
        return ip_to_int(token)
    except ValueError:
        raise args.error(f'Error: inet address is expected rather than "{token}".') from None


def _table(args: Args, token: str) -> int:
    if token in TABLE_NAMES:
        return TABLE_NAMES[token]
    if token.isdigit():
        return int(token)
    raise args.error(f'Error: argument "{token}" is wrong: "table" value is invalid')


# link ------------------------------------------------------------------------
def _link(net, args: Args) -> str:
    verb = args.take() if args.more() else "show"
    if verb in ("show", "list", "ls"):
        if args.peek() == "dev":
            args.take()
        devs = [_device(net, args, args.take())] if args.more() else list(net.devices.values())
        return "".join(_link_line(d) for d in devs)
    if verb != "set":
        raise args.error(f'Command "{verb}" is unknown or not supported on the mock target, try "ip link help".')
    if args.peek() == "dev":
        args.take()
    dev = _device(net, args, args.take("device"))
    while args.more():
        token = args.take()
        if token == "up":
            set_up(net, dev)
        elif token == "down":
            set_down(net, dev)
        elif token == "mtu":
            mtu = args.take_int("MTU")
            if not 68 <= mtu <= 65535:
                raise args.error("Error: mtu less than device minimum." if mtu < 68
                                 else "Error: mtu greater than device maximum.")
            dev.mtu = mtu
        elif token == "address":
            dev.mac = mac_to_bytes(args.take("address"))
        else:
            raise args.garbage(token)
    return ""


def _link_line(dev) -> str:
    flags = ["LOOPBACK"] if dev.is_loopback else ["BROADCAST", "MULTICAST"]
    if dev.up:
        flags += ["UP", "LOWER_UP"]
    kind = "loopback" if dev.is_loopback else "ether"
    return (f"{dev.ifindex}: {dev.name}: <{','.join(flags)}> mtu {dev.mtu} qdisc noqueue "
            f"state {'UP' if dev.up else 'DOWN'} mode DEFAULT group default qlen 1000\n"
            f"    link/{kind} {mac_to_str(dev.mac)} brd ff:ff:ff:ff:ff:ff\n")


def set_up(net, dev) -> None:
    if dev.up:
        return
    dev.up = True
    if dev.is_loopback and not dev.addrs:
        add_address(net, dev, InAddr(ip_to_int("127.0.0.1"), 8, scope=RT_SCOPE_HOST, label="lo"))
        return
    for ifa in dev.addrs:
        fib_add_ifaddr(net, dev, ifa)


def set_down(net, dev) -> None:
    if not dev.up:
        return
    dev.up = False
    for table in net.tables.values():
        table[:] = [r for r in table if r.oif != dev.ifindex]
    for ifa in dev.addrs:
        _route_local(net, dev, ifa)
    for key in [k for k, n in net.neighbours.items() if n.ifindex == dev.ifindex and n.state != NUD_PERMANENT]:
        del net.neighbours[key]


# addresses ---------------------------------------------------------------------
def add_address(net, dev, ifa: InAddr) -> None:
    ifa.secondary = any(a.network == ifa.network for a in dev.addrs)
    dev.addrs.append(ifa)
    fib_add_ifaddr(net, dev, ifa)


def _route_local(net, dev, ifa: InAddr) -> None:
    local = net.table(255)
    if not any(r.type == "local" and r.dst == ifa.local and r.plen == 32 for r in local):
        local.append(FibRoute(255, ifa.local, 32, "local", dev.ifindex, prefsrc=ifa.local,
                              scope=RT_SCOPE_HOST, protocol="kernel"))


def fib_add_ifaddr(net, dev, ifa: InAddr) -> None:
    _route_local(net, dev, ifa)
    if not dev.up:
        return
    prefix = ifa.local & prefix_mask(ifa.prefixlen)
    if ifa.broadcast is not None and ifa.broadcast != 0xFFFFFFFF:
        _add_route(net, FibRoute(255, ifa.broadcast, 32, "broadcast", dev.ifindex, prefsrc=ifa.local,
                                 scope=RT_SCOPE_LINK, protocol="kernel"))
    if prefix and not ifa.secondary and (prefix != ifa.local or ifa.prefixlen < 32):
        if dev.is_loopback:
            _add_route(net, FibRoute(255, prefix, ifa.prefixlen, "local", dev.ifindex, prefsrc=ifa.local,
                                     scope=RT_SCOPE_HOST, protocol="kernel"))
        else:
            _add_route(net, FibRoute(254, prefix, ifa.prefixlen, "unicast", dev.ifindex, prefsrc=ifa.local,
                                     scope=RT_SCOPE_LINK, protocol="kernel"))
        if ifa.prefixlen < 31:
            _add_route(net, FibRoute(255, prefix | (~prefix_mask(ifa.prefixlen) & 0xFFFFFFFF), 32,
                                     "broadcast", dev.ifindex, prefsrc=ifa.local, scope=RT_SCOPE_LINK,
                                     protocol="kernel"))


def _add_route(net, route: FibRoute) -> None:
    table = net.table(route.table)
    if not any(_same_route(r, route) for r in table):
        table.append(route)


def _same_route(a: FibRoute, b: FibRoute) -> bool:
    return (a.dst, a.plen, a.type, a.oif, a.metric, a.tos) == (b.dst, b.plen, b.type, b.oif, b.metric, b.tos)


def fib_del_ifaddr(net, dev, ifa: InAddr) -> None:
    for table in net.tables.values():
        table[:] = [r for r in table if not (r.oif == dev.ifindex and r.prefsrc == ifa.local
                                              and r.protocol == "kernel")]


def _addr(net, args: Args) -> str:
    verb = args.take() if args.more() else "show"
    if verb in ("show", "list", "ls"):
        if args.peek() == "dev":
            args.take()
        devs = [_device(net, args, args.take())] if args.more() else list(net.devices.values())
        return "".join(_addr_lines(d) for d in devs)
    if verb == "flush":
        if args.peek() == "dev":
            args.take()
        dev = _device(net, args, args.take("device"))
        for ifa in list(dev.addrs):
            fib_del_ifaddr(net, dev, ifa)
        dev.addrs.clear()
        return ""
    if verb not in ("add", "del", "delete", "replace"):
        raise args.error(f'Command "{verb}" is unknown or not supported on the mock target, try "ip addr help".')
    local = plen = dev = broadcast = None
    scope = None
    while args.more():
        token = args.take()
        if token == "dev":
            dev = _device(net, args, args.take("device"))
        elif token in ("brd", "broadcast"):
            value = args.take("broadcast")
            broadcast = value
        elif token == "scope":
            value = args.take("scope")
            if value not in SCOPE_NAMES:
                raise args.error(f'Error: argument "{value}" is wrong: invalid scope value.')
            scope = SCOPE_NAMES[value]
        elif token in ("local",) or local is None:
            text = args.take() if token == "local" else token
            local = _address(args, text.split("/")[0])
            plen = int(text.split("/")[1]) if "/" in text else 32
        else:
            raise args.garbage(token)
    if dev is None or local is None:
        raise args.error('Not enough information: "dev" argument is required.')
    existing = next((a for a in dev.addrs if a.local == local and a.prefixlen == plen), None)
    if verb in ("del", "delete"):
        if existing is None:
            raise args.error("Error: ipv4: Address not found.")
        dev.addrs.remove(existing)
        fib_del_ifaddr(net, dev, existing)
        return ""
    if existing is not None:
        if verb == "replace":
            return ""
        raise args.error("Error: ipv4: Address already assigned.")
    if scope is None:
        scope = RT_SCOPE_HOST if local >> 24 == 127 else RT_SCOPE_UNIVERSE
    brd = None
    if broadcast == "+":
        brd = local | (~prefix_mask(plen) & 0xFFFFFFFF)
    elif broadcast is not None:
        brd = _address(args, broadcast)
    add_address(net, dev, InAddr(local, plen, brd, scope, dev.name))
    return ""


def _addr_lines(dev) -> str:
    out = _link_line(dev)
    for ifa in dev.addrs:
        brd = f" brd {int_to_ip(ifa.broadcast)}" if ifa.broadcast is not None else ""
        secondary = " secondary" if ifa.secondary else ""
        out += (f"    inet {int_to_ip(ifa.local)}/{ifa.prefixlen}{brd} scope "
                f"{SCOPE_BY_VALUE.get(ifa.scope, ifa.scope)}{secondary} {dev.name}\n"
                "       valid_lft forever preferred_lft forever\n")
    return out


# routes ------------------------------------------------------------------------
def _route(net, args: Args) -> str:
    verb = args.take() if args.more() else "show"
    if verb in ("show", "list", "ls"):
        return _route_show(net, args)
    if verb == "flush":
        table = RT_TABLE_MAIN_ID
        if args.peek() == "table":
            args.take()
            table = _table(args, args.take())
        net.table(table).clear()
        return ""
    if verb not in ("add", "del", "delete", "replace", "change", "append"):
        raise args.error(f'Command "{verb}" is unknown or not supported on the mock target, try "ip route help".')
    route = _parse_route(net, args)
    table = net.table(route.table)
    matches = [r for r in table if (r.dst, r.plen, r.tos) == (route.dst, route.plen, route.tos)
               and (verb not in ("del", "delete") or r.metric == route.metric)]
    if verb in ("del", "delete"):
        if not matches:
            raise args.error("RTNETLINK answers: No such process")
        table.remove(matches[0])
    elif verb == "add":
        if any(r.metric == route.metric for r in matches):
            raise args.error("RTNETLINK answers: File exists")
        table.append(route)
    elif verb == "append":
        table.append(route)
    else:
        same_metric = [r for r in matches if r.metric == route.metric]
        if verb == "change" and not same_metric:
            raise args.error("RTNETLINK answers: No such file or directory")
        for old in same_metric:
            table.remove(old)
        table.append(route)
    return ""


RT_TABLE_MAIN_ID = 254


def _parse_route(net, args: Args) -> FibRoute:
    route_type, prefix, dev, via, src = "unicast", None, None, None, None
    table, metric, protocol, scope, mtu = RT_TABLE_MAIN_ID, 0, "boot", None, None
    while args.more():
        token = args.take()
        if token in ROUTE_TYPES and prefix is None:
            route_type = token
        elif token == "via":
            value = args.take("gateway")
            via = _address(args, value if value != "inet" else args.take("gateway"))
        elif token in ("dev", "oif"):
            dev = _device(net, args, args.take("device"))
        elif token == "src":
            src = _address(args, args.take("source"))
        elif token in ("metric", "preference", "priority"):
            metric = args.take_int("metric")
        elif token == "table":
            table = _table(args, args.take("table"))
        elif token == "proto":
            protocol = args.take("protocol")
        elif token == "scope":
            value = args.take("scope")
            if value not in SCOPE_NAMES:
                raise args.error(f'Error: argument "{value}" is wrong: invalid scope value.')
            scope = SCOPE_NAMES[value]
        elif token == "mtu":
            if args.peek() == "lock":
                args.take()
            mtu = args.take_int("mtu")
        elif token == "to":
            prefix = _prefix(args, args.take("prefix"))
        elif prefix is None:
            prefix = _prefix(args, token)
        else:
            raise args.garbage(token)
    if prefix is None:
        raise args.error('Error: a route destination (prefix or "default") is required.')
    if route_type in ("local", "broadcast") and "table" not in args.argv:
        table = 255
    if route_type == "unicast":
        if via is None and dev is None:
            raise args.error("Error: Nexthop device is required.")
        if via is not None:
            dev = _gateway_dev(net, args, via, dev)
        if dev is not None and not dev.up:
            raise args.error("Error: Nexthop device is not up.")
    if scope is None:
        scope = RT_SCOPE_HOST if route_type == "local" else \
            RT_SCOPE_LINK if (route_type in ("unicast", "broadcast") and via is None) else RT_SCOPE_UNIVERSE
    return FibRoute(table, prefix[0], prefix[1], route_type, dev.ifindex if dev else None, via, src,
                    metric, scope, protocol, mtu=mtu)


def _gateway_dev(net, args: Args, via: int, dev):
    """fib_check_nh(): the gateway must be reachable through a link-scope route."""
    for route in net.tables[RT_TABLE_MAIN_ID]:
        if route.gateway is None and route.oif is not None and route.contains(via):
            candidate = net.devices[route.oif]
            if dev is None or dev.ifindex == candidate.ifindex:
                return candidate
    raise args.error("Error: Nexthop has invalid gateway.")


def _route_show(net, args: Args) -> str:
    tables = [RT_TABLE_MAIN_ID]
    while args.more():
        token = args.take()
        if token == "table":
            value = args.take("table")
            tables = sorted(net.tables, reverse=True) if value == "all" else [_table(args, value)]
        else:
            raise args.garbage(token)
    lines = []
    for table_id in tables:
        for route in sorted(net.tables.get(table_id, []), key=lambda r: (r.dst, r.plen, r.metric)):
            lines.append(_route_line(net, route, show_table=table_id != RT_TABLE_MAIN_ID))
    return "".join(lines)


def _route_line(net, route: FibRoute, show_table: bool) -> str:
    dst = "default" if route.plen == 0 and route.dst == 0 else (
        int_to_ip(route.dst) if route.plen == 32 else f"{int_to_ip(route.dst)}/{route.plen}")
    parts = [dst] if route.type == "unicast" else [route.type, dst]
    if route.gateway is not None:
        parts += ["via", int_to_ip(route.gateway)]
    if route.oif is not None:
        parts += ["dev", net.devices[route.oif].name]
    if show_table:
        parts += ["table", next((n for n, v in TABLE_NAMES.items() if v == route.table), str(route.table))]
    if route.protocol != "boot":
        parts += ["proto", route.protocol]
    if route.scope != RT_SCOPE_UNIVERSE:
        parts += ["scope", SCOPE_BY_VALUE.get(route.scope, str(route.scope))]
    if route.prefsrc is not None:
        parts += ["src", int_to_ip(route.prefsrc)]
    if route.metric:
        parts += ["metric", str(route.metric)]
    if route.mtu:
        parts += ["mtu", str(route.mtu)]
    return " ".join(parts) + " \n"


# rules -------------------------------------------------------------------------
def _rule(net, args: Args) -> str:
    verb = args.take() if args.more() else "show"
    if verb in ("show", "list", "ls"):
        return "".join(_rule_line(r) for r in sorted(net.rules, key=lambda r: r.priority))
    if verb not in ("add", "del", "delete"):
        raise args.error(f'Command "{verb}" is unknown or not supported on the mock target, try "ip rule help".')
    rule = FibRule(priority=-1)
    while args.more():
        token = args.take()
        if token == "not":
            rule.invert = True
        elif token == "from":
            value = args.take("prefix")
            rule.src = None if value == "all" else _prefix(args, value)
        elif token == "to":
            value = args.take("prefix")
            rule.dst = None if value == "all" else _prefix(args, value)
        elif token in ("iif", "dev"):
            rule.iif = args.take("device")
        elif token == "oif":
            rule.oif = args.take("device")
        elif token == "fwmark":
            mark, _, mask = args.take("fwmark").partition("/")
            rule.fwmark, rule.fwmask = int(mark, 0), int(mask, 0) if mask else 0xFFFFFFFF
        elif token == "tos":
            rule.tos = int(args.take("tos"), 0)
        elif token in ("priority", "pref", "preference"):
            rule.priority = args.take_int("priority")
        elif token in ("table", "lookup"):
            rule.table = _table(args, args.take("table"))
        elif token in ("blackhole", "unreachable", "prohibit", "nop"):
            rule.action = token
        elif token == "goto":
            rule.action, rule.goto = "goto", args.take_int("goto target")
        elif token == "suppress_prefixlength":
            rule.suppress_prefixlength = args.take_int("prefix length")
        else:
            raise args.garbage(token)
    if verb == "add":
        if rule.priority < 0:
            # fib_default_rule_pref(): one below the first rule after priority 0
            after_local = [r.priority for r in sorted(net.rules, key=lambda r: r.priority) if r.priority > 0]
            rule.priority = after_local[0] - 1 if after_local else 0
        net.rules.append(rule)
        return ""
    for existing in sorted(net.rules, key=lambda r: r.priority):
        if (rule.priority < 0 or existing.priority == rule.priority) and _rule_selectors(existing) == \
                _rule_selectors(rule):
            net.rules.remove(existing)
            return ""
    raise args.error("RTNETLINK answers: No such file or directory")


def _rule_selectors(rule: FibRule) -> tuple:
    return (rule.src, rule.dst, rule.iif, rule.oif, rule.fwmark, rule.tos, rule.invert)


def _rule_line(rule: FibRule) -> str:
    parts = [f"{rule.priority}:\t"]
    words = ["not"] if rule.invert else []
    words += ["from", "all" if rule.src is None else f"{int_to_ip(rule.src[0])}" +
              (f"/{rule.src[1]}" if rule.src[1] != 32 else "")]
    if rule.dst is not None:
        words += ["to", f"{int_to_ip(rule.dst[0])}" + (f"/{rule.dst[1]}" if rule.dst[1] != 32 else "")]
    if rule.fwmark is not None:
        words += ["fwmark", hex(rule.fwmark) + (f"/{hex(rule.fwmask)}" if rule.fwmask != 0xFFFFFFFF else "")]
    if rule.iif:
        words += ["iif", rule.iif]
    if rule.oif:
        words += ["oif", rule.oif]
    if rule.action == "lookup":
        words += ["lookup", next((n for n, v in TABLE_NAMES.items() if v == rule.table), str(rule.table))]
    elif rule.action == "goto":
        words += ["goto", str(rule.goto)]
    else:
        words.append(rule.action)
    return parts[0] + " ".join(words) + "\n"


# neighbours --------------------------------------------------------------------
def _neigh(net, args: Args) -> str:
    verb = args.take() if args.more() else "show"
    if verb in ("show", "list", "ls", "flush"):
        dev, addr = None, None
        while args.more():
            token = args.take()
            if token == "dev":
                dev = _device(net, args, args.take("device"))
            elif token in ("all",):
                continue
            else:
                addr = _address(args, token)
        entries = [n for n in net.neighbours.values()
                   if (dev is None or n.ifindex == dev.ifindex) and (addr is None or n.ip == addr)]
        if verb == "flush":
            for n in entries:
                if n.state != NUD_PERMANENT:
                    del net.neighbours[(n.ifindex, n.ip)]
            return ""
        return "".join(_neigh_line(net, n, show_dev=dev is None) for n in entries)
    if verb not in ("add", "replace", "change", "del", "delete"):
        raise args.error(f'Command "{verb}" is unknown or not supported on the mock target, try "ip neigh help".')
    addr, lladdr, dev, state = None, None, None, NUD_PERMANENT
    while args.more():
        token = args.take()
        if token == "lladdr":
            lladdr = mac_to_bytes(args.take("lladdr"))
        elif token == "dev":
            dev = _device(net, args, args.take("device"))
        elif token == "nud":
            value = args.take("state")
            if value not in NUD_BY_NAME:
                raise args.error(f'Error: argument "{value}" is wrong: nud state is bad')
            state = NUD_BY_NAME[value]
        elif token == "to" or addr is None:
            addr = _address(args, args.take() if token == "to" else token)
        else:
            raise args.garbage(token)
    if dev is None or addr is None:
        raise args.error("Device and destination are required arguments.")
    key = (dev.ifindex, addr)
    if verb in ("del", "delete"):
        if key not in net.neighbours:
            raise args.error("RTNETLINK answers: No such file or directory")
        del net.neighbours[key]
        return ""
    if verb == "add" and key in net.neighbours:
        raise args.error("RTNETLINK answers: File exists")
    if verb == "change" and key not in net.neighbours:
        raise args.error("RTNETLINK answers: No such file or directory")
    if lladdr is None and state != NUD_FAILED:
        raise args.error("RTNETLINK answers: Invalid argument")
    net.neighbours[key] = Neighbour(addr, dev.ifindex, lladdr, state, net.clock.now)
    return ""


def _neigh_line(net, n: Neighbour, show_dev: bool) -> str:
    parts = [int_to_ip(n.ip)]
    if show_dev:
        parts += ["dev", net.devices[n.ifindex].name]
    if n.lladdr is not None:
        parts += ["lladdr", mac_to_str(n.lladdr)]
    parts.append(NUD_NAMES.get(n.state, "NONE"))
    return " ".join(parts) + " \n"
