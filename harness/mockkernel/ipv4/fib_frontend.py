"""IPv4 routing configuration (net/ipv4/fib_frontend.c, with the fib_trie.c and
fib_semantics.c parts a route request reaches): the routes an address brings,
the routes a device's state changes, and `ip route add/del`.

- fib_add_ifaddr() / fib_del_ifaddr(): the kernel's own routes for an address
  (fib_magic()). This kernel adds no broadcast route for the network address,
  only for the subnet broadcast (prefixes shorter than /31) and for an
  explicitly assigned `brd`.
- fib_inetaddr_event(): what devinet.py's address changes mean for the FIB.
- fib_netdev_event(): a device coming up re-adds its addresses' routes; going
  down removes every route through it except host-scoped ones and flushes all
  its neighbours (fib_disable_ip()).
- routes (inet_rtm_newroute/delroute, fib_semantics.c fib_create_info()
  checks, then fib_trie.py's placement: fib_table_insert/delete with the
  NLM_F_* semantics of add/append/prepend/replace/change), each change
  followed by rt_cache_flush() as fib_table_insert()/fib_table_delete() do.
Left out: multipath, nexthop objects, onlink, route tos, VRF.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass

from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.core.rtnetlink import (NETDEV_DOWN, NETDEV_UNREGISTER, NETDEV_UP, NLM_F_APPEND,
                                              NLM_F_CREATE, neigh_ifdown, register_netdevice_notifier)
from harness.mockkernel.ipv4 import route as fib
from harness.mockkernel.ipv4.devinet import inet_ifa_byprefix, inet_ifa_match, register_inetaddr_notifier
from harness.mockkernel.ipv4.fib_trie import FibTable
from harness.mockkernel.ipv4.route import is_zeronet
from harness.mockkernel.net import (
    RT_SCOPE_HOST,
    RT_SCOPE_LINK,
    RT_SCOPE_NOWHERE,
    RT_TABLE_DEFAULT,
    RT_TABLE_LOCAL,
    RT_TABLE_MAIN,
    RTN_BLACKHOLE,
    RTN_BROADCAST,
    RTN_LOCAL,
    RTN_PROHIBIT,
    RTN_THROW,
    RTN_UNICAST,
    RTN_UNREACHABLE,
    FibNh,
    FibRoute,
    InAddr,
    Net,
    NetDevice,
    RouteType,
    prefix_mask,
)

# fib_props[]: the least scope a route type allows; the error types take no nexthop
TYPE_MIN_SCOPE = {RTN_UNICAST: 0, RTN_LOCAL: RT_SCOPE_HOST, RTN_BROADCAST: RT_SCOPE_LINK,
                  RTN_BLACKHOLE: 0, RTN_UNREACHABLE: 0, RTN_PROHIBIT: 0, RTN_THROW: 0}
ERROR_TYPES = (RTN_BLACKHOLE, RTN_UNREACHABLE, RTN_PROHIBIT, RTN_THROW)


def fib_disable_ip(net: Net, dev: NetDevice, force: bool) -> None:
    """fib_sync_down_dev() + fib_flush(): routes through `dev` die, except (when
    not forced) those whose nexthop is host-scoped (added with scope host, such
    as the local routes); then arp_ifdown() flushes every neighbour on `dev`."""
    for table in net.tables.values():
        table.flush(lambda r: r.oif == dev.ifindex and (force or r.scope != RT_SCOPE_HOST))
    fib.rt_cache_flush(net)
    neigh_ifdown(net, net.arp_tbl, dev)


def _fib_magic(net: Net, add: bool, rtype: RouteType, dst: int, plen: int, dev: NetDevice, prim: InAddr) -> None:
    """fib_magic(): the kernel's own route for an address (proto kernel, src the
    subnet's primary). Its errors are ignored, as the kernel ignores them."""
    table = RT_TABLE_MAIN if rtype is RTN_UNICAST else RT_TABLE_LOCAL
    scope = RT_SCOPE_HOST if rtype is RTN_LOCAL else RT_SCOPE_LINK
    route = FibRoute(table, dst, plen, rtype, oif=dev.ifindex, prefsrc=prim.local, scope=scope,
                     protocol="kernel")
    try:
        if add:
            fib_table_insert(net, route, NLM_F_CREATE | NLM_F_APPEND)
        else:
            fib_table_delete(net, RouteMatch(route, type=rtype, scope=scope, prefsrc=prim.local,
                                             protocol="kernel"))
    except RtnlError:
        pass


def fib_add_ifaddr(net: Net, dev: NetDevice, ifa: InAddr) -> None:
    prim = inet_ifa_byprefix(dev, ifa.local, ifa.prefixlen) if ifa.secondary else ifa
    if prim is None:
        return
    mask = prefix_mask(ifa.prefixlen)
    prefix = ifa.local & mask
    _fib_magic(net, True, RTN_LOCAL, ifa.local, 32, dev, prim)
    if not dev.up:
        return
    if ifa.broadcast and ifa.broadcast != 0xFFFFFFFF:
        _fib_magic(net, True, RTN_BROADCAST, ifa.broadcast, 32, dev, prim)
    if not is_zeronet(prefix) and not ifa.secondary and (prefix != ifa.local or ifa.prefixlen < 32):
        _fib_magic(net, True, RTN_LOCAL if dev.is_loopback else RTN_UNICAST, prefix, ifa.prefixlen, dev, prim)
        if ifa.prefixlen < 31:
            _fib_magic(net, True, RTN_BROADCAST, prefix | ~mask & 0xFFFFFFFF, 32, dev, prim)


def fib_del_ifaddr(net: Net, dev: NetDevice, ifa: InAddr) -> None:
    """Remove the routes `ifa` brought, keeping those another address on the
    device (with the same preferred source) still needs."""
    mask = prefix_mask(ifa.prefixlen)
    brd, any_ = ifa.local | ~mask & 0xFFFFFFFF, ifa.local & mask
    subnet = False
    prim = ifa
    if ifa.secondary:
        prim = inet_ifa_byprefix(dev, any_, ifa.prefixlen)
        if prim is None:
            return
    elif not is_zeronet(any_) and (any_ != ifa.local or ifa.prefixlen < 32):
        _fib_magic(net, False, RTN_LOCAL if dev.is_loopback else RTN_UNICAST, any_, ifa.prefixlen, dev, prim)
        subnet = True
    kept = _addresses_still_needing(dev, ifa, prim)
    if "brd" not in kept:
        _fib_magic(net, False, RTN_BROADCAST, ifa.broadcast or 0, 32, dev, prim)
    if subnet and ifa.prefixlen < 31:
        if "brd1" not in kept:
            _fib_magic(net, False, RTN_BROADCAST, brd, 32, dev, prim)
        if "brd0" not in kept:
            _fib_magic(net, False, RTN_BROADCAST, any_, 32, dev, prim)
    if "local" not in kept:
        _fib_magic(net, False, RTN_LOCAL, ifa.local, 32, dev, prim)
        if _addr_type(net, RT_TABLE_LOCAL, ifa.local) is not RTN_LOCAL:
            fib_sync_down_addr(net, ifa.local)


def _addresses_still_needing(dev: NetDevice, ifa: InAddr, prim: InAddr) -> set[str]:
    """fib_del_ifaddr()'s scan: which of ifa's local (LOCAL_OK), broadcast
    (BRD_OK), subnet broadcast (BRD1_OK) and network (BRD0_OK) routes another
    address using the same primary source still has."""
    mask = prefix_mask(ifa.prefixlen)
    brd, any_ = ifa.local | ~mask & 0xFFFFFFFF, ifa.local & mask
    kept: set[str] = set()
    prim1, same_prefsrc = None, False
    for ifa1 in dev.addrs:
        if ifa1.secondary:
            if ifa1.prefixlen == prim.prefixlen and inet_ifa_match(prim, ifa1.local):
                prim1 = prim
            else:
                if not same_prefsrc:
                    continue
                if prim1 is None or ifa1.prefixlen != prim1.prefixlen or not inet_ifa_match(prim1, ifa1.local):
                    prim1 = inet_ifa_byprefix(dev, ifa1.local, ifa1.prefixlen)
                if prim1 is None or prim1.local != prim.local:
                    continue
        else:
            if prim.local != ifa1.local:
                continue
            prim1 = ifa1
            same_prefsrc = same_prefsrc or prim is not prim1
        kept |= {name for name, hit in (("local", ifa.local == ifa1.local),
                                        ("brd", ifa.broadcast == ifa1.broadcast),
                                        ("brd1", brd == ifa1.broadcast),
                                        ("brd0", any_ == ifa1.broadcast)) if hit}
        if prim1 is ifa1 and ifa1.prefixlen < 31:
            mask1 = prefix_mask(ifa1.prefixlen)
            subnet_addrs = (ifa1.local | ~mask1 & 0xFFFFFFFF, ifa1.local & mask1)
            if not is_zeronet(subnet_addrs[1]):
                kept |= {name for name, addr in (("brd", ifa.broadcast), ("brd1", brd), ("brd0", any_))
                         if addr in subnet_addrs}
    return kept


def fib_sync_down_addr(net: Net, local: int) -> None:
    """Routes in main preferring a source address that is no longer local die."""
    table = net.tables.get(RT_TABLE_MAIN)
    if table is not None:
        table.flush(lambda r: r.prefsrc == local)
        fib.rt_cache_flush(net)


def _addr_type(net: Net, table_id: int, addr: int) -> RouteType | None:
    """inet_addr_type_table(): the type of the longest match in one table, with
    no regard to device state (local routes outlive their device going down)."""
    table = net.tables.get(table_id)
    route = table.longest_match(addr) if table is not None else None
    return route.type if route is not None else None


# routes -----------------------------------------------------------------------
@dataclass
class RouteMatch:
    """What `ip route del` names: the route's key plus optional selectors
    (None: any). Scope NOWHERE matches any scope; metric 0 any metric."""

    route: FibRoute
    type: RouteType | None = None
    scope: int = RT_SCOPE_NOWHERE
    prefsrc: int | None = None
    protocol: str | None = None

    def matches(self, r: FibRoute) -> bool:
        want = self.route
        return ((self.type is None or r.type == self.type)
                and (self.scope == RT_SCOPE_NOWHERE or r.scope == self.scope)
                and (self.prefsrc is None or r.prefsrc == self.prefsrc)
                and (self.protocol is None or r.protocol == self.protocol)
                and (not want.metric or r.metric == want.metric)
                and (want.oif is None or r.oif == want.oif)
                and (want.gateway is None or r.gateway == want.gateway)
                and (want.mtu is None or r.mtu == want.mtu)
                and (want.advmss is None or r.advmss == want.advmss))


def fib_valid_key_len(route: FibRoute) -> None:
    if route.dst & ~prefix_mask(route.plen) & 0xFFFFFFFF:
        raise RtnlError(errno.EINVAL, "Invalid prefix for given prefix length")


def fib_new_table(net: Net, table_id: int) -> FibTable:
    """fib_new_table(): the table with that id, made on first use. A lookup
    plan naming its probes is stale once they change (rt_cache_flush())."""
    table = net.tables.get(table_id)
    if table is None:
        table = net.tables[table_id] = FibTable(table_id, lambda: fib.rt_cache_flush(net))
    return table


def fib_table_insert(net: Net, route: FibRoute, flags: int) -> None:
    fib_valid_key_len(route)
    ip_metrics_convert(route)
    fib_create_info(net, route)
    fib_new_table(net, route.table).insert(route, flags)
    fib.rt_cache_flush(net)


def ip_metrics_convert(route: FibRoute) -> None:
    """ip_metrics_convert() (net/ipv4/metrics.c), as fib_create_info() stores a new
    route's metrics: advmss above 65535 - 40 and mtu above 65535 - 15 are capped there.
    A delete compares its metrics as given (fib_metrics_match()), uncapped."""
    if route.advmss is not None:
        route.advmss = min(route.advmss, 65535 - 40)
    if route.mtu is not None:
        route.mtu = min(route.mtu, 65535 - 15)


def fib_table_delete(net: Net, want: RouteMatch) -> None:
    route = want.route
    fib_valid_key_len(route)
    table = net.tables.get(route.table)
    if table is None:
        raise RtnlError(errno.ESRCH, "FIB table does not exist")
    table.delete(route.dst, route.plen, route.tos, want.matches)
    fib.rt_cache_flush(net)


def fib_create_info(net: Net, route: FibRoute) -> None:
    """The checks fib_create_info() makes before a route exists; a gatewayed
    route gets the device its gateway resolves to."""
    if TYPE_MIN_SCOPE[route.type] > route.scope:
        raise RtnlError(errno.EINVAL, "Invalid scope")
    if route.type in ERROR_TYPES:
        if route.gateway is not None or route.oif is not None:
            raise RtnlError(errno.EINVAL, "Gateway, device and multipath can not be specified "
                                          "for this route type")
        return
    if route.scope > RT_SCOPE_HOST:
        raise RtnlError(errno.EINVAL, "Invalid scope")
    if route.scope == RT_SCOPE_HOST:
        if route.gateway is not None:
            raise RtnlError(errno.EINVAL, "Route with host scope can not have a gateway")
        if route.oif not in net.devices:
            raise RtnlError(errno.ENODEV)
    elif route.gateway is not None:
        fib_check_nh_v4_gw(net, route)
    else:
        fib_check_nh_nongw(net, route)
    if route.prefsrc is not None and not fib_valid_prefsrc(net, route):
        raise RtnlError(errno.EINVAL, "Invalid prefsrc address")
    route.nh = fib_find_info(net, route)


def fib_find_info(net: Net, route: FibRoute) -> FibNh:
    """fib_find_info(): the nexthop of the routes with the same attributes, so
    that they share its cached route; the route's own for the first of them."""
    key = (route.type, route.oif, route.gateway, route.prefsrc, route.mtu, route.advmss, route.scope, route.protocol,
           route.metric, route.tos)
    nh = net.fib_info_hash.get(key)
    if nh is None:
        nh = net.fib_info_hash[key] = route.nh
    return nh


def fib_check_nh_v4_gw(net: Net, route: FibRoute) -> None:
    """The gateway must be reached by a unicast or local route of at least link
    scope (a directly connected subnet, or a local address), through the given
    device if there is one; the route takes that route's device. The lookup's
    flowi4_scope passes over routes of narrower scope (a gatewayed route to the
    gateway's own subnet does not hide the connected route)."""
    scope = max(route.scope + 1, RT_SCOPE_LINK)
    hit = None
    if route.table != RT_TABLE_MAIN and route.table in net.tables:
        hit = fib.fib_table_lookup(net, route.table, route.gateway, route.oif, scope)
    if hit is None:
        res = fib.fib_lookup(net, route.gateway, oif=route.oif, scope=scope)
        hit = None if isinstance(res, int) else res.route
    if hit is None or hit.type not in (RTN_UNICAST, RTN_LOCAL):
        raise RtnlError(errno.EINVAL, "Nexthop has invalid gateway")
    if hit.oif is None:
        raise RtnlError(errno.EINVAL, "No egress device for nexthop gateway")
    route.oif = hit.oif
    if not net.devices[hit.oif].up:
        raise RtnlError(errno.ENETDOWN)


def fib_check_nh_nongw(net: Net, route: FibRoute) -> None:
    dev = net.devices.get(route.oif) if route.oif is not None else None
    if dev is None:
        raise RtnlError(errno.ENODEV)
    if not dev.up:
        raise RtnlError(errno.ENETDOWN, "Device for nexthop is not up")


def fib_valid_prefsrc(net: Net, route: FibRoute) -> bool:
    if route.type is RTN_LOCAL and route.dst and route.prefsrc == route.dst:
        return True
    table = RT_TABLE_LOCAL if route.table == RT_TABLE_MAIN else route.table
    return RTN_LOCAL in (_addr_type(net, table, route.prefsrc), _addr_type(net, RT_TABLE_LOCAL, route.prefsrc))


def fib_netdev_event(net: Net, event: int, dev: NetDevice) -> None:
    """A device coming up gets its addresses' routes back; going down loses
    every route through it but the host-scoped ones; unregistered, all of them."""
    if event == NETDEV_UP:
        for ifa in list(dev.addrs):
            fib_add_ifaddr(net, dev, ifa)
    elif event == NETDEV_DOWN:
        fib_disable_ip(net, dev, force=False)
    elif event == NETDEV_UNREGISTER:
        fib_disable_ip(net, dev, force=True)


def fib_inetaddr_event(net: Net, event: int, dev: NetDevice, ifa: InAddr) -> None:
    """An address added brings its routes; one deleted takes them, and the
    last one gone disables IP on the device (fib_disable_ip(), forced)."""
    if event == NETDEV_UP:
        fib_add_ifaddr(net, dev, ifa)
    elif event == NETDEV_DOWN:
        fib_del_ifaddr(net, dev, ifa)
        if not dev.addrs:
            fib_disable_ip(net, dev, force=True)


def ip_fib_init(net: Net) -> None:
    """ip_fib_net_init(): the tables the default rules look up and the rules
    (fib4_rules_init()), then the notifiers."""
    for table_id in (RT_TABLE_LOCAL, RT_TABLE_MAIN, RT_TABLE_DEFAULT):
        fib_new_table(net, table_id)
    fib.fib4_rules_init(net)
    register_inetaddr_notifier(net, fib_inetaddr_event)
    register_netdevice_notifier(net, fib_netdev_event)
