"""IPv6 routing (net/ipv6/route.c, with fib6_rules.c's lookup for the default
rules): route requests, the input and output route decisions, the routes a
device's state changes.

- Requests (inet6_rtm_newroute/delroute -> ip6_route_add()/ip6_route_del()):
  a `Fib6Config` (struct fib6_config) checked as ip6_route_info_create() and
  fib6_nh_init() check it: the metric defaults to IP6_RT_PRIO_USER (1024),
  a reject route (blackhole, unreachable, prohibit, throw) or one through lo
  goes out of lo, a gateway must be unicast and reached by a connected route
  (ip6_route_check_nh(): it gives the device when none was named), the
  device must have IPv6 on (EACCES) and be up (ENETDOWN). ip6_route_del() deletes the first route of the prefix
  matching what the request names.
- Lookups (fib6_rule_lookup(), fib6_rules.py: the rules pick the table,
  ip6_pol_route_input/output() look it up) through fib6_table_lookup()
  (ip6_fib.py) pick, of the longest prefix, the lowest-metric route whose
  device is up, preferring one out of `oif`; a destination that needs a
  strict match (rt6_need_strict(): multicast, link-local, loopback) takes
  only a route out of `oif`, and none whose lifetime (RTF_EXPIRES) is over
  (find_match() -> fib6_check_expired()). No route at all is ip6_null_entry
  (ENETUNREACH).
- The dst (`Rt6Info`, struct rt6_info) a route gives, as ip6_rt_init_dst():
  local and anycast routes deliver (ip6_input) on lo's dst, multicast
  prefixes go to ip6_mc_input, the rest to ip6_forward; reject routes fail
  with ip6_rt_type_to_error()'s errno. A received packet's dst is cached on
  the route while fib6_sernum holds (the kernel's per-CPU route copy).
- ECMP: a lookup landing on a route with siblings takes the nexthop whose
  share of the hash space holds the flow's rt6_multipath_hash()
  (fib6_select_path()); requests with several nexthops add and delete the
  group (ip6_route_multipath_add()/_del()).
Left out: router preference and neighbour reachability in the route score
(rt6_score_route(); a host's failed router is not passed over), multipath
hash policies 2 and 3 (inner headers, custom fields: refused when set),
nexthop objects, PMTU/redirect exceptions, VRF; an expired route (RTF_EXPIRES: a
router advertisement's) is deleted at its expiry, where the kernel's garbage
collector (fib6_run_gc()) comes up to gc_interval (30 s) later.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass, replace
from enum import Enum
from functools import cached_property

from harness.journey import Hop, Stage
from harness.mockkernel.core.errors import RtnlError, not_modelled
from harness.mockkernel.core.flow_dissector import flow_hash_ipv6
from harness.mockkernel.core.rtnetlink import NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE
from harness.mockkernel.core.sysctl import proc_dou8vec_minmax
from harness.mockkernel.ipv6.fib6_rules import Flowi6, fib6_rule_lookup
from harness.mockkernel.ipv6.ip6_fib import (MASKS, RTF_ADDRCONF, RTF_ANYCAST, RTF_DEFAULT, RTF_GATEWAY,
                                             RTF_LOCAL, RTF_NONEXTHOP, RTF_REJECT, RTF_UP, Fib6Info, Fib6Table,
                                             fib6_new_table)
from harness.mockkernel.ipv6.netns import RT6_TABLE_LOCAL, RT6_TABLE_MAIN
from harness.mockkernel.net import (RTN_ANYCAST, RTN_BLACKHOLE, RTN_LOCAL, RTN_MULTICAST, RTN_PROHIBIT,
                                    RTN_THROW, RTN_UNICAST, RTN_UNREACHABLE, NetDevice, RouteType)
from harness.mockkernel.wire.ipv6 import (ANY, FLOWINFO_ADDRS, IPV6_ADDR_LINKLOCAL, IPV6_ADDR_LOOPBACK,
                                          IPV6_ADDR_MAPPED, IPV6_ADDR_MULTICAST, IPV6_ADDR_UNICAST, IPV6_HLEN,
                                          NEXTHDR, NEXTHDR_DEST, NEXTHDR_HOP, NEXTHDR_ICMP, NEXTHDR_ROUTING,
                                          NEXTHDR_TCP, NEXTHDR_UDP, exthdr_len, ipv6_addr_type)
from harness.mockkernel.wire.udp import PORTS

IP6_RT_PRIO_USER, IP6_RT_PRIO_ADDRCONF = 1024, 256
LOOPBACK_IFINDEX = 1
REJECT_TYPES = (RTN_BLACKHOLE, RTN_UNREACHABLE, RTN_PROHIBIT, RTN_THROW)
EAGAIN = errno.EAGAIN
# ip6_rt_type_to_error()
TYPE_ERRORS = {RTN_BLACKHOLE: errno.EINVAL, RTN_UNREACHABLE: errno.EHOSTUNREACH, RTN_PROHIBIT: errno.EACCES,
               RTN_THROW: errno.EAGAIN}
# the namespace's error dsts by their errno: ip6_null_entry, ip6_blk_hole_entry, ip6_prohibit_entry
ERROR_ENTRY_TYPES = {errno.ENETUNREACH: RTN_UNREACHABLE, errno.EINVAL: RTN_BLACKHOLE, errno.EACCES: RTN_PROHIBIT}
DSCP_MASK, FLOWLABEL_MASK = 0xFC, 0xFFFFF
MULTIPATH_HASH_POLICY, MULTIPATH_HASH_SEED = "net.ipv6.fib_multipath_hash_policy", "net.ipv4.fib_multipath_hash_seed"
ICMPV6_HLEN, ICMPV6_INFOMSG_MASK = 8, 0x80  # icmpv6_is_err(): types below 128
# proto_ports_offset(): the transports whose first four bytes are the ports: TCP, UDP, DCCP, ESP (its SPI),
# SCTP, UDP-Lite
PORTED_PROTOS = (NEXTHDR_TCP, NEXTHDR_UDP, 33, 50, 132, 136)


class Rt6Input(Enum):
    """dst->input of an IPv6 route; the value is the ROUTING hop's verdict."""

    LOCAL = "LOCAL"  # ip6_input
    MULTICAST = "MULTICAST"  # ip6_mc_input
    FORWARD = "FORWARD"  # ip6_forward
    ERROR = "ERROR"  # ip6_pkt_discard, ip6_pkt_prohibit, dst_discard (blackhole)


RT6_LOCAL, RT6_MULTICAST, RT6_FORWARD, RT6_ERROR = Rt6Input.LOCAL, Rt6Input.MULTICAST, Rt6Input.FORWARD, \
    Rt6Input.ERROR


@dataclass(eq=False)
class Rt6Info:
    """struct rt6_info: the dst a lookup gives. `f6i` is the route it came
    from (rt->from; None for ip6_null_entry), `error` dst.error (an errno),
    `gateway` the nexthop's (rt6_nexthop() falls back to the destination)."""

    input: Rt6Input
    type: RouteType
    dev: NetDevice | None
    f6i: Fib6Info | None = None
    gateway: bytes | None = None
    error: int = 0
    mtu: int | None = None  # RTAX_MTU of the route
    sernum: int = 0

    @cached_property
    def hop(self) -> Hop:
        detail = f"errno {self.error}" if self.input is RT6_ERROR else (
            self.type.keyword if self.input is not RT6_FORWARD else self.dev.name)
        return Hop(Stage.ROUTING, "ip6_route_input", self.input.value, detail)

    def nexthop(self, daddr: bytes) -> bytes:
        """rt6_nexthop()."""
        return self.gateway if self.gateway is not None else daddr


@dataclass
class Fib6Config:
    """struct fib6_config: a route request as rtm_to_fib6_config() reads it.
    `metric` 0 and `protocol` None take the kernel's defaults (1024, boot)."""

    dst: bytes
    dst_len: int
    table: int = RT6_TABLE_MAIN
    type: RouteType = RTN_UNICAST
    ifindex: int | None = None
    gateway: bytes | None = None
    prefsrc: bytes | None = None
    metric: int = 0
    protocol: str | None = None
    mtu: int | None = None
    flags: int = RTF_UP
    weight: int = 1
    # RTA_MULTIPATH: one Fib6Config a nexthop (gateway, ifindex, weight), ip6_route_multipath_add()
    nexthops: list[Fib6Config] | None = None


def rt6_need_strict(daddr: bytes) -> bool:
    """A destination only a route out of the flow's own device may reach."""
    return bool(ipv6_addr_type(daddr) & (IPV6_ADDR_MULTICAST | IPV6_ADDR_LINKLOCAL | IPV6_ADDR_LOOPBACK))


def ipv6_disabled(net, dev: NetDevice) -> bool:
    """idev->cnf.disable_ipv6 of `dev` (its inet6_dev, dev->ip6_ptr, ipv6/addrconf.py)."""
    idev = dev.ip6_ptr
    return idev is None or bool(idev.cnf.disable_ipv6)


def fib6_table_lookup(net, table: Fib6Table, daddr: int, oif: int, strict: bool) -> Fib6Info | None:
    """fib6_node_lookup() + rt6_select(), backtracking to shorter prefixes
    while a node offers no route whose device is up (and, strict, is `oif`):
    of the node's lowest usable metric, a route out of `oif` first."""
    devices = net.devices
    for mask, leaves in table.probes:
        routes = leaves.get(daddr & mask)
        if routes is None:
            continue
        best = None
        for f6i in routes:
            if best is not None and f6i.metric != best.metric:
                break
            dev = devices.get(f6i.ifindex)
            if dev is None or not dev.up or (f6i.expires is not None and net.clock.now >= f6i.expires):
                continue
            if f6i.ifindex == oif or not oif:
                return f6i
            if not strict and best is None:
                best = f6i
        if best is not None:
            return best
    return None


def ip6_pol_route_lookup(net, table: Fib6Table, flow: Flowi6) -> Fib6Info | None:
    """ip6_pol_route_lookup(): the table's route for the flow's oif, no path selection."""
    return fib6_table_lookup(net, table, flow.daddr, flow.oif, flow.strict)


def ip6_pol_route_input(net, table: Fib6Table, flow: Flowi6) -> Fib6Info | None:
    """ip6_pol_route(): the route of a received packet prefers one out of the
    device it came in on; an ECMP route's nexthop by the flow's hash."""
    f6i = fib6_table_lookup(net, table, flow.daddr, flow.iif, flow.strict)
    return f6i if f6i is None or f6i.siblings is None else fib6_select_path(net, f6i, flow, flow.iif)


def ip6_pol_route_output(net, table: Fib6Table, flow: Flowi6) -> Fib6Info | None:
    f6i = fib6_table_lookup(net, table, flow.daddr, flow.oif, flow.strict)
    return f6i if f6i is None or f6i.siblings is None else fib6_select_path(net, f6i, flow, flow.oif)


def fib6_select_path(net, match: Fib6Info, flow: Flowi6, oif: int) -> Fib6Info:
    """fib6_select_path(): of `match`'s ECMP group, in order, the first
    nexthop whose upper bound the flow's hash does not pass, if it may be
    used (rt6_score_route(): a strict flow only out of `oif`); else `match`."""
    group = match.siblings
    mp_hash = rt6_multipath_hash(net, flow)
    for sibling in group:
        if mp_hash > sibling.upper_bound:
            continue
        if flow.strict and oif and sibling.ifindex != oif:
            break
        return sibling
    return match


def rt6_multipath_hash(net, flow: Flowi6) -> int:
    """rt6_multipath_hash(): net.ipv6.fib_multipath_hash_policy 0 hashes the
    addresses, flow label and next header (of a received packet its own, of
    an ICMPv6 error the packet it quotes: ip6_multipath_l3_keys()); 1 the
    addresses, next header past the extension headers, and ports (the flow
    dissector's: none in a fragment). The key is net.ipv4.fib_multipath_hash_seed,
    or a random seed while that is 0. 31 bits, as fib6_select_path() compares."""
    sysctl = net.sysctl.values
    skb = flow.skb
    if skb is None:
        saddr, daddr = flow.saddr.to_bytes(16, "big"), flow.daddr.to_bytes(16, "big")
        proto, flowlabel, sport, dport = flow.proto, flow.flowlabel, flow.sport, flow.dport
    elif sysctl[MULTIPATH_HASH_POLICY]:
        saddr, daddr, proto, sport, dport = ip6_multipath_l4_keys(skb)
        flowlabel = 0
    else:
        saddr, daddr, proto, flowlabel = ip6_multipath_l3_keys(skb)
        sport = dport = 0
    if not sysctl[MULTIPATH_HASH_POLICY]:
        sport = dport = 0
    else:
        flowlabel = 0
    seed = sysctl[MULTIPATH_HASH_SEED] or multipath_random_seed(net)
    key = seed << 32 | seed
    return flow_hash_ipv6(saddr, daddr, proto, flowlabel, sport, dport, key, key) >> 1


def proc_rt6_multipath_hash_policy(sysctls, table, key: str, text: str) -> int:
    """proc_rt6_multipath_hash_policy(): 0 to 3; the mock hashes as policies 0 and 1 do."""
    policy = proc_dou8vec_minmax(sysctls, table, key, text)
    if policy > 1:
        raise not_modelled(f"net.ipv6.fib_multipath_hash_policy {policy} (inner headers, custom fields)")
    return policy


def multipath_random_seed(net) -> int:
    """The mp_seed the kernel draws while net.ipv4.fib_multipath_hash_seed is 0."""
    seed = net.ipv6.multipath_random_seed
    if seed is None:
        seed = net.ipv6.multipath_random_seed = net.random.getrandbits(32)
    return seed


def ip6_multipath_l3_keys(skb) -> tuple[bytes, bytes, int, int]:
    """(saddr, daddr, next header, flow label) of the packet, or of the one an ICMPv6 error quotes."""
    buf, nh = skb.buf, skb.network_header
    key_iph = nh
    if buf[nh + NEXTHDR] == NEXTHDR_ICMP and nh + IPV6_HLEN + ICMPV6_HLEN + IPV6_HLEN <= skb.tail \
            and buf[nh + IPV6_HLEN] < ICMPV6_INFOMSG_MASK:
        key_iph = nh + IPV6_HLEN + ICMPV6_HLEN
    first_word, saddr, daddr = FLOWINFO_ADDRS.unpack_from(buf, key_iph)
    return saddr, daddr, buf[key_iph + NEXTHDR], first_word & FLOWLABEL_MASK


def ip6_multipath_l4_keys(skb) -> tuple[bytes, bytes, int, int, int]:
    """skb_flow_dissect_flow_keys() for IPv6: the addresses, the next header
    past hop-by-hop, routing and destination options, and the ports of a
    transport that has them; a fragment stops the walk (ip_proto 44, no ports)."""
    buf, nh, end = skb.buf, skb.network_header, skb.tail
    _, saddr, daddr = FLOWINFO_ADDRS.unpack_from(buf, nh)
    proto, offset = buf[nh + NEXTHDR], nh + IPV6_HLEN
    while proto in (NEXTHDR_HOP, NEXTHDR_ROUTING, NEXTHDR_DEST) and offset + 8 <= end:
        proto, offset = buf[offset], offset + exthdr_len(buf, offset, proto)
    if proto in PORTED_PROTOS and offset + 4 <= end:
        sport, dport = PORTS.unpack_from(buf, offset)
        return saddr, daddr, proto, sport, dport
    return saddr, daddr, proto, 0, 0


def fib6_lookup(net, daddr: bytes, oif: int = 0, strict: bool = False) -> Fib6Info | int:
    """fib6_lookup() through the rules for a flow with no source or mark: a
    route, or the errno of the dst the lookup ends with (ENETUNREACH for none)."""
    return fib6_rule_lookup(net, Flowi6(int.from_bytes(daddr, "big"), 0, LOOPBACK_IFINDEX, oif,
                                        has_saddr=False, lookup=ip6_pol_route_lookup, strict=strict))


def ip6_rt_dst(net, f6i: Fib6Info) -> Rt6Info:
    """ip6_rt_init_dst() on a copy of the route: what its packets do next."""
    sernum = net.ipv6.fib6_sernum
    if f6i.flags & RTF_REJECT:
        return Rt6Info(RT6_ERROR, f6i.type, net.devices[LOOPBACK_IFINDEX], f6i, error=TYPE_ERRORS.get(
            f6i.type, errno.ENETUNREACH), sernum=sernum)
    if f6i.type is RTN_LOCAL or f6i.type is RTN_ANYCAST:
        return Rt6Info(RT6_LOCAL, f6i.type, net.devices[LOOPBACK_IFINDEX], f6i, sernum=sernum)
    dev = net.devices[f6i.ifindex]
    if f6i.dst[0] == 0xFF:
        return Rt6Info(RT6_MULTICAST, RTN_MULTICAST, dev, f6i, mtu=f6i.mtu, sernum=sernum)
    return Rt6Info(RT6_FORWARD, f6i.type, dev, f6i, f6i.gateway, mtu=f6i.mtu, sernum=sernum)


def ip6_error_entry(net, error: int) -> Rt6Info:
    """The namespace's dst a lookup ends on without a route: ip6_null_entry
    (ENETUNREACH), or the entry of a rule's action: ip6_blk_hole_entry
    (EINVAL), ip6_prohibit_entry (EACCES)."""
    return Rt6Info(RT6_ERROR, ERROR_ENTRY_TYPES[error], net.devices[LOOPBACK_IFINDEX], error=error)


def ip6_route_input(net, daddr: bytes, dev: NetDevice, saddr: bytes = ANY, mark: int = 0, flowinfo: int = 0,
                    skb=None, proto: int = 0, sport: int = 0, dport: int = 0) -> Rt6Info:
    """ip6_route_input() -> ip6_pol_route_input(): the dst of a received
    packet (a flow with its source, RT6_LOOKUP_F_HAS_SADDR), looked up with
    the receiving device as the flow's interface; `flowinfo` is the header's
    traffic class and flow label (ip6_flowinfo()). Without the packet
    (`ip -6 route get ... iif`) the multipath hash reads the flow's fields."""
    f6i = fib6_rule_lookup(net, Flowi6(int.from_bytes(daddr, "big"), int.from_bytes(saddr, "big"), dev.ifindex,
                                       0, mark, flowinfo >> 20 & DSCP_MASK, lookup=ip6_pol_route_input,
                                       flowlabel=flowinfo & FLOWLABEL_MASK, proto=proto, sport=sport, dport=dport,
                                       strict=rt6_need_strict(daddr), skb=skb))
    if f6i.__class__ is int:
        return ip6_error_entry(net, f6i)
    rt = f6i.rt6i_input
    if rt is None or rt.sernum != net.ipv6.fib6_sernum:
        rt = f6i.rt6i_input = ip6_rt_dst(net, f6i)
    return rt


def ip6_route_output(net, daddr: bytes, oif: int | None = None, saddr: bytes = ANY, mark: int = 0,
                     proto: int = 0, sport: int = 0, dport: int = 0) -> Rt6Info:
    """ip6_route_output_flags(): the dst for a locally sent packet (always one:
    a failed lookup gives a dst whose `error` says why). The flow comes from lo
    (flowi6_iif); a source makes it RT6_LOOKUP_F_HAS_SADDR; it must leave by
    `oif` (RT6_LOOKUP_F_IFACE) when the destination needs it or an oif comes
    with no source."""
    has_saddr = saddr != ANY
    strict = rt6_need_strict(daddr) or (bool(oif) and not has_saddr)
    f6i = fib6_rule_lookup(net, Flowi6(int.from_bytes(daddr, "big"), int.from_bytes(saddr, "big"), LOOPBACK_IFINDEX,
                                       oif or 0, mark, has_saddr=has_saddr, lookup=ip6_pol_route_output,
                                       proto=proto, sport=sport, dport=dport, strict=strict))
    if f6i.__class__ is int:
        return ip6_error_entry(net, f6i)
    return ip6_rt_dst(net, f6i)


def icmp6_dst_alloc(net, dev: NetDevice, daddr: bytes) -> Rt6Info:
    """icmp6_dst_alloc(): a route out of `dev` straight to `daddr`, outside
    the FIB, for neighbour discovery's messages."""
    return Rt6Info(RT6_LOCAL, RTN_UNICAST, dev, gateway=daddr)


def fib6_update_sernum(net) -> None:
    """Every table change retires the routes cached for input."""
    net.ipv6.fib6_sernum += 1


def _check_gateway(net, cfg: Fib6Config, dev: NetDevice | None) -> NetDevice:
    """ip6_validate_gw(): a link-local gateway needs the device named; any
    other must be unicast and reached through a connected route (out of
    `dev` when given), whose device the route takes when none was named."""
    gw_type = ipv6_addr_type(cfg.gateway)
    if gw_type != IPV6_ADDR_LINKLOCAL | IPV6_ADDR_UNICAST:
        if not gw_type & (IPV6_ADDR_UNICAST | IPV6_ADDR_MAPPED):
            raise RtnlError(errno.EINVAL, "Invalid gateway address")
        via = fib6_lookup(net, cfg.gateway, dev.ifindex if dev else 0, dev is not None)
        if via.__class__ is int or via.flags & RTF_REJECT or via.gateway is not None \
                or (dev is not None and via.ifindex != dev.ifindex):
            raise RtnlError(errno.EHOSTUNREACH)
        dev = net.devices[via.ifindex]
    if dev is None:
        raise RtnlError(errno.EINVAL, "Egress device not specified")
    if dev.is_loopback:
        raise RtnlError(errno.EINVAL, "Egress device can not be loopback device for this route")
    return dev


def ip6_route_info_create(net, cfg: Fib6Config) -> Fib6Info:
    """ip6_route_info_create() + fib6_nh_init(): the route a request makes, or RtnlError."""
    dev = None
    if cfg.ifindex is not None:
        dev = net.devices.get(cfg.ifindex)
        if dev is None:
            raise RtnlError(errno.ENODEV)
    flags = cfg.flags
    if cfg.type in REJECT_TYPES:
        flags |= RTF_REJECT
    elif cfg.type is RTN_LOCAL:
        flags |= RTF_LOCAL
    elif cfg.type is RTN_ANYCAST:
        flags |= RTF_ANYCAST
    # fib6_is_reject(): true routes through lo would loop, they become reject routes
    if dev is not None and dev.is_loopback and not flags & (RTF_ANYCAST | RTF_LOCAL) \
            and not ipv6_addr_type(cfg.dst) & IPV6_ADDR_LOOPBACK:
        flags |= RTF_REJECT
    gateway = None
    if flags & RTF_REJECT:
        flags, dev = RTF_REJECT | RTF_NONEXTHOP, net.devices[LOOPBACK_IFINDEX]
    else:
        if cfg.gateway is not None:
            dev = _check_gateway(net, cfg, dev)
            gateway, flags = cfg.gateway, flags | RTF_GATEWAY
        if dev is None:
            raise RtnlError(errno.ENODEV)
        if ipv6_disabled(net, dev):
            raise RtnlError(errno.EACCES, "IPv6 is disabled on nexthop device")
        if not dev.up:
            raise RtnlError(errno.ENETDOWN, "Nexthop device is not up")
    return Fib6Info(cfg.table, cfg.dst, cfg.dst_len, cfg.type, dev.ifindex, gateway, cfg.prefsrc,
                    cfg.metric or IP6_RT_PRIO_USER, cfg.protocol or "boot", cfg.mtu, flags, weight=cfg.weight)


def ip6_route_add(net, cfg: Fib6Config, nlflags: int = NLM_F_CREATE | NLM_F_EXCL) -> None:
    if cfg.nexthops is not None:
        return ip6_route_multipath_add(net, cfg, nlflags)
    ip6_ins_rt(net, ip6_route_info_create(net, cfg), nlflags)


def ip6_route_multipath_add(net, cfg: Fib6Config, nlflags: int) -> None:
    """ip6_route_multipath_add(): each nexthop needs a gateway
    (rtm_to_fib6_multipath_config()); a route is made (and checked) for each,
    two of the same nexthop are EEXIST (ip6_route_info_append()); then they
    go in: the first with the request's flags, the rest as its siblings
    (NLM_F_EXCL and NLM_F_REPLACE cleared); a failure takes back those in."""
    if any(nh.gateway is None and cfg.gateway is None for nh in cfg.nexthops):
        raise RtnlError(errno.EINVAL, "Device only routes can not be added for IPv6 using the multipath API")
    routes: list[Fib6Info] = []
    for nh in cfg.nexthops:
        f6i = ip6_route_info_create(net, replace(cfg, gateway=nh.gateway or cfg.gateway, ifindex=nh.ifindex,
                                                 weight=nh.weight, nexthops=None))
        if any(f6i.same_nexthop(r) for r in routes):
            raise RtnlError(errno.EEXIST)
        routes.append(f6i)
    inserted = []
    try:
        for f6i in routes:
            ip6_ins_rt(net, f6i, nlflags)
            inserted.append(f6i)
            nlflags = nlflags & ~(NLM_F_EXCL | NLM_F_REPLACE) | NLM_F_CREATE
    except RtnlError:
        for f6i in inserted:
            ip6_del_rt(net, f6i)
        raise


def ip6_ins_rt(net, f6i: Fib6Info, nlflags: int = NLM_F_CREATE) -> None:
    """__ip6_ins_rt() -> fib6_add() into the route's table (made if new)."""
    fib6_new_table(net, f6i.table).add(f6i, nlflags)
    fib6_update_sernum(net)


def ip6_del_rt(net, f6i: Fib6Info) -> None:
    """fib6_del() of this very route; it may be gone already (a device went down)."""
    table = net.ipv6.fib_tables.get(f6i.table)
    if table is not None and f6i in table.routes(f6i.key, f6i.dst_len):
        table.delete(f6i)
        fib6_update_sernum(net)


RTF_RA_ROUTER = RTF_ADDRCONF | RTF_DEFAULT


def rt6_get_dflt_router(net, gwaddr: bytes, dev: NetDevice) -> Fib6Info | None:
    """The default route a router advertisement from `gwaddr` on `dev` made."""
    table = net.ipv6.fib_tables.get(RT6_TABLE_MAIN)
    routes = table.routes(0, 0) if table is not None else []
    return next((f6i for f6i in routes if f6i.ifindex == dev.ifindex and f6i.gateway == gwaddr
                 and f6i.flags & RTF_RA_ROUTER == RTF_RA_ROUTER), None)


def rt6_add_dflt_router(net, gwaddr: bytes, dev: NetDevice, pref: int) -> Fib6Info:
    """A router advertisement's default route: main table, metric 1024 (the
    default ra_defrtr_metric), proto ra, its router preference; the caller
    sets its lifetime (fib6_set_expires())."""
    cfg = Fib6Config(bytes(16), 0, ifindex=dev.ifindex, gateway=gwaddr, metric=IP6_RT_PRIO_USER,
                     protocol="ra", flags=RTF_UP | RTF_RA_ROUTER)
    f6i = ip6_route_info_create(net, cfg)
    f6i.pref = pref
    ip6_ins_rt(net, f6i)
    return f6i


def fib6_set_expires(net, f6i: Fib6Info, lifetime: float) -> None:
    """RTF_EXPIRES: the route is used for `lifetime` more seconds, then deleted
    (unless its lifetime was renewed meanwhile)."""
    expires = f6i.expires = net.clock.now + lifetime

    def expire() -> None:
        if f6i.expires == expires:
            ip6_del_rt(net, f6i)
    net.clock.add_timer(lifetime, expire)


def ip6_route_del(net, cfg: Fib6Config) -> None:
    """ip6_route_del(): the first route of exactly that prefix that matches
    the metric, protocol, device and gateway the request names; with a
    gateway that one nexthop goes, without one the route with all its
    siblings (__ip6_del_rt_siblings()). A multipath request deletes each of
    its nexthops so, failing with the last error (ip6_route_multipath_del())."""
    if cfg.nexthops is not None:
        error = None
        for nh in cfg.nexthops:
            try:
                ip6_route_del(net, replace(cfg, gateway=nh.gateway, ifindex=nh.ifindex, nexthops=None))
            except RtnlError as err:
                error = err
        if error is not None:
            raise error
        return
    table = net.ipv6.fib_tables.get(cfg.table)
    if table is None:
        raise RtnlError(errno.ESRCH, "FIB table does not exist")
    key = int.from_bytes(cfg.dst, "big") & MASKS[cfg.dst_len]
    for f6i in table.routes(key, cfg.dst_len):
        if cfg.metric and cfg.metric != f6i.metric:
            continue
        if cfg.protocol is not None and cfg.protocol != f6i.protocol:
            continue
        if cfg.ifindex is not None and cfg.ifindex != f6i.ifindex:
            continue
        if cfg.gateway is not None and cfg.gateway != f6i.gateway:
            continue
        for doomed in (f6i,) if cfg.gateway is not None or f6i.siblings is None else f6i.siblings:
            table.delete(doomed)
        fib6_update_sernum(net)
        return
    raise RtnlError(errno.ESRCH)


def addrconf_f6i_alloc(net, dev: NetDevice, addr: bytes, anycast: bool = False) -> Fib6Info:
    """addrconf_f6i_alloc(): the local-table host route of an address on
    `dev` (proto kernel, metric 0), inserted with ip6_ins_rt() once the
    address is usable."""
    rtype = RTN_ANYCAST if anycast else RTN_LOCAL
    return Fib6Info(RT6_TABLE_LOCAL, addr, 128, rtype, dev.ifindex, metric=0, protocol="kernel",
                    flags=RTF_UP | RTF_NONEXTHOP | (RTF_ANYCAST if anycast else RTF_LOCAL))


def rt6_disable_ip(net, dev: NetDevice) -> None:
    """rt6_disable_ip() -> rt6_sync_down_dev() -> fib6_ifdown() for NETDEV_DOWN,
    from addrconf_ifdown(): a device going down takes every route through it
    along, the kernel's own and the user's (its neighbours are addrconf's)."""
    changed = False
    for table in net.ipv6.fib_tables.values():
        changed |= table.flush(lambda f6i: f6i.ifindex == dev.ifindex and not f6i.flags & RTF_REJECT)
    if changed:
        fib6_update_sernum(net)
