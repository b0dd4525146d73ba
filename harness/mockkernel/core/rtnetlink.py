"""The kernel side of `ip`: each rtnetlink request as this kernel (6.18) handles it.

Functions keep the names of the kernel functions they model:
- links (net/core/dev.c, rtnetlink.c do_setlink): dev_set_mac_address(),
  dev_set_mtu(), dev_change_flags() and the notifiers it runs: inetdev_event()
  (devinet.c: loopback coming up gets 127.0.0.1/8) and fib_netdev_event()
  (fib_frontend.c: up re-adds the address routes, down removes every route
  through the device except host-scoped ones and flushes all its neighbours).
- addresses (devinet.c): inet_rtm_newaddr() / __inet_insert_ifa() (secondaries,
  insertion order), inet_rtm_deladdr() / __inet_del_ifa() (a primary takes its
  secondaries with it: promote_secondaries off), and fib_add_ifaddr() /
  fib_del_ifaddr() (fib_frontend.c). This kernel adds no broadcast route for the
  network address, only for the subnet broadcast (prefixes shorter than /31)
  and for an explicitly assigned `brd`.
- routes (fib_frontend.c inet_rtm_newroute/delroute, fib_trie.c
  fib_table_insert/delete with the NLM_F_* semantics of add/append/prepend/
  replace/change, fib_semantics.c fib_create_info() checks). Tables keep the
  order `ip route show` dumps them in: by destination, longer prefix first,
  then metric, then insertion.
- rules (net/core/fib_rules.c fib_nl_newrule/delrule, fib_default_rule_pref).
- neighbours (net/core/neighbour.c neigh_add/neigh_delete, neigh_ifdown).
Errors are RtnlError(errno, extack); iproute2 prints "Error: <extack>." or
"RTNETLINK answers: <strerror>". Left out: multipath, nexthop objects, onlink,
route tos, VRF, IPv6, promote_secondaries, neighbour timers started by `ip
neigh` (the datapath's ARP state machine starts its own).
"""
from __future__ import annotations

import bisect
import copy
import errno
import os
from dataclasses import dataclass

from harness.mockkernel.cmd.args import not_modelled
from harness.mockkernel.core.skbuff import kfree_skb
from harness.mockkernel.ipv4 import arp
from harness.mockkernel.ipv4 import route as fib
from harness.mockkernel.ipv4.route import is_zeronet
from harness.mockkernel.net import (
    NUD_VALID,
    RT_SCOPE_HOST,
    RT_SCOPE_LINK,
    RT_SCOPE_NOWHERE,
    RT_TABLE_LOCAL,
    RT_TABLE_MAIN,
    FibRoute,
    FibRule,
    InAddr,
    Neighbour,
    Net,
    NetDevice,
    ip_to_int,
    prefix_mask,
)

# include/uapi/linux/netlink.h request flags
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE, NLM_F_APPEND = 0x100, 0x200, 0x400, 0x800
IPV4_MIN_MTU = 68
LOOPBACK_ADDR = ip_to_int("127.0.0.1")
# fib_props[]: the least scope a route type allows; the error types take no nexthop
TYPE_MIN_SCOPE = {"unicast": 0, "local": RT_SCOPE_HOST, "broadcast": RT_SCOPE_LINK,
                  "blackhole": 0, "unreachable": 0, "prohibit": 0, "throw": 0}
ERROR_TYPES = ("blackhole", "unreachable", "prohibit", "throw")
# dev->min_mtu / max_mtu (0: no maximum), by kind
MTU_BOUNDS = {"loopback": (0, 0), "veth": (IPV4_MIN_MTU, 65535)}


class RtnlError(Exception):
    def __init__(self, err: int, extack: str | None = None):
        super().__init__(err, extack)
        self.errno, self.extack = err, extack

    def __str__(self) -> str:
        if self.extack:
            return f"Error: {self.extack}."
        return f"RTNETLINK answers: {os.strerror(self.errno)}"


def _same_subnet(ifa: InAddr, addr: int) -> bool:
    """inet_ifa_match()."""
    return not (addr ^ ifa.local) & prefix_mask(ifa.prefixlen)


# links ------------------------------------------------------------------------
def dev_set_mac_address(dev: NetDevice, mac: bytes) -> None:
    if len(mac) != 6:
        raise RtnlError(errno.EINVAL)
    if mac[0] & 1 or not any(mac):  # is_valid_ether_addr()
        raise RtnlError(errno.EADDRNOTAVAIL)
    dev.mac = mac


def dev_set_mtu(dev: NetDevice, mtu: int) -> None:
    """dev_validate_mtu(); a device whose MTU drops below 68 loses IPv4
    (inetdev_destroy), which the mock does not model."""
    low, high = MTU_BOUNDS[dev.kind]
    if mtu < low:
        raise RtnlError(errno.EINVAL, "mtu less than device minimum")
    if high and mtu > high:
        raise RtnlError(errno.EINVAL, "mtu greater than device maximum")
    if mtu < IPV4_MIN_MTU:
        raise not_modelled(f"mtu {mtu} (below {IPV4_MIN_MTU}, IPv4 leaves {dev.name})")
    dev.mtu = mtu


def dev_change_flags(net: Net, dev: NetDevice, up: bool) -> None:
    if dev.up == up:
        return
    dev.up = up
    if up:
        dev.qdisc = dev.qdisc or "noqueue"  # dev_activate()
        inetdev_event_up(net, dev)
        for ifa in list(dev.addrs):  # fib_netdev_event(NETDEV_UP)
            fib_add_ifaddr(net, dev, ifa)
    else:
        fib_disable_ip(net, dev, force=False)


def inetdev_event_up(net: Net, dev: NetDevice) -> None:
    """inetdev_event(NETDEV_UP): loopback always tries to get 127.0.0.1/8."""
    if dev.is_loopback:
        try:
            inet_rtm_newaddr(net, dev, InAddr(LOOPBACK_ADDR, 8, scope=RT_SCOPE_HOST, label=dev.name))
        except RtnlError:  # inet_insert_ifa() fails quietly when it is already there
            pass


def fib_disable_ip(net: Net, dev: NetDevice, force: bool) -> None:
    """fib_sync_down_dev() + fib_flush(): routes through `dev` die, except (when
    not forced) those whose nexthop is host-scoped (added with scope host, such
    as the local routes); then arp_ifdown() flushes every neighbour on `dev`."""
    for table in net.tables.values():
        table[:] = [r for r in table if r.oif != dev.ifindex or (not force and r.scope == RT_SCOPE_HOST)]
    neigh_ifdown(net, dev)


# addresses --------------------------------------------------------------------
def _ifa_byprefix(dev: NetDevice, addr: int, prefixlen: int) -> InAddr | None:
    """inet_ifa_byprefix(): the primary address of that subnet."""
    return next((a for a in dev.addrs if not a.secondary and a.prefixlen == prefixlen
                 and _same_subnet(a, addr)), None)


def inet_rtm_newaddr(net: Net, dev: NetDevice, ifa: InAddr, replace: bool = False) -> None:
    """__inet_insert_ifa(): an address in the subnet of one already there is a
    secondary, appended; a primary goes after the last primary of equal or wider
    scope. `replace` (ip addr replace/change) keeps an existing equal address."""
    last_primary = 0
    for index, ifa1 in enumerate(dev.addrs):
        if not ifa1.secondary and ifa.scope <= ifa1.scope:
            last_primary = index + 1
        if ifa1.prefixlen == ifa.prefixlen and _same_subnet(ifa1, ifa.local):
            if ifa1.local == ifa.local:
                if replace:
                    return
                raise RtnlError(errno.EEXIST, "ipv4: Address already assigned")
            if ifa1.scope != ifa.scope:
                raise RtnlError(errno.EINVAL, "ipv4: Invalid scope value")
            ifa.secondary = True
    dev.addrs.insert(len(dev.addrs) if ifa.secondary else last_primary, ifa)
    fib_add_ifaddr(net, dev, ifa)


def inet_rtm_deladdr(net: Net, dev: NetDevice, local: int | None, prefixlen: int | None,
                     label: str | None = None) -> None:
    """The first address with that local address, prefix length and label, where
    the command gave them; a primary takes the secondaries of its subnet with it."""
    for ifa in dev.addrs:
        if local in (None, ifa.local) and prefixlen in (None, ifa.prefixlen) and label in (None, ifa.label):
            if not ifa.secondary:
                for sec in [a for a in dev.addrs if a.secondary and a.prefixlen == ifa.prefixlen
                            and _same_subnet(ifa, a.local)]:
                    _inet_del_ifa(net, dev, sec)
            _inet_del_ifa(net, dev, ifa)
            return
    raise RtnlError(errno.EADDRNOTAVAIL, "ipv4: Address not found")


def _inet_del_ifa(net: Net, dev: NetDevice, ifa: InAddr) -> None:
    """Unlink, then fib_inetaddr_event(NETDEV_DOWN): the last address gone
    disables IP on the device (fib_disable_ip, forced)."""
    dev.addrs.remove(ifa)
    fib_del_ifaddr(net, dev, ifa)
    if not dev.addrs:
        fib_disable_ip(net, dev, force=True)


def _fib_magic(net: Net, add: bool, rtype: str, dst: int, plen: int, dev: NetDevice, prim: InAddr) -> None:
    """fib_magic(): the kernel's own route for an address (proto kernel, src the
    subnet's primary). Its errors are ignored, as the kernel ignores them."""
    table = RT_TABLE_MAIN if rtype == "unicast" else RT_TABLE_LOCAL
    scope = RT_SCOPE_HOST if rtype == "local" else RT_SCOPE_LINK
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
    prim = _ifa_byprefix(dev, ifa.local, ifa.prefixlen) if ifa.secondary else ifa
    if prim is None:
        return
    mask = prefix_mask(ifa.prefixlen)
    prefix = ifa.local & mask
    _fib_magic(net, True, "local", ifa.local, 32, dev, prim)
    if not dev.up:
        return
    if ifa.broadcast and ifa.broadcast != 0xFFFFFFFF:
        _fib_magic(net, True, "broadcast", ifa.broadcast, 32, dev, prim)
    if not is_zeronet(prefix) and not ifa.secondary and (prefix != ifa.local or ifa.prefixlen < 32):
        _fib_magic(net, True, "local" if dev.is_loopback else "unicast", prefix, ifa.prefixlen, dev, prim)
        if ifa.prefixlen < 31:
            _fib_magic(net, True, "broadcast", prefix | ~mask & 0xFFFFFFFF, 32, dev, prim)


def fib_del_ifaddr(net: Net, dev: NetDevice, ifa: InAddr) -> None:
    """Remove the routes `ifa` brought, keeping those another address on the
    device (with the same preferred source) still needs."""
    mask = prefix_mask(ifa.prefixlen)
    brd, any_ = ifa.local | ~mask & 0xFFFFFFFF, ifa.local & mask
    subnet = False
    prim = ifa
    if ifa.secondary:
        prim = _ifa_byprefix(dev, any_, ifa.prefixlen)
        if prim is None:
            return
    elif not is_zeronet(any_) and (any_ != ifa.local or ifa.prefixlen < 32):
        _fib_magic(net, False, "local" if dev.is_loopback else "unicast", any_, ifa.prefixlen, dev, prim)
        subnet = True
    kept = _addresses_still_needing(dev, ifa, prim)
    if "brd" not in kept:
        _fib_magic(net, False, "broadcast", ifa.broadcast or 0, 32, dev, prim)
    if subnet and ifa.prefixlen < 31:
        if "brd1" not in kept:
            _fib_magic(net, False, "broadcast", brd, 32, dev, prim)
        if "brd0" not in kept:
            _fib_magic(net, False, "broadcast", any_, 32, dev, prim)
    if "local" not in kept:
        _fib_magic(net, False, "local", ifa.local, 32, dev, prim)
        if _addr_type(net, RT_TABLE_LOCAL, ifa.local) != "local":
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
            if ifa1.prefixlen == prim.prefixlen and _same_subnet(prim, ifa1.local):
                prim1 = prim
            else:
                if not same_prefsrc:
                    continue
                if prim1 is None or ifa1.prefixlen != prim1.prefixlen or not _same_subnet(prim1, ifa1.local):
                    prim1 = _ifa_byprefix(dev, ifa1.local, ifa1.prefixlen)
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
    table = net.tables.get(RT_TABLE_MAIN, [])
    table[:] = [r for r in table if r.prefsrc != local]


def _addr_type(net: Net, table_id: int, addr: int) -> str | None:
    """inet_addr_type_table(): the type of the longest match in one table, with
    no regard to device state (local routes outlive their device going down)."""
    hits = [r for r in net.tables.get(table_id, ()) if r.contains(addr)]
    return max(hits, key=lambda r: r.plen).type if hits else None


# routes -----------------------------------------------------------------------
@dataclass
class RouteMatch:
    """What `ip route del` names: the route's key plus optional selectors
    (None: any). Scope NOWHERE matches any scope; metric 0 any metric."""

    route: FibRoute
    type: str | None = None
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
                and (want.mtu is None or r.mtu == want.mtu))


def _dump_key(r: FibRoute) -> tuple:
    """fib_trie order: key, then longer prefixes, higher tos, lower metric."""
    return r.dst, -r.plen, -r.tos, r.metric


def fib_valid_key_len(route: FibRoute) -> None:
    if route.dst & ~prefix_mask(route.plen) & 0xFFFFFFFF:
        raise RtnlError(errno.EINVAL, "Invalid prefix for given prefix length")


def fib_table_insert(net: Net, route: FibRoute, flags: int) -> None:
    fib_valid_key_len(route)
    fib_create_info(net, route)
    table = net.table(route.table)
    group = [i for i, r in enumerate(table) if _dump_key(r) == _dump_key(route)]
    if not group:
        if not flags & NLM_F_CREATE:
            raise RtnlError(errno.ENOENT)
        table.insert(bisect.bisect_right(table, _dump_key(route), key=_dump_key), route)
        return
    if flags & NLM_F_EXCL:
        raise RtnlError(errno.EEXIST)
    match = next((i for i in group if table[i] == route), None)
    if flags & NLM_F_REPLACE:
        if match is None:
            table[group[0]] = route
        elif match != group[0]:
            raise RtnlError(errno.EEXIST)
        return
    if match is not None:
        raise RtnlError(errno.EEXIST)
    table.insert(group[-1] + 1 if flags & NLM_F_APPEND else group[0], route)


def fib_table_delete(net: Net, want: RouteMatch) -> None:
    route = want.route
    fib_valid_key_len(route)
    table = net.tables.get(route.table)
    if table is None:
        raise RtnlError(errno.ESRCH, "FIB table does not exist")
    for index, r in enumerate(table):
        if (r.dst, r.plen, r.tos) == (route.dst, route.plen, route.tos) and want.matches(r):
            del table[index]
            return
    raise RtnlError(errno.ESRCH)


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


def fib_check_nh_v4_gw(net: Net, route: FibRoute) -> None:
    """The gateway must be reached by a unicast or local route of at least link
    scope (a directly connected subnet, or a local address), through the given
    device if there is one; the route takes that route's device."""
    scoped = _scoped_fib(net, max(route.scope + 1, RT_SCOPE_LINK))
    hit = None
    if route.table != RT_TABLE_MAIN and route.table in net.tables:
        hit = fib.fib_table_lookup(scoped, route.table, route.gateway, route.oif)
    if hit is None:
        res = fib.fib_lookup(scoped, route.gateway, oif=route.oif)
        hit = None if isinstance(res, int) else res.route
    if hit is None or hit.type not in ("unicast", "local"):
        raise RtnlError(errno.EINVAL, "Nexthop has invalid gateway")
    if hit.oif is None:
        raise RtnlError(errno.EINVAL, "No egress device for nexthop gateway")
    route.oif = hit.oif
    if not net.devices[hit.oif].up:
        raise RtnlError(errno.ENETDOWN)


def _scoped_fib(net: Net, scope: int) -> Net:
    """The FIB as a lookup with flowi4_scope = `scope` sees it: fib_table_lookup()
    passes over routes of narrower scope (a gatewayed route to the gateway's own
    subnet does not hide the connected route)."""
    view = copy.copy(net)
    view.tables = {tid: [r for r in routes if r.scope >= scope] for tid, routes in net.tables.items()}
    return view


def fib_check_nh_nongw(net: Net, route: FibRoute) -> None:
    dev = net.devices.get(route.oif) if route.oif is not None else None
    if dev is None:
        raise RtnlError(errno.ENODEV)
    if not dev.up:
        raise RtnlError(errno.ENETDOWN, "Device for nexthop is not up")


def fib_valid_prefsrc(net: Net, route: FibRoute) -> bool:
    if route.type == "local" and route.dst and route.prefsrc == route.dst:
        return True
    table = RT_TABLE_LOCAL if route.table == RT_TABLE_MAIN else route.table
    return "local" in (_addr_type(net, table, route.prefsrc), _addr_type(net, RT_TABLE_LOCAL, route.prefsrc))


# rules ------------------------------------------------------------------------
@dataclass
class RuleSelectors:
    """Which parts of a rule the command named: fib_nl_delrule() compares only
    those, and rule_exists() compares prefixes and tos only when given."""

    priority: bool = False
    action: bool = False
    table: bool = False


def fib_default_rule_pref(net: Net) -> int:
    """One below the priority of the second rule in the list, if that is not 0."""
    if len(net.rules) > 1 and net.rules[1].priority:
        return net.rules[1].priority - 1
    return 0


def _mark(rule: FibRule) -> tuple[int, int]:
    return (rule.fwmark, rule.fwmask) if rule.fwmark is not None else (0, 0)


def _rule_compare(r: FibRule, rule: FibRule) -> bool:
    """fib4_rule_compare(): source, destination and tos, where given."""
    return ((rule.src is None or r.src == rule.src) and (rule.dst is None or r.dst == rule.dst)
            and (rule.tos is None or r.tos == rule.tos))


def fib_nl_newrule(net: Net, rule: FibRule, given: RuleSelectors) -> None:
    if not given.priority:
        rule.priority = fib_default_rule_pref(net)
    if rule.action == "goto" and rule.goto <= rule.priority:
        raise RtnlError(errno.EINVAL, "Backward goto not supported")
    for r in net.rules:  # rule_exists()
        if ((r.action, r.table, r.priority, r.iif, r.oif, _mark(r), r.suppress_prefixlength)
                == (rule.action, rule.table, rule.priority, rule.iif, rule.oif, _mark(rule),
                    rule.suppress_prefixlength) and _rule_compare(r, rule)):
            raise RtnlError(errno.EEXIST)
    if rule.tos is not None and rule.tos & 3:
        raise RtnlError(errno.EINVAL, "Invalid dsfield (tos): ECN bits must be 0")
    position = next((i for i, r in enumerate(net.rules) if r.priority > rule.priority), len(net.rules))
    net.rules.insert(position, rule)


def fib_nl_delrule(net: Net, rule: FibRule, given: RuleSelectors) -> None:
    """rule_find(): the first rule matching everything the command named."""
    for r in net.rules:
        if ((not given.action or r.action == rule.action)
                and (not given.table or r.table == rule.table)
                and (not given.priority or r.priority == rule.priority)
                and (rule.iif is None or r.iif == rule.iif)
                and (rule.oif is None or r.oif == rule.oif)
                and (not rule.fwmark or _mark(r)[0] == rule.fwmark)
                and (rule.fwmark is None or not rule.fwmask or _mark(r)[1] == rule.fwmask)
                and _rule_compare(r, rule)):
            net.rules.remove(r)
            return
    raise RtnlError(errno.ENOENT)


# neighbours -------------------------------------------------------------------
def neigh_add(net: Net, dev: NetDevice, ip: int, lladdr: bytes | None, state: int, flags: int) -> None:
    """neigh_add() + __neigh_update() as an administrator. States that need an
    address (NUD_VALID) take the given one or keep the entry's; without either
    the update fails, leaving a new entry behind in no state, as the kernel does."""
    if lladdr is not None and len(lladdr) < len(dev.mac):
        raise RtnlError(errno.EINVAL, "Invalid link address")
    neigh = net.neighbours.get((dev.ifindex, ip))
    if neigh is None:
        if not flags & NLM_F_CREATE:
            raise RtnlError(errno.ENOENT)
        neigh = net.neighbours[(dev.ifindex, ip)] = Neighbour(ip, dev.ifindex, None, 0, net.clock.now)
    elif flags & NLM_F_EXCL:
        raise RtnlError(errno.EEXIST)
    if state & NUD_VALID:
        lladdr = lladdr or (neigh.lladdr if neigh.state & NUD_VALID else None)
        if lladdr is None:
            raise RtnlError(errno.EINVAL, "No link layer address given")
        neigh.lladdr = lladdr
    neigh.state, neigh.updated = state, net.clock.now
    if state & NUD_VALID:  # a now-valid entry sends what waited for it
        queued, neigh.queue = neigh.queue, []
        for skb in queued:
            arp.neigh_output(net, neigh, skb)


def neigh_delete(net: Net, dev: NetDevice, ip: int) -> None:
    if (dev.ifindex, ip) not in net.neighbours:
        raise RtnlError(errno.ENOENT)
    _neigh_destroy(net, (dev.ifindex, ip))


def neigh_ifdown(net: Net, dev: NetDevice) -> None:
    """Every entry on the device goes, permanent ones too."""
    for key in [k for k in net.neighbours if k[0] == dev.ifindex]:
        _neigh_destroy(net, key)


def _neigh_destroy(net: Net, key: tuple[int, int]) -> None:
    """The entry dies: its timers see no state left to work on, and what was
    queued for it is dropped."""
    neigh = net.neighbours.pop(key)
    neigh.state = 0
    for skb in neigh.queue:
        kfree_skb(skb, "NEIGH_DEAD", "NEIGH", "neigh_flush_dev")
    neigh.queue = []
