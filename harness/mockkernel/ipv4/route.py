"""IPv4 routing: FIB rules and tables, input and output route decisions.

Models net/ipv4/fib_rules.c (fib4_rule_match, the rule walk), fib_trie.c
(fib_table_lookup: longest prefix, then metric), fib_frontend.c
(fib_validate_source: rp_filter, local sources) and route.c
(ip_route_input_rcu, ip_route_input_mc, ip_mc_validate_source,
ip_route_input_slow, ip_route_output_key, inet_select_addr). The result of a
lookup is an `Rtable`, the model's `struct rtable`. Left out: multipath,
nexthop objects, VRF/l3mdev, route caching, tclassid, multicast routing
(ip_mr_input: without a multicast router daemon no device has mc_forwarding,
so a multicast packet is delivered locally or dropped, never forwarded).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import cached_property

from harness.dropreason import DropReason
from harness.journey import Hop, Stage
from harness.mockkernel.ipv4 import igmp
from harness.mockkernel.net import (RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, RTN_BLACKHOLE, RTN_BROADCAST, RTN_LOCAL,
                                    RTN_MULTICAST, RTN_PROHIBIT, RTN_THROW, RTN_UNICAST, RTN_UNREACHABLE,
                                    FibRoute, Net, NetDevice, RouteType, prefix_mask)
from harness.mockkernel.wire.ipv4 import IPPROTO_IGMP

# errno values a lookup reports (fib_props[] in fib_semantics.c)
ENETUNREACH, EHOSTUNREACH, EACCES, EINVAL = 101, 113, 13, 22
TYPE_ERRORS = {RTN_BLACKHOLE: EINVAL, RTN_UNREACHABLE: EHOSTUNREACH, RTN_PROHIBIT: EACCES}
# fib4_rule_action(): an `ip rule` that drops fails the lookup with its own errno, which
# for `unreachable` is ENETUNREACH where an unreachable route's (fib_props[]) is EHOSTUNREACH
RULE_ACTION_ERRORS = {RTN_BLACKHOLE.keyword: EINVAL, RTN_UNREACHABLE.keyword: ENETUNREACH,
                      RTN_PROHIBIT.keyword: EACCES}
LOOPBACK_IFINDEX = 1


def is_multicast(addr: int) -> bool:
    return addr >> 28 == 0xE


def is_local_multicast(addr: int) -> bool:
    """224.0.0.0/24, the link-local groups never routed."""
    return addr >> 8 == 0xE00000


def is_lbcast(addr: int) -> bool:
    return addr == 0xFFFFFFFF


def is_zeronet(addr: int) -> bool:
    """include/linux/in.h: only 0.0.0.0 since the rest of 0/8 became unicast."""
    return addr == 0


def is_loopback(addr: int) -> bool:
    return addr >> 24 == 127


@dataclass
class FibResult:
    route: FibRoute
    table: int

    @property
    def type(self) -> RouteType:
        return self.route.type


class DstInput(Enum):
    """dst->input, the function a received packet on this route goes to; the
    value is the ROUTING hop's verdict. OUTPUT is a locally sent packet's route
    (dst->output is ip_output): ip_rcv_finish() delivers it locally when its
    type is RTN_LOCAL, as the loopback device hands it back."""

    LOCAL = "LOCAL"  # ip_local_deliver
    FORWARD = "FORWARD"  # ip_forward
    ERROR = "ERROR"  # ip_error
    OUTPUT = "OUTPUT"


# the members as module constants, compared per packet
DST_LOCAL, DST_FORWARD, DST_ERROR, DST_OUTPUT = DstInput.LOCAL, DstInput.FORWARD, DstInput.ERROR, DstInput.OUTPUT


@dataclass
class Rtable:
    """struct rtable: what the packet does next. `input` is dst->input (see
    DstInput), `error` the errno ip_error() reports, `type` rt_type.
    `is_broadcast` and `is_multicast` are rt_flags' RTCF_BROADCAST and
    RTCF_MULTICAST."""

    input: DstInput
    type: RouteType
    dev: NetDevice | None = None
    gateway: int | None = None
    prefsrc: int | None = None
    error: int = 0
    is_broadcast: bool = False
    mtu: int | None = None
    is_multicast: bool = False

    @cached_property
    def hop(self) -> Hop:
        """The ROUTING hop this decision adds to a journey."""
        detail = f"errno {self.error}" if self.input is DST_ERROR else (
            self.type.keyword if self.input is DST_LOCAL else self.dev.name if self.dev else "")
        where = "ip_route_input_mc" if self.is_multicast else "ip_route_input_slow"
        return Hop(Stage.ROUTING, where, self.input.value, detail)

    def nexthop(self, daddr: int) -> int:
        return self.gateway if self.gateway is not None else daddr

    def dst_mtu(self) -> int:
        return self.mtu or self.dev.mtu


def fib_table_lookup(net: Net, table: int, daddr: int, oif: int | None = None) -> FibRoute | None:
    """Longest matching prefix, then the lowest metric; routes through a down
    device (or one not matching a requested `oif`) are skipped."""
    best: FibRoute | None = None
    for route in net.tables.get(table, ()):
        if (daddr & prefix_mask(route.plen)) != route.dst:
            continue
        if route.oif is not None:
            dev = net.devices.get(route.oif)
            if dev is None or not dev.up:
                continue
            if oif is not None and route.oif != oif and route.type is not RTN_LOCAL \
                    and route.type is not RTN_BROADCAST:
                continue
        elif oif is not None and route.type is RTN_UNICAST:
            continue
        if best is None or route.plen > best.plen or (route.plen == best.plen and route.metric < best.metric):
            best = route
    return best


def _rule_matches(net: Net, rule, daddr: int, saddr: int, iif: int, oif: int | None, mark: int,
                  tos: int) -> bool:
    """fib_rule_match() + fib4_rule_match()."""
    if rule.iif is not None:
        dev = net.dev_by_name(rule.iif)
        match = dev is not None and dev.ifindex == iif
        if not match:
            return rule.invert
    if rule.oif is not None:
        dev = net.dev_by_name(rule.oif)
        if dev is None or dev.ifindex != oif:
            return rule.invert
    if rule.fwmark is not None and (mark ^ rule.fwmark) & rule.fwmask:
        return rule.invert
    if rule.src is not None and (saddr ^ rule.src[0]) & prefix_mask(rule.src[1]):
        return rule.invert
    if rule.dst is not None and (daddr ^ rule.dst[0]) & prefix_mask(rule.dst[1]):
        return rule.invert
    if rule.tos is not None and rule.tos != tos:
        return rule.invert
    return not rule.invert


def fib_lookup(net: Net, daddr: int, saddr: int = 0, iif: int = LOOPBACK_IFINDEX,
               oif: int | None = None, mark: int = 0, tos: int = 0) -> FibResult | int:
    """fib_rules_lookup(): walk `ip rule` in priority order. Returns the result
    or an errno: ENETUNREACH when nothing matched; for a rule whose action drops,
    fib4_rule_action()'s errno (RULE_ACTION_ERRORS), not that of the route type
    of the same name (TYPE_ERRORS, fib_props[] in fib_semantics.c)."""
    rules = sorted(net.rules, key=lambda r: r.priority)
    index = 0
    while index < len(rules):
        rule = rules[index]
        index += 1
        if not _rule_matches(net, rule, daddr, saddr, iif, oif, mark, tos):
            continue
        if rule.action == "goto":
            # fib_rules_lookup(): jump to the rule with exactly that priority, if any
            index = next((i for i, r in enumerate(rules) if r.priority == rule.goto), index)
            continue
        if rule.action == "nop":
            continue
        if rule.action in RULE_ACTION_ERRORS:
            return RULE_ACTION_ERRORS[rule.action]
        route = fib_table_lookup(net, rule.table, daddr, oif)
        if route is None or route.type is RTN_THROW:
            continue
        if rule.suppress_prefixlength >= 0 and route.plen <= rule.suppress_prefixlength:
            continue
        if route.type in TYPE_ERRORS:
            return TYPE_ERRORS[route.type]
        return FibResult(route, rule.table)
    return ENETUNREACH


def local_addresses(net: Net) -> set[int]:
    return {a.local for dev in net.devices.values() for a in dev.addrs}


def inet_select_addr(net: Net, dev: NetDevice | None, dst: int, scope: int) -> int:
    """devinet.c inet_select_addr(): a primary address of `dev` in the same subnet
    as `dst` with scope <= `scope`, else any primary address of `dev` in scope,
    else one from another device (not host-scoped)."""
    if dev is not None:
        in_scope = [a for a in dev.addrs if not a.secondary and a.scope <= scope]
        for addr in in_scope:
            if dst and (dst & prefix_mask(addr.prefixlen)) == (addr.local & prefix_mask(addr.prefixlen)):
                return addr.local
        if in_scope:
            return in_scope[0].local
    for other in net.devices.values():
        for addr in other.addrs:
            if not addr.secondary and addr.scope < RT_SCOPE_LINK and addr.scope <= scope:
                return addr.local
    return 0


def fib_compute_spec_dst(net: Net, dev: NetDevice, saddr: int, tos: int) -> int:
    """fib_compute_spec_dst() for a packet on a broadcast or multicast route:
    the preferred source of the route back to `saddr` (fib_result_prefsrc()),
    else an address of the receiving device."""
    scope = RT_SCOPE_LINK
    if not is_zeronet(saddr):
        scope = RT_SCOPE_UNIVERSE
        res = fib_lookup(net, saddr, iif=LOOPBACK_IFINDEX, tos=tos)
        if not isinstance(res, int):
            route = res.route
            if route.prefsrc is not None:
                return route.prefsrc
            return inet_select_addr(net, _route_dev(net, route), route.gateway or 0, route.scope)
    return inet_select_addr(net, dev, saddr, scope)


def _route_dev(net: Net, route: FibRoute) -> NetDevice | None:
    return net.devices.get(route.oif) if route.oif is not None else None


def fib_validate_source(net: Net, saddr: int, daddr: int, dev: NetDevice, oif: int,
                        mark: int, tos: int) -> DropReason | None:
    """fib_validate_source_reason(): None when the source is acceptable, else
    the drop reason (IP_RPFILTER, IP_LOCAL_SOURCE, IP_INVALID_SOURCE)."""
    sysctl = net.sysctl
    rpf = max(sysctl.conf("all", "rp_filter"), sysctl.conf(dev.name, "rp_filter"))
    accept_local = sysctl.conf("all", "accept_local") or sysctl.conf(dev.name, "accept_local")
    custom_rules = any(r.priority not in (0, 32766, 32767) for r in net.rules)
    if not rpf and not custom_rules:
        if accept_local:
            return None
        return DropReason.IP_LOCAL_SOURCE if saddr in local_addresses(net) else None
    # __fib_validate_source(): the reverse lookup, from `saddr`'s point of view
    res = fib_lookup(net, saddr, daddr, iif=oif or LOOPBACK_IFINDEX, mark=0, tos=tos)
    if isinstance(res, int):
        return DropReason.IP_RPFILTER if rpf else None
    if res.type is not RTN_UNICAST:
        if res.type is not RTN_LOCAL:
            return DropReason.IP_INVALID_SOURCE
        if not accept_local:
            return DropReason.IP_LOCAL_SOURCE
    uses_dev = res.route.oif == dev.ifindex or (res.type is RTN_LOCAL and dev.is_loopback)
    if uses_dev:
        return None
    if not dev.addrs:
        return DropReason.IP_RPFILTER if rpf else None
    if rpf == 1:
        return DropReason.IP_RPFILTER
    return None


RT_CACHE_MAX = 65536


def ip_route_input(net: Net, daddr: int, saddr: int, tos: int, dev: NetDevice,
                   mark: int = 0, protocol: int = 0) -> Rtable | DropReason:
    """ip_route_input_noref() -> ip_route_input_rcu(): the route for a received
    packet, or a drop reason.

    A multicast destination is recognized first, before any source check: a
    group the device has joined (ip_check_mc_rcu()) gets a multicast route
    from ip_route_input_mc(); any other group is dropped with NOT_SPECIFIED
    (multicast forwarding would need mc_forwarding, which only a multicast
    router daemon turns on). Those routes are made per packet, as the kernel's
    are (never cached). Other results are cached until the configuration
    changes, as the kernel's input route cache is invalidated by bumping
    rt_genid on every FIB, address or sysctl change."""
    if daddr >> 28 == 0xE:
        if not igmp.ip_check_mc_rcu(dev, daddr, saddr, protocol):
            return DropReason.NOT_SPECIFIED
        return ip_route_input_mc(net, daddr, saddr, tos, dev, mark, protocol)
    key = (daddr, saddr, tos, dev.ifindex, mark)
    cache = net.rt_cache
    result = cache.get(key)
    if result is None:
        if len(cache) >= RT_CACHE_MAX:
            cache.clear()
        result = cache[key] = ip_route_input_slow(net, daddr, saddr, tos, dev, mark)
    return result


def ip_route_input_slow(net: Net, daddr: int, saddr: int, tos: int, dev: NetDevice,
                        mark: int = 0) -> Rtable | DropReason:
    """The route for a received packet, or a drop reason."""
    sysctl = net.sysctl
    forwarding = sysctl.conf(dev.name, "forwarding")
    route_localnet = _route_localnet(net, dev)
    if is_multicast(saddr) or is_lbcast(saddr):
        return DropReason.IP_INVALID_SOURCE
    if is_lbcast(daddr) or (saddr == 0 and daddr == 0):
        return _broadcast_input(net, saddr, daddr, dev, tos, mark)
    if is_zeronet(saddr):
        return DropReason.IP_INVALID_SOURCE
    if is_zeronet(daddr):
        return DropReason.IP_INVALID_DEST
    if is_loopback(daddr):
        if not route_localnet:
            return DropReason.IP_LOCALNET
    elif is_loopback(saddr) and not route_localnet:
        return DropReason.IP_LOCALNET
    res = fib_lookup(net, daddr, saddr, iif=dev.ifindex, mark=mark, tos=tos)
    if isinstance(res, int):
        error = res if forwarding else EHOSTUNREACH
        return Rtable(DST_ERROR, RTN_UNREACHABLE, dev=dev, error=error)
    if res.type is RTN_BROADCAST:
        return _broadcast_input(net, saddr, daddr, dev, tos, mark)
    if res.type is RTN_LOCAL:
        reason = fib_validate_source(net, saddr, daddr, dev, 0, mark, tos)
        if reason:
            return reason
        return Rtable(DST_LOCAL, RTN_LOCAL, dev=dev)
    if not forwarding:
        return Rtable(DST_ERROR, RTN_UNREACHABLE, dev=dev, error=EHOSTUNREACH)
    if res.type is not RTN_UNICAST:
        return DropReason.IP_INVALID_DEST
    out = _route_dev(net, res.route)
    reason = fib_validate_source(net, saddr, daddr, dev, out.ifindex if out else 0, mark, tos)
    if reason:
        return reason
    return Rtable(DST_FORWARD, RTN_UNICAST, dev=out, gateway=res.route.gateway,
                  prefsrc=res.route.prefsrc, mtu=res.route.mtu)


def _route_localnet(net: Net, dev: NetDevice) -> int:
    """IN_DEV_ROUTE_LOCALNET(): conf/all or the device's route_localnet."""
    return net.sysctl.conf("all", "route_localnet") or net.sysctl.conf(dev.name, "route_localnet")


def ip_route_input_mc(net: Net, daddr: int, saddr: int, tos: int, dev: NetDevice, mark: int,
                      protocol: int) -> Rtable | DropReason:
    """ip_route_input_mc() for a group the device joined (`our`): the source
    checks, then a route whose input is ip_local_deliver (RTCF_MULTICAST |
    RTCF_LOCAL). Left out: ip_mr_input (no multicast forwarding, see
    ip_route_input), IPSKB_NOPOLICY."""
    reason = ip_mc_validate_source(net, daddr, saddr, tos, dev, mark, protocol)
    if reason:
        return reason
    return Rtable(DST_LOCAL, RTN_MULTICAST, dev=dev, is_multicast=True)


def ip_mc_validate_source(net: Net, daddr: int, saddr: int, tos: int, dev: NetDevice, mark: int,
                          protocol: int) -> DropReason | None:
    """ip_mc_validate_source(): None when the source may send to group `daddr`,
    else the drop reason. A multicast or limited broadcast source is
    IP_INVALID_SOURCE; a loopback one IP_LOCALNET unless route_localnet; 0.0.0.0
    only to a link-local group (224.0.0.0/24) or in IGMP, else
    IP_INVALID_SOURCE; any other source goes through fib_validate_source
    (rp_filter, IP_LOCAL_SOURCE for one of this host's addresses). The
    skb->protocol != ETH_P_IP check (INVALID_PROTO) cannot fail here: only
    ip_rcv calls in."""
    if is_multicast(saddr) or is_lbcast(saddr):
        return DropReason.IP_INVALID_SOURCE
    if is_loopback(saddr) and not _route_localnet(net, dev):
        return DropReason.IP_LOCALNET
    if is_zeronet(saddr):
        if not is_local_multicast(daddr) and protocol != IPPROTO_IGMP:
            return DropReason.IP_INVALID_SOURCE
        return None
    return fib_validate_source(net, saddr, 0, dev, 0, mark, tos)


def _broadcast_input(net: Net, saddr: int, daddr: int, dev: NetDevice, tos: int,
                     mark: int) -> Rtable | DropReason:
    if saddr and not is_zeronet(saddr):
        reason = fib_validate_source(net, saddr, 0, dev, 0, mark, tos)
        if reason:
            return reason
    return Rtable(DST_LOCAL, RTN_BROADCAST, dev=dev, is_broadcast=True)


def ip_route_output(net: Net, daddr: int, saddr: int = 0, oif: int | None = None,
                    mark: int = 0, tos: int = 0) -> Rtable | int:
    """ip_route_output_key_hash_rcu(): the route for a locally sent packet and its
    source address, or an errno (ENETUNREACH...)."""
    if saddr and (is_multicast(saddr) or is_lbcast(saddr) or is_zeronet(saddr)):
        return EINVAL
    if is_lbcast(daddr) and oif is not None:
        dev = net.devices[oif]
        return Rtable(DST_OUTPUT, RTN_BROADCAST, dev=dev, is_broadcast=True,
                      prefsrc=saddr or inet_select_addr(net, dev, 0, RT_SCOPE_LINK))
    res = fib_lookup(net, daddr, saddr, iif=LOOPBACK_IFINDEX, oif=oif, mark=mark, tos=tos)
    if isinstance(res, int):
        return res
    route = res.route
    if res.type is RTN_LOCAL:
        lo = net.devices[LOOPBACK_IFINDEX]
        return Rtable(DST_OUTPUT, RTN_LOCAL, dev=lo, prefsrc=saddr or daddr)
    dev = _route_dev(net, route)
    if dev is None:
        return ENETUNREACH
    if not saddr:
        if route.prefsrc is not None:
            saddr = route.prefsrc
        else:
            scope = RT_SCOPE_LINK if route.gateway is None else RT_SCOPE_UNIVERSE
            saddr = inet_select_addr(net, dev, route.gateway or daddr, scope)
    return Rtable(DST_OUTPUT, res.type, dev=dev, gateway=route.gateway, prefsrc=saddr,
                  is_broadcast=res.type is RTN_BROADCAST, mtu=route.mtu)
