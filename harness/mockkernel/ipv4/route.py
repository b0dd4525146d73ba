"""IPv4 routing: FIB rules and tables, input and output route decisions.

Models net/ipv4/fib_rules.c (Fib4RulesOps: IPv4's half of the rules engine
of core/fib_rules.py, which walks the rules), fib_trie.c
(fib_table_lookup, in fib_trie.py: longest prefix, then metric), fib_frontend.c
(fib_validate_source: rp_filter, local sources) and route.c
(ip_route_input_rcu, ip_route_input_mc, ip_mc_validate_source,
ip_route_input_slow, ip_route_output_key, inet_select_addr). The result of a
lookup is an `Rtable`, the model's `struct rtable`.

A received packet's route comes from ip_route_input_slow(): the FIB lookup,
the source validation, then the route cached on the nexthop
(fib_nh_common.nhc_rth_input, as __mkroute_input() and local_input reuse it)
while the namespace's rt_genid has not moved; rt_cache_flush() moves it on
every configuration change; there is no cache of routes per flow or
destination (none in the kernel since 3.6, commit 89aef8921bfb). Routes that
share a nexthop (fib_info, fib_find_info()) share its cached route. Routes the kernel
allocates per packet (errors, broadcasts, multicast) are made per call, and so
are output routes (the kernel's per-CPU nhc_pcpu_rth_output holds no source
address, which the model's Rtable carries). Left out:
multipath, nexthop objects, VRF/l3mdev, tclassid, nexthop exceptions (PMTU,
redirects), multicast routing (ip_mr_input: without a multicast router daemon
no device has mc_forwarding, so a multicast packet is delivered locally or
dropped, never forwarded).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import cached_property

from harness.dropreason import DropReason
from harness.journey import Hop, Stage
from harness.mockkernel.core import fib_rules
from harness.mockkernel.core.fib_rules import AF_INET, EAGAIN, ESRCH, FibRulesOps, Flowi, fib_rules_register
from harness.mockkernel.ipv4 import igmp
from harness.mockkernel.ipv4.fib_trie import Probes, fib_probe
from harness.mockkernel.net import (RT_SCOPE_HOST, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, RT_TABLE_DEFAULT, RT_TABLE_LOCAL,
                                    RT_TABLE_MAIN, RTN_BLACKHOLE, RTN_BROADCAST, RTN_LOCAL, RTN_MULTICAST,
                                    RTN_PROHIBIT, RTN_THROW, RTN_UNICAST, RTN_UNREACHABLE, FibRoute, FibRule, Net, NetDevice,
                                    RouteType, prefix_mask)
from harness.mockkernel.wire.ipv4 import IPPROTO_IGMP

# fib_default_rules_init(): (priority, table) of the rules a namespace starts with
DEFAULT_RULES = [(0, RT_TABLE_LOCAL), (32766, RT_TABLE_MAIN), (32767, RT_TABLE_DEFAULT)]
# errno values a lookup reports (fib_props[] in fib_semantics.c)
ENETUNREACH, EHOSTUNREACH, EACCES, EINVAL, ENODEV = 101, 113, 13, 22, 19
TYPE_ERRORS = {RTN_BLACKHOLE: EINVAL, RTN_UNREACHABLE: EHOSTUNREACH, RTN_PROHIBIT: EACCES}
# the same by rtm_type, an index read per packet (throw never reaches it: fib_probe() walks on)
FIB_PROPS_ERROR = tuple(TYPE_ERRORS.get(rtype, 0) for rtype in sorted(RouteType))
# fib4_rule_action(): an `ip rule` that drops fails the lookup with its own errno, which
# for `unreachable` is ENETUNREACH where an unreachable route's (fib_props[]) is EHOSTUNREACH
RULE_ACTION_ERRORS = {RTN_BLACKHOLE.keyword: EINVAL, RTN_UNREACHABLE.keyword: ENETUNREACH,
                      RTN_PROHIBIT.keyword: EACCES}
LOOPBACK_IFINDEX = 1
INADDR_LOOPBACK = 0x7F000001
IP_MAX_MTU = 0xFFFF  # include/net/ip.h: no IPv4 route's MTU counts for more


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
    RTCF_MULTICAST. For an output route (DST_OUTPUT) `prefsrc` and `daddr` are the
    flow's fl4->saddr and fl4->daddr after the lookup (ip_route_output())."""

    input: DstInput
    type: RouteType
    dev: NetDevice | None = None
    gateway: int | None = None
    prefsrc: int | None = None
    error: int = 0
    is_broadcast: bool = False
    mtu: int | None = None
    advmss: int | None = None  # the route's advmss metric (dst_metric_advmss())
    is_multicast: bool = False
    genid: int = 0
    # an output route's flow: fl4->daddr as ip_route_output_key_hash_rcu() left it (0.0.0.0
    # becomes the source), which the header of a packet built from the flow carries
    daddr: int = 0  # rt_genid when made: rt_cache_valid() holds while the namespace's matches

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
        """ipv4_mtu(): the route's mtu metric, else its device's, at most IP_MAX_MTU."""
        mtu = self.mtu or self.dev.mtu
        return mtu if mtu < IP_MAX_MTU else IP_MAX_MTU


def fib_table_lookup(net: Net, table: int, daddr: int, oif: int | None = None,
                     scope: int = RT_SCOPE_UNIVERSE) -> FibRoute | None:
    """fib_get_table() + fib_table_lookup(): None when the table does not exist
    or holds no usable route for `daddr`."""
    tb = net.tables.get(table)
    return fib_probe(tb.probes, daddr, net.devices, oif, scope) if tb is not None else None


class Fib4RulesOps(FibRulesOps):
    """fib4_rules_ops (net/ipv4/fib_rules.c): IPv4's half of the rules engine (core/fib_rules.py)."""

    family = AF_INET
    addr_bits = 32

    def match(self, rule: FibRule, flow: Flowi) -> bool:
        """fib4_rule_match(): source, destination and tos."""
        return ((rule.src is None or not (flow.saddr ^ rule.src[0]) & prefix_mask(rule.src[1]))
                and (rule.dst is None or not (flow.daddr ^ rule.dst[0]) & prefix_mask(rule.dst[1]))
                and (rule.tos is None or rule.tos == flow.tos))

    def action(self, net: Net, rule: FibRule, flow: Flowi) -> FibRoute | int:
        """fib4_rule_action(): a dropping rule's own errno (RULE_ACTION_ERRORS), else
        fib_table_lookup() of its table: EAGAIN for no route or a throw route, the
        route type's errno (fib_props[]) for an error route."""
        if rule.action in RULE_ACTION_ERRORS:
            return RULE_ACTION_ERRORS[rule.action]
        route = fib_table_lookup(net, rule.table, flow.daddr, flow.oif or None, flow.scope)
        if route is None or route.type is RTN_THROW:
            return EAGAIN
        return TYPE_ERRORS.get(route.type, route)

    def suppress(self, rule: FibRule, route: FibRoute) -> bool:
        """fib4_rule_suppress(): a route of prefix length up to suppress_prefixlength is not an answer."""
        return route.plen <= rule.suppress_prefixlength

    def configure(self, net: Net, rule: FibRule) -> None:
        """fib4_rule_configure(): a lookup rule without a table gets the first empty one (fib_empty_table())."""
        if rule.action == "lookup" and not rule.table:
            rule.table = next(tid for tid in range(1, RT_TABLE_DEFAULT) if tid not in net.tables)


def fib4_rules_init(net: Net) -> None:
    """fib4_rules_init() -> fib_default_rules_init(): local 0, main 32766, default 32767."""
    fib_rules_register(net, Fib4RulesOps([FibRule(priority, table, protocol="kernel")
                                          for priority, table in DEFAULT_RULES]))


def _selects_everything(rule) -> bool:
    """A plain `lookup` rule with no selector: it matches every packet."""
    return (rule.action == "lookup" and not rule.invert and rule.suppress_prefixlength < 0
            and (rule.iif, rule.oif, rule.fwmark, rule.src, rule.dst, rule.tos) == (None,) * 6)


class InDevConf:
    """The device's ipv4_devconf as route.c reads it per packet: IN_DEV_FORWARD()
    (the device's own), IN_DEV_ROUTE_LOCALNET() and IN_DEV_ACCEPT_LOCAL() (all
    or the device), IN_DEV_RPFILTER() (the max of all and the device), and what
    fib_validate_source() makes of them: `full_source_check` when it must route
    back to the source (rp_filter or custom rules), else `refused_sources`, the
    local addresses a packet may not come from (none with accept_local)."""

    __slots__ = ("forwarding", "route_localnet", "accept_local", "rp_filter", "full_source_check",
                 "refused_sources")

    def __init__(self, net: Net, dev: NetDevice, conf: RouteInputConf) -> None:
        sysctl, name = net.sysctl, dev.name
        self.forwarding = sysctl.conf(name, "forwarding")
        self.route_localnet = sysctl.conf("all", "route_localnet") or sysctl.conf(name, "route_localnet")
        self.accept_local = sysctl.conf("all", "accept_local") or sysctl.conf(name, "accept_local")
        self.rp_filter = max(sysctl.conf("all", "rp_filter"), sysctl.conf(name, "rp_filter"))
        self.full_source_check = bool(self.rp_filter or conf.has_custom_rules)
        self.refused_sources = frozenset() if self.accept_local else conf.local_addrs


class RouteInputConf:
    """What the input route reads of the configuration besides the FIB, kept
    parsed as the kernel keeps it (in_dev->cnf, net->ipv4.fib_has_custom_rules,
    the inet_addr_lst hash) and made again after rt_cache_flush(): `in_devs`
    by ifindex; `rule_probes`, the probes of the tables the rule walk looks
    up when every rule is a plain lookup (else None: the walk matches each
    rule): with the three default rules alone, local's and main's as the one
    trie the kernel keeps while it has no custom rules (fib_new_table() makes
    local an alias of main; fib_lookup() looks up main, then default), else
    each table's in rule order; `has_custom_rules`, a rule beyond the three
    default priorities."""

    __slots__ = ("in_devs", "local_addrs", "has_custom_rules", "rule_probes")

    def __init__(self, net: Net) -> None:
        self.in_devs: dict[int, InDevConf] = {}
        self.local_addrs = frozenset(local_addresses(net))
        rules = net.rules_ops[AF_INET].rules
        self.has_custom_rules = any(r.priority not in (0, 32766, 32767) for r in rules)
        self.rule_probes: Probes | None = None
        if [(r.priority, r.table) for r in rules] == DEFAULT_RULES and all(map(_selects_everything, rules)):
            # fib_lookup()'s own path: local merged into main's trie (probes of one length:
            # local's leaf first), then default
            merged = sorted(net.tables[RT_TABLE_LOCAL].probes + net.tables[RT_TABLE_MAIN].probes,
                            key=lambda probe: -probe[0])
            self.rule_probes = tuple(merged) + tuple((mask, leaves, 1) for mask, leaves, _ in
                                                     net.tables[RT_TABLE_DEFAULT].probes)
        elif all(map(_selects_everything, rules)):
            self.rule_probes = tuple((mask, leaves, position) for position, rule in enumerate(rules)
                                     if rule.table in net.tables
                                     for mask, leaves, _ in net.tables[rule.table].probes)

    def in_dev(self, net: Net, dev: NetDevice) -> InDevConf:
        in_dev = self.in_devs[dev.ifindex] = InDevConf(net, dev, self)
        return in_dev


def rt_input_conf(net: Net) -> RouteInputConf:
    conf = net.rt_input_conf
    if conf is None:
        conf = net.rt_input_conf = RouteInputConf(net)
    return conf


def rt_cache_flush(net: Net) -> None:
    """rt_cache_flush() -> rt_genid_bump_ipv4(): every nexthop's cached route
    is stale from now on; the parsed configuration is read again."""
    net.rt_genid += 1
    net.rt_input_conf = None


def fib_rules_lookup(net: Net, daddr: int, saddr: int, iif: int, oif: int | None, mark: int, tos: int,
                     scope: int = RT_SCOPE_UNIVERSE) -> FibRoute | int:
    """fib_rules_lookup(): walk `ip rule` in priority order (fib_nl_newrule()
    keeps them so). Returns the route or an errno: ENETUNREACH when nothing
    matched; for a rule whose action drops, fib4_rule_action()'s errno
    (RULE_ACTION_ERRORS), not that of the route type of the same name
    (TYPE_ERRORS, fib_props[] in fib_semantics.c)."""
    conf = net.rt_input_conf or rt_input_conf(net)
    if conf.rule_probes is not None:
        route = fib_probe(conf.rule_probes, daddr, net.devices, oif, scope)
        return ENETUNREACH if route is None else FIB_PROPS_ERROR[route.type] or route
    result = fib_rules.fib_rules_lookup(net, net.rules_ops[AF_INET], Flowi(daddr, saddr, iif, oif or 0, mark, tos,
                                                                            scope=scope))
    # fib_lookup(): no rule answered (ESRCH) is a network unreachable
    return ENETUNREACH if result == ESRCH else result


def fib_lookup(net: Net, daddr: int, saddr: int = 0, iif: int = LOOPBACK_IFINDEX,
               oif: int | None = None, mark: int = 0, tos: int = 0,
               scope: int = RT_SCOPE_UNIVERSE) -> FibResult | int:
    """fib_lookup(): fib_rules_lookup()'s route with the table it was found in, or an errno."""
    route = fib_rules_lookup(net, daddr, saddr, iif, oif, mark, tos, scope)
    return route if route.__class__ is int else FibResult(route, route.table)


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


def inet_addr_is_unicast(net: Net, addr: int) -> bool:
    """inet_addr_type() == RTN_UNICAST: not a zero-net, limited broadcast or
    multicast address, and no local-table route (local, broadcast) of another type."""
    if is_zeronet(addr) or is_lbcast(addr) or is_multicast(addr):
        return False
    table = net.tables.get(RT_TABLE_LOCAL)
    route = table.longest_match(addr) if table is not None else None
    return route is None or route.type is RTN_UNICAST


def ip_rt_get_source(net: Net, rt: "Rtable", daddr: int) -> int:
    """ip_rt_get_source() for a forwarded packet's input route: the preferred
    source of the route to `daddr`, else the outgoing device's address toward it."""
    return rt.prefsrc or inet_select_addr(net, rt.dev, rt.gateway or daddr, RT_SCOPE_UNIVERSE)


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
    the drop reason (IP_RPFILTER, IP_LOCAL_SOURCE, IP_INVALID_SOURCE). Without
    rp_filter or custom rules only a local source is refused, unless
    accept_local; else __fib_validate_source() routes back to `saddr`."""
    conf = net.rt_input_conf or rt_input_conf(net)
    in_dev = conf.in_devs.get(dev.ifindex) or conf.in_dev(net, dev)
    if not in_dev.full_source_check:
        return DropReason.IP_LOCAL_SOURCE if saddr in in_dev.refused_sources else None
    # __fib_validate_source(): the reverse lookup, from `saddr`'s point of view
    rpf = in_dev.rp_filter
    route = fib_rules_lookup(net, saddr, daddr, oif or LOOPBACK_IFINDEX, None, 0, tos)
    if route.__class__ is int:
        return DropReason.IP_RPFILTER if rpf else None
    if route.type is not RTN_UNICAST:
        if route.type is not RTN_LOCAL:
            return DropReason.IP_INVALID_SOURCE
        if not in_dev.accept_local:
            return DropReason.IP_LOCAL_SOURCE
    uses_dev = route.oif == dev.ifindex or (route.type is RTN_LOCAL and dev.is_loopback)
    if uses_dev:
        return None
    if not dev.addrs:
        return DropReason.IP_RPFILTER if rpf else None
    if rpf == 1:
        return DropReason.IP_RPFILTER
    return None


def ip_route_input(net: Net, daddr: int, saddr: int, tos: int, dev: NetDevice,
                   mark: int = 0, protocol: int = 0) -> Rtable | DropReason:
    """ip_route_input_noref() -> ip_route_input_rcu(): the route for a received
    packet, or a drop reason.

    A multicast destination is recognized first, before any source check: a
    group the device has joined (ip_check_mc_rcu()) gets a multicast route
    from ip_route_input_mc(); any other group is dropped with NOT_SPECIFIED
    (multicast forwarding would need mc_forwarding, which only a multicast
    router daemon turns on). Everything else is looked up in the FIB
    (ip_route_input_slow()), packet by packet."""
    if daddr >> 28 == 0xE:
        if not igmp.ip_check_mc_rcu(dev, daddr, saddr, protocol):
            return DropReason.NOT_SPECIFIED
        return ip_route_input_mc(net, daddr, saddr, tos, dev, mark, protocol)
    return ip_route_input_slow(net, daddr, saddr, tos, dev, mark)


def ip_route_input_slow(net: Net, daddr: int, saddr: int, tos: int, dev: NetDevice,
                        mark: int = 0) -> Rtable | DropReason:
    """The route for a received packet, or a drop reason: the martian checks,
    fib_lookup(), then a local or forwarded route from the nexthop's cache
    (rt_cache_valid()) or made and cached there; an error route when nothing
    matched or the device does not forward."""
    if saddr >> 28 == 0xE or saddr == 0xFFFFFFFF:  # ipv4_is_multicast(), ipv4_is_lbcast()
        return DropReason.IP_INVALID_SOURCE
    if daddr == 0xFFFFFFFF or (saddr == 0 and daddr == 0):
        return _broadcast_input(net, saddr, daddr, dev, tos, mark)
    if saddr == 0:  # ipv4_is_zeronet()
        return DropReason.IP_INVALID_SOURCE
    if daddr == 0:
        return DropReason.IP_INVALID_DEST
    conf = net.rt_input_conf or rt_input_conf(net)
    in_dev = conf.in_devs.get(dev.ifindex) or conf.in_dev(net, dev)
    if (daddr >> 24 == 127 or saddr >> 24 == 127) and not in_dev.route_localnet:  # ipv4_is_loopback()
        return DropReason.IP_LOCALNET
    if conf.rule_probes is not None:  # fib_rules_lookup()'s walk of plain rules, one call less per packet
        route = fib_probe(conf.rule_probes, daddr, net.devices)
        error = ENETUNREACH if route is None else FIB_PROPS_ERROR[route.type]
    else:
        route = fib_rules_lookup(net, daddr, saddr, dev.ifindex, None, mark, tos)
        error = route if route.__class__ is int else 0
    if error:
        return Rtable(DST_ERROR, RTN_UNREACHABLE, dev=dev, error=error if in_dev.forwarding else EHOSTUNREACH)
    rtype = route.type
    if rtype is RTN_UNICAST and in_dev.forwarding:
        dst_input, oif = DST_FORWARD, route.oif or 0
    elif rtype is RTN_LOCAL:
        dst_input, oif = DST_LOCAL, 0
    elif rtype is RTN_BROADCAST:
        return _broadcast_input(net, saddr, daddr, dev, tos, mark)
    elif not in_dev.forwarding:
        return Rtable(DST_ERROR, RTN_UNREACHABLE, dev=dev, error=EHOSTUNREACH)
    else:
        return DropReason.IP_INVALID_DEST
    # fib_validate_source()'s own first test, inline on the per-packet path
    if in_dev.full_source_check:
        reason = fib_validate_source(net, saddr, daddr, dev, oif, mark, tos)
        if reason:
            return reason
    elif saddr in in_dev.refused_sources:
        return DropReason.IP_LOCAL_SOURCE
    nh = route.nh
    rth = nh.rth_input
    if rth is None or rth.genid != net.rt_genid:
        rth = nh.rth_input = rt_dst_alloc(net, route, dst_input)
    return rth


def rt_dst_alloc(net: Net, route: FibRoute, dst_input: DstInput) -> Rtable:
    """The route a nexthop caches for received packets (rt_dst_alloc() +
    rt_set_nexthop()): forwarded out of its device, or delivered locally on
    the loopback device's dst (ip_rt_get_dev())."""
    if dst_input is DST_LOCAL:
        return Rtable(DST_LOCAL, RTN_LOCAL, dev=net.devices[LOOPBACK_IFINDEX], genid=net.rt_genid)
    return Rtable(DST_FORWARD, RTN_UNICAST, dev=net.devices.get(route.oif), gateway=route.gateway,
                  prefsrc=route.prefsrc, mtu=route.mtu, genid=net.rt_genid)


def _route_localnet(net: Net, dev: NetDevice) -> int:
    """IN_DEV_ROUTE_LOCALNET(): conf/all or the device's route_localnet."""
    conf = net.rt_input_conf or rt_input_conf(net)
    return (conf.in_devs.get(dev.ifindex) or conf.in_dev(net, dev)).route_localnet


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


def ip_dev_find(net: Net, addr: int) -> NetDevice | None:
    """devinet.c __ip_dev_find(): the device holding `addr`, else (loopback
    subnets) the device of the local table's RTN_LOCAL route to it."""
    for dev in net.devices.values():
        for a in dev.addrs:
            if a.local == addr:
                return dev
    table = net.tables.get(RT_TABLE_LOCAL)
    route = table.longest_match(addr) if table is not None else None
    return _route_dev(net, route) if route is not None and route.type is RTN_LOCAL else None


def ip_route_output(net: Net, daddr: int, saddr: int = 0, oif: int | None = None,
                    mark: int = 0, tos: int = 0) -> Rtable | int:
    """ip_route_output_key_hash_rcu() (net/ipv4/route.c): the route for a locally
    sent packet, or an errno (ENETUNREACH...). The kernel's callers pass a flowi4
    that the lookup rewrites and build their header from it; here the flow as the
    lookup left it is the route's `prefsrc` (fl4->saddr) and `daddr` (fl4->daddr):

    - a source given must be unicast (EINVAL); with no oif, to a multicast or the
      limited broadcast address, it picks the device (the device holding it,
      __ip_dev_find(), else ENETUNREACH as 6.18 answers `ip route get
      255.255.255.255 from` a foreign address: "user can direct multicasts and
      limited broadcast via necessary interface");
    - with an oif (down: ENETUNREACH), a link-local group or the limited broadcast
      goes out of it from inet_select_addr(dev, 0, RT_SCOPE_LINK); otherwise the
      source of a group is inet_select_addr() in the flow's scope, of 0.0.0.0
      inet_select_addr(dev, 0, RT_SCOPE_HOST);
    - `if (!fl4->daddr) { fl4->daddr = fl4->saddr; if (!fl4->daddr) fl4->daddr =
      fl4->saddr = htonl(INADDR_LOOPBACK); dev_out = net->loopback_dev; ...
      res->type = RTN_LOCAL; ...}`: a packet to 0.0.0.0 goes to its own source
      (127.0.0.1 without one) through lo;
    - a failed FIB lookup with an oif is taken for on-link: unicast out of the oif;
    - a local destination goes through lo, from the route's prefsrc, else from
      itself; any other from the route's prefsrc, else fib_result_prefsrc():
      inet_select_addr(dev, gateway, the route's scope) (fib_select_path());
    - __mkroute_output(): a loopback source out of a device other than lo is
      EINVAL unless route_localnet; the limited broadcast and groups are
      broadcast and multicast routes."""
    if saddr:
        if is_multicast(saddr) or is_lbcast(saddr) or is_zeronet(saddr):
            return EINVAL
        if oif is None and (is_multicast(daddr) or is_lbcast(daddr)):
            dev = ip_dev_find(net, saddr)
            if dev is None:
                return ENETUNREACH
            return _mkroute_output(net, daddr, saddr, dev, RTN_UNICAST)
    if oif is not None:
        dev = net.devices.get(oif)
        if dev is None:
            return ENODEV
        if not dev.up:
            return ENETUNREACH
        if is_local_multicast(daddr) or is_lbcast(daddr):
            return _mkroute_output(net, daddr, saddr or inet_select_addr(net, dev, 0, RT_SCOPE_LINK), dev,
                                   RTN_UNICAST)
        if not saddr:
            if is_multicast(daddr):
                saddr = inet_select_addr(net, dev, 0, RT_SCOPE_UNIVERSE)
            elif not daddr:
                saddr = inet_select_addr(net, dev, 0, RT_SCOPE_HOST)
    if not daddr:
        daddr = saddr = saddr or INADDR_LOOPBACK
        return _mkroute_output(net, daddr, saddr, net.devices[LOOPBACK_IFINDEX], RTN_LOCAL)
    res = fib_lookup(net, daddr, saddr, iif=LOOPBACK_IFINDEX, oif=oif, mark=mark, tos=tos)
    if res.__class__ is int:
        if oif is None:
            return res
        dev = net.devices[oif]
        return _mkroute_output(net, daddr, saddr or inet_select_addr(net, dev, 0, RT_SCOPE_LINK), dev, RTN_UNICAST)
    route = res.route
    if route.type is RTN_LOCAL:
        return _mkroute_output(net, daddr, saddr or route.prefsrc or daddr, net.devices[LOOPBACK_IFINDEX], RTN_LOCAL)
    dev = _route_dev(net, route)
    if dev is None:
        return ENETUNREACH
    if not saddr:
        saddr = route.prefsrc or inet_select_addr(net, dev, route.gateway or 0, route.scope)
    return _mkroute_output(net, daddr, saddr, dev, route.type, route)


def _mkroute_output(net: Net, daddr: int, saddr: int, dev: NetDevice, rtype: RouteType,
                    route: FibRoute | None = None) -> Rtable | int:
    """__mkroute_output(): EINVAL for a loopback source out of a device other than
    lo (unless route_localnet); the limited broadcast is a broadcast route, a group
    a multicast one (neither keeps the FIB's nexthop: fi = NULL)."""
    if saddr >> 24 == 127 and not dev.is_loopback and not _route_localnet(net, dev):
        return EINVAL
    if is_lbcast(daddr):
        rtype, route = RTN_BROADCAST, None
    elif is_multicast(daddr):
        rtype = RTN_MULTICAST
        if route is not None and route.plen < 4:  # "If multicast route do not exist use default one, but do not gateway"
            route = None
    if route is None or rtype is RTN_BROADCAST:
        return Rtable(DST_OUTPUT, rtype, dev=dev, prefsrc=saddr, daddr=daddr, is_broadcast=rtype is RTN_BROADCAST,
                      is_multicast=rtype is RTN_MULTICAST)
    return Rtable(DST_OUTPUT, rtype, dev=dev, gateway=route.gateway, prefsrc=saddr, daddr=daddr,
                  is_multicast=rtype is RTN_MULTICAST, mtu=route.mtu, advmss=route.advmss)
