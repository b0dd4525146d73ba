"""IGMP and MLD snooping (net/bridge/br_multicast.c; the forwarding in
br_forward.c br_multicast_flood(), the decision in br_input.c
br_handle_frame_finish()), on while mcast_snooping is (the default).

br_multicast_rcv() looks at every multicast frame a port receives (and the
host sends, br_dev_xmit()): an IGMP message checked as ip_mc_check_igmp()
checks it (a bad one, or an IGMP type it does not know, frees the frame), an
MLD one as ipv6_mc_check_mld() does (hop-by-hop header first). A report makes
the port a member of the group in the mdb (br_multicast_add_group(): for
membership_interval, 260 s), a leave (or an IGMPv3/MLDv2 record of an empty
include list) ends it last_member_count x last_member_interval later unless
another querier is there to ask (br_multicast_leave_group()); link-local IPv4
groups and ff02::1 are never entered. A general query starts the other
querier's timer (querier_interval) and makes its port a router port
(br_multicast_mark_router()); the bridge counts a querier as there once the
query's max response time has passed (delay_time). IGMPv3/MLDv2 reports are
taken as IGMPv2/MLDv1 ones (mcast_igmp_version 2, mcast_mld_version 1: the
defaults); other versions are not modelled.

Forwarding (br_handle_frame_finish()): while a querier is known for the
frame's family (br_multicast_querier_exists()), a frame to a group in the mdb
goes to its members and the router ports, and one to a group not in it (not
link-local, not a report's own) to the router ports alone; otherwise it floods
as any multicast does. Reports go to the router ports only (mrouters_only).

With mcast_querier 1 the bridge queries itself (br_multicast_start_querier()):
a general IGMPv2 query out of each port at once, again startup_query_interval
later, then every query_interval (br_multicast_port_query_expired()), plus
one into its own stack (br_multicast_query_expired(): netif_rx() on the
bridge); it counts as querier query_response_interval after it was turned on.
Its MLD query needs an IPv6 source on the bridge: without one it is freed as
soon as allocated (br_ip6_multicast_alloc_query()), and the bridge is no MLD
querier (BROPT_HAS_IPV6_ADDR). Left out: IGMPv3/MLDv2 source lists and
(S,G) entries, per-VLAN snooping, multicast to unicast, fast leave, the
multicast router discovery and PIM hellos, MLD queries from an IPv6 address.
"""
from __future__ import annotations

import errno

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.bridge.br_private import (MDB_RTR_TYPE_DISABLED, MDB_RTR_TYPE_PERM, MDB_RTR_TYPE_TEMP_QUERY,
                                                  BR_STATE_BLOCKING, BR_STATE_DISABLED, HZ, McastFamily,
                                                  McastOtherQuery, McastOwnQuery, McastPortFamily, MdbEntry,
                                                  NetBridge, NetBridgeMcast, NetBridgeMcastPort, NetBridgePort,
                                                  PortGroup)
from harness.mockkernel.clock import Timer
from harness.mockkernel.core.dev import dev_queue_xmit, netif_receive_skb
from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.core.skbuff import SkBuff, alloc_skb, kfree_skb
from harness.mockkernel.ipv6.exthdrs_core import ipv6_skip_exthdr
from harness.mockkernel.netfilter.core import NF_BR_LOCAL_OUT, NF_HOOK_BRIDGE
from harness.mockkernel.wire import WireError, icmpv6, igmp, ipv4, ipv6, mld
from harness.mockkernel.wire.ethernet import ETH_P_IP, ETH_P_IPV6, HEADER as ETH_HEADER
from harness.mockkernel.wire.icmpv6 import (ICMPV6_MGM_QUERY, ICMPV6_MGM_REDUCTION, ICMPV6_MGM_REPORT,
                                            ICMPV6_MLD2_REPORT)
from harness.mockkernel.wire.igmp import (IGMP_HLEN, IGMP_HOST_LEAVE_MESSAGE, IGMP_HOST_MEMBERSHIP_QUERY,
                                          IGMP_HOST_MEMBERSHIP_REPORT, IGMP_TIMER_SCALE, IGMPV2_HOST_MEMBERSHIP_REPORT,
                                          IGMPV3_CHANGE_TO_INCLUDE, IGMPV3_GREC_TYPES, IGMPV3_HOST_MEMBERSHIP_REPORT,
                                          IGMPV3_MODE_IS_INCLUDE, IGMPV3_QUERY_LEN, IGMPV3_REPORT_LEN)
from harness.mockkernel.wire.ipv4 import IPPROTO_IGMP
from harness.mockkernel.wire.ipv6 import IPPROTO_ICMPV6, IPV6_HLEN, NEXTHDR_HOP

INADDR_ALLHOSTS_GROUP = 0xE0000001
IPV4_LOCAL_MULTICAST = 0xE0000000  # 224.0.0.0/24: ipv4_is_local_multicast()
IN6ADDR_LINKLOCAL_ALLNODES = bytes.fromhex("ff020000000000000000000000000001")
IGMP_QUERY_TOS, IPOPT_RA = 0xC0, b"\x94\x04\x00\x00"  # br_ip4_multicast_alloc_query()


def ipv4_is_local_multicast(group: int) -> bool:
    return group & 0xFFFFFF00 == IPV4_LOCAL_MULTICAST


def group_str(proto: int, group: int | bytes) -> str:
    return ipv4.ip_str(group) if proto == ETH_P_IP else ipv6.addr_str(group)


# ---------------------------------------------------------------- setup

def br_multicast_init(br: NetBridge) -> None:
    """br_multicast_init(): the bridge's context, its timers idle."""
    clock = br.net.clock

    def family(proto: int) -> McastFamily:
        fam = McastFamily(McastOwnQuery(None), McastOtherQuery(None), Timer(clock, lambda: None))
        fam.own_query.timer = Timer(clock, lambda: br_multicast_query_expired(br, proto))
        fam.other_query.timer = Timer(clock, lambda: br_multicast_querier_expired(br, proto))
        return fam

    br.multicast_ctx = NetBridgeMcast(family(ETH_P_IP), family(ETH_P_IPV6))


def br_multicast_add_port(port: NetBridgePort) -> None:
    """br_multicast_add_port(): the port's context, its timers idle."""
    clock = port.br.net.clock

    def family(proto: int) -> McastPortFamily:
        return McastPortFamily(McastOwnQuery(Timer(clock, lambda: br_multicast_port_query_expired(port, proto))),
                               Timer(clock, lambda: br_multicast_router_expired(port, proto)))

    port.multicast_ctx = NetBridgeMcastPort(family(ETH_P_IP), family(ETH_P_IPV6))


def mcast_family(ctx, proto: int):
    return ctx.ip4 if proto == ETH_P_IP else ctx.ip6


def br_multicast_enable(query: McastOwnQuery, now: float) -> None:
    query.startup_sent = 0
    query.timer.mod_timer(now)


def br_multicast_open(br: NetBridge) -> None:
    """br_multicast_open() -> __br_multicast_open_query(): the bridge's own queries start."""
    if not br.multicast_enabled:
        return
    for proto in (ETH_P_IP, ETH_P_IPV6):
        br_multicast_enable(mcast_family(br.multicast_ctx, proto).own_query, br.net.clock.now)


def br_multicast_stop(br: NetBridge) -> None:
    """__br_multicast_stop(): every timer of the bridge's context stopped."""
    for fam in (br.multicast_ctx.ip4, br.multicast_ctx.ip6):
        for timer in (fam.own_query.timer, fam.other_query.timer, fam.router_timer):
            timer.del_timer()


def br_multicast_enable_port(port: NetBridgePort) -> None:
    """__br_multicast_enable_port_ctx(): the port's own queries start; a
    permanent router port joins the router lists."""
    br = port.br
    if not br.multicast_enabled or not br.running:
        return
    for proto in (ETH_P_IP, ETH_P_IPV6):
        br_multicast_enable(mcast_family(port.multicast_ctx, proto).own_query, br.net.clock.now)
        if port.multicast_ctx.multicast_router == MDB_RTR_TYPE_PERM:
            br_multicast_add_router(br, port, proto)


def br_multicast_disable_port(port: NetBridgePort) -> None:
    """br_multicast_disable_port(): its memberships (but permanent ones) and
    router timers gone, its queries stopped."""
    br = port.br
    for entry in list(br.mdb.values()):
        for pg in list(entry.ports):
            if pg.port is port and not pg.permanent:
                br_multicast_del_pg(br, entry, pg)
    for proto in (ETH_P_IP, ETH_P_IPV6):
        port_fam = mcast_family(port.multicast_ctx, proto)
        br_multicast_rport_del(br, port, proto)
        port_fam.router_timer.del_timer()
        port_fam.own_query.timer.del_timer()


def br_multicast_del_port(port: NetBridgePort) -> None:
    """br_multicast_del_port(): every membership of the port, permanent too."""
    br = port.br
    for entry in list(br.mdb.values()):
        for pg in list(entry.ports):
            if pg.port is port:
                br_multicast_del_pg(br, entry, pg)


# ---------------------------------------------------------------- the mdb

def br_multicast_new_group(br: NetBridge, proto: int, group: int | bytes, vid: int) -> MdbEntry:
    key = (proto, group, vid)
    entry = br.mdb.get(key)
    if entry is None:
        entry = MdbEntry(proto, group, vid, None)
        entry.timer = Timer(br.net.clock, lambda: br_multicast_group_expired(br, entry))
        br.mdb[key] = entry
    return entry


def br_multicast_add_group(br: NetBridge, port: NetBridgePort | None, proto: int, group: int | bytes,
                           vid: int) -> None:
    """br_multicast_add_group() (IGMPv2/MLDv1 mode): the port a member (the
    host, for no port) until membership_interval from now."""
    entry = br_multicast_new_group(br, proto, group, vid)
    now = br.net.clock.now
    if port is None:
        entry.host_joined = True  # br_multicast_host_join()
        entry.timer.mod_timer(now + br.multicast_ctx.membership_interval)
        return
    pg = next((pg for pg in entry.ports if pg.port is port), None)
    if pg is None:
        pg = PortGroup(port, None)
        pg.timer = Timer(br.net.clock, lambda: br_multicast_port_group_expired(br, entry, pg))
        entry.ports.append(pg)
        entry.ports.sort(key=lambda member: -member.port.port_no)
    pg.timer.mod_timer(now + br.multicast_ctx.membership_interval)


def br_multicast_del_pg(br: NetBridge, entry: MdbEntry, pg: PortGroup) -> None:
    """br_multicast_del_pg(): an entry left with no member and no host goes (at once)."""
    pg.timer.del_timer()
    entry.ports.remove(pg)
    if not entry.ports and not entry.host_joined:
        entry.timer.mod_timer(br.net.clock.now)


def br_multicast_port_group_expired(br: NetBridge, entry: MdbEntry, pg: PortGroup) -> None:
    if br.running and not pg.permanent and pg in entry.ports:
        br_multicast_del_pg(br, entry, pg)


def br_multicast_group_expired(br: NetBridge, entry: MdbEntry) -> None:
    """br_multicast_group_expired(): the host's membership ends; an entry with no
    member left goes."""
    if not br.running:
        return
    entry.host_joined = False
    if not entry.ports and br.mdb.get((entry.proto, entry.group, entry.vid)) is entry:
        del br.mdb[(entry.proto, entry.group, entry.vid)]


def br_multicast_leave_group(br: NetBridge, port: NetBridgePort | None, proto: int, group: int | bytes,
                             vid: int) -> None:
    """br_multicast_leave_group(): left to another querier if one is there; else
    (the bridge querying a member's port first when it is the querier) the
    membership ends last_member_count x last_member_interval from now, unless
    sooner already."""
    entry = br.mdb.get((proto, group, vid))
    if entry is None:
        return
    mctx = br.multicast_ctx
    fam = mcast_family(mctx, proto)
    if fam.other_query.timer.pending:
        return
    end = br.net.clock.now + mctx.last_member_count * mctx.last_member_interval
    if mctx.querier:
        __br_multicast_send_query(br, port, proto, group)
        own_query = mcast_family(port.multicast_ctx, proto).own_query if port is not None else fam.own_query
        own_query.timer.mod_timer(end)
    if port is None:
        if entry.host_joined and (not entry.timer.pending or entry.timer.expires > end):
            entry.timer.mod_timer(end)
        return
    pg = next((pg for pg in entry.ports if pg.port is port), None)
    if pg is not None and not pg.permanent and (not pg.timer.pending or pg.timer.expires > end):
        pg.timer.mod_timer(end)


# ---------------------------------------------------------------- routers and queriers

def br_multicast_add_router(br: NetBridge, port: NetBridgePort, proto: int) -> None:
    """br_multicast_add_router(): into the family's router list (by port, highest first)."""
    routers = mcast_family(br.multicast_ctx, proto).router_ports
    if port not in routers:
        routers.append(port)
        routers.sort(key=lambda router: -router.port_no)


def br_multicast_rport_del(br: NetBridge, port: NetBridgePort, proto: int) -> None:
    routers = mcast_family(br.multicast_ctx, proto).router_ports
    if port in routers:
        routers.remove(port)


def br_multicast_router_expired(port: NetBridgePort, proto: int) -> None:
    if port.multicast_ctx.multicast_router == MDB_RTR_TYPE_TEMP_QUERY:
        br_multicast_rport_del(port.br, port, proto)


def br_multicast_mark_router(br: NetBridge, port: NetBridgePort | None, proto: int) -> None:
    """br_multicast_mark_router(): the querier's port (or the bridge, for its own
    stack's query) a router port for querier_interval."""
    mctx, now = br.multicast_ctx, br.net.clock.now
    if port is None:
        if mctx.multicast_router == MDB_RTR_TYPE_TEMP_QUERY:
            mcast_family(mctx, proto).router_timer.mod_timer(now + mctx.querier_interval)
        return
    if port.multicast_ctx.multicast_router in (MDB_RTR_TYPE_DISABLED, MDB_RTR_TYPE_PERM):
        return
    br_multicast_add_router(br, port, proto)
    mcast_family(port.multicast_ctx, proto).router_timer.mod_timer(now + mctx.querier_interval)


def br_multicast_select_querier(br: NetBridge, port: NetBridgePort | None, proto: int,
                                saddr: int | bytes) -> bool:
    """br_ip4_multicast_select_querier(), br_ip6_...(): the lowest address queries."""
    fam = mcast_family(br.multicast_ctx, proto)
    if (fam.own_query.timer.pending or fam.other_query.timer.pending) and fam.querier_addr \
            and saddr > fam.querier_addr:
        return False
    fam.querier_addr, fam.querier_port = saddr, port
    return True


def br_multicast_query_received(br: NetBridge, port: NetBridgePort | None, proto: int, saddr: int | bytes,
                                max_delay: float) -> None:
    """br_ip4_multicast_query_received() -> br_multicast_update_query_timer()."""
    if not br_multicast_select_querier(br, port, proto, saddr):
        return
    mctx, now = br.multicast_ctx, br.net.clock.now
    other = mcast_family(mctx, proto).other_query
    if not other.timer.pending:
        other.delay_time = now + max_delay
    other.timer.mod_timer(now + mctx.querier_interval)
    br_multicast_mark_router(br, port, proto)


def br_multicast_group_query(br: NetBridge, proto: int, group: int | bytes, vid: int, max_delay: float) -> None:
    """A group-specific query: its members have last_member_count x the max
    response time to report again."""
    entry = br.mdb.get((proto, group, vid))
    if entry is None:
        return
    end = br.net.clock.now + max_delay * br.multicast_ctx.last_member_count
    if entry.host_joined and (not entry.timer.pending or entry.timer.expires > end):
        entry.timer.mod_timer(end)
    for pg in entry.ports:
        if not pg.timer.pending or pg.timer.expires > end:
            pg.timer.mod_timer(end)


def br_multicast_querier_expired(br: NetBridge, proto: int) -> None:
    """The other querier went quiet: the bridge's own querier takes over (br_multicast_start_querier())."""
    if br.running and br.multicast_enabled:
        br_multicast_start_querier(br, proto)


def br_multicast_querier_exists(br: NetBridge, proto: int) -> bool:
    """__br_multicast_querier_exists(): the delay since the querier appeared has
    passed, and it is another one or the bridge itself (an MLD one only with an
    IPv6 source on the bridge)."""
    if proto not in (ETH_P_IP, ETH_P_IPV6):
        return False  # (an L2 entry's group needs none: the mock has no L2 entries)
    mctx = br.multicast_ctx
    fam = mcast_family(mctx, proto)
    own_querier = mctx.querier and (proto == ETH_P_IP or mctx.has_ipv6_addr)
    return br.net.clock.now >= fam.other_query.delay_time and (own_querier or fam.other_query.timer.pending)


def br_multicast_is_router(br: NetBridge, proto: int) -> bool:
    mctx = br.multicast_ctx
    if mctx.multicast_router == MDB_RTR_TYPE_PERM:
        return True
    return mctx.multicast_router == MDB_RTR_TYPE_TEMP_QUERY and mcast_family(mctx, proto).router_timer.pending


# ---------------------------------------------------------------- the bridge as querier

def br_multicast_set_querier(br: NetBridge, enabled: bool) -> None:
    """br_multicast_set_querier(): turned on, the bridge counts as querier after
    query_response_interval (unless another is heard) and starts querying."""
    mctx = br.multicast_ctx
    if mctx.querier == enabled:
        return
    mctx.querier = enabled
    if not enabled:
        return
    now = br.net.clock.now
    for proto in (ETH_P_IP, ETH_P_IPV6):
        other = mcast_family(mctx, proto).other_query
        if not other.timer.pending:
            other.delay_time = now + mctx.query_response_interval
        br_multicast_start_querier(br, proto)


def br_multicast_start_querier(br: NetBridge, proto: int) -> None:
    """The bridge's query (if snooping) and each port's start now."""
    now = br.net.clock.now
    if br.multicast_enabled:
        br_multicast_enable(mcast_family(br.multicast_ctx, proto).own_query, now)
    for port in br.ports:
        br_multicast_enable(mcast_family(port.multicast_ctx, proto).own_query, now)


def br_multicast_query_expired(br: NetBridge, proto: int) -> None:
    """br_multicast_query_expired(): the bridge's own general query."""
    query = mcast_family(br.multicast_ctx, proto).own_query
    if query.startup_sent < br.multicast_ctx.startup_query_count:
        query.startup_sent += 1
    br_multicast_send_query(br, None, proto, query)


def br_multicast_port_query_expired(port: NetBridgePort, proto: int) -> None:
    """br_multicast_port_query_expired(): a port's general query, unless the port
    is disabled or blocking."""
    if port.state in (BR_STATE_DISABLED, BR_STATE_BLOCKING):
        return
    query = mcast_family(port.multicast_ctx, proto).own_query
    if query.startup_sent < port.br.multicast_ctx.startup_query_count:
        query.startup_sent += 1
    br_multicast_send_query(port.br, port, proto, query)


def br_multicast_send_query(br: NetBridge, port: NetBridgePort | None, proto: int, query: McastOwnQuery) -> None:
    """br_multicast_send_query(): none while another querier is heard (the timer
    then stays idle); else a general query, and the next startup_query_interval
    later while starting up, query_interval later after."""
    mctx = br.multicast_ctx
    if not br.multicast_enabled or not mctx.querier:
        return
    fam = mcast_family(mctx, proto)
    if fam.other_query.timer.pending:
        return
    if port is None:
        fam.querier_port = None  # we're about to select ourselves as querier
    __br_multicast_send_query(br, port, proto, None)
    interval = mctx.startup_query_interval if query.startup_sent < mctx.startup_query_count else mctx.query_interval
    query.timer.mod_timer(br.net.clock.now + interval)


def __br_multicast_send_query(br: NetBridge, port: NetBridgePort | None, proto: int,
                              group: int | bytes | None) -> None:
    """A query (general for no group) out of the port through NF_BR_LOCAL_OUT, or
    for no port up the bridge's own stack (netif_rx()). An MLD query finds no
    IPv6 source on the bridge (the mock's bridge has none) and is freed."""
    if proto == ETH_P_IPV6:
        skb = alloc_skb(bytes(ETH_HEADER.size))
        skb.net, skb.dev = br.net, br.dev
        br.net.tracer.start(skb, "br_ip6_multicast_alloc_query: MLD query")
        br.multicast_ctx.has_ipv6_addr = False
        kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.BRIDGE, "__br_multicast_send_query")
        return
    mctx = br.multicast_ctx
    code = (mctx.last_member_interval if group else mctx.query_response_interval) * IGMP_TIMER_SCALE
    frame = br_ip4_multicast_alloc_query(br, group or 0, int(round(code)))
    skb = alloc_skb(frame)
    skb.net, skb.protocol = br.net, ETH_P_IP
    skb.mac_header = skb.data
    skb.data = skb.network_header = skb.data + ETH_HEADER.size
    br.net.tracer.start(skb, f"br_multicast_send_query: IGMP query {ipv4.ip_str(group or 0)}")
    if port is not None:
        skb.dev = port.dev
        NF_HOOK_BRIDGE(skb, NF_BR_LOCAL_OUT, None, port.dev, push_xmit)
        return
    mcast_family(mctx, proto).querier_addr = 0  # br_multicast_select_own_querier(): from 0.0.0.0
    skb.dev = br.dev
    netif_receive_skb(skb)


def push_xmit(skb: SkBuff) -> None:
    """br_dev_queue_push_xmit() for a query: the Ethernet header back on, out of the port."""
    skb.data = skb.mac_header
    dev_queue_xmit(skb)


def br_ip4_multicast_alloc_query(br: NetBridge, group: int, code: int) -> bytes:
    """br_ip4_multicast_alloc_query(): IGMPv2, from the bridge's address and
    0.0.0.0, to 224.0.0.1 (a group-specific one to the group), TOS 0xc0, id 0,
    DF, TTL 1, Router Alert."""
    daddr = group or INADDR_ALLHOSTS_GROUP
    message = igmp.build_query(code, group)
    header = ipv4.build_header(0, daddr, IPPROTO_IGMP, len(message), ttl=1, tos=IGMP_QUERY_TOS,
                               frag_off=ipv4.IP_DF, options=IPOPT_RA)
    return ETH_HEADER.pack(ip_eth_mc_map(daddr), br.dev.mac, ETH_P_IP) + header + message


def ip_eth_mc_map(group: int) -> bytes:
    return bytes((0x01, 0x00, 0x5E, (group >> 16) & 0x7F, (group >> 8) & 0xFF, group & 0xFF))


# ---------------------------------------------------------------- receive

class McastCb:
    """What br_multicast_rcv() leaves in BR_INPUT_SKB_CB(): `igmp` the IGMP/MLD
    type of the message (0: none), `mrouters_only` for the router ports alone."""

    __slots__ = ("igmp", "mrouters_only")

    def __init__(self) -> None:
        self.igmp = 0
        self.mrouters_only = False


def br_multicast_rcv(br: NetBridge, port: NetBridgePort | None, skb: SkBuff, vid: int) -> McastCb | None:
    """br_multicast_rcv(): what the frame says to snooping; None when it is a
    malformed or unknown IGMP/MLD message, which the caller frees."""
    cb = McastCb()
    if not br.multicast_enabled:
        return cb
    try:
        if skb.protocol == ETH_P_IP:
            br_multicast_ipv4_rcv(br, port, skb, vid, cb)
        elif skb.protocol == ETH_P_IPV6:
            br_multicast_ipv6_rcv(br, port, skb, vid, cb)
    except WireError:
        return None
    return cb


def br_multicast_ipv4_rcv(br: NetBridge, port: NetBridgePort | None, skb: SkBuff, vid: int, cb: McastCb) -> None:
    """ip_mc_check_igmp() (ip_mc_check_iphdr(): a header ip_rcv_core() would take;
    the IGMP checksum; the length a type needs), then by type."""
    buf, nh = skb.buf, skb.network_header
    tot_len = ipv4.rcv_header_ok(buf, nh, skb.tail)
    if not tot_len:
        raise WireError(None, "IPv4 header")
    version_ihl, _, _, _, _, _, protocol, _, saddr, daddr = ipv4.unpack(buf, nh)
    if protocol != IPPROTO_IGMP:
        if not ipv4_is_local_multicast(daddr):
            cb.mrouters_only = True
        return
    th, end = nh + ipv4.HEADER_LEN[version_ihl], nh + tot_len
    if end - th < IGMP_HLEN or not igmp.checksum_ok(buf, th, end):
        raise WireError(None, "IGMP header or checksum")
    igmp_type, code, _, group = igmp.HEADER.unpack_from(buf, th)
    transport_len = end - th
    if igmp_type == IGMPV3_HOST_MEMBERSHIP_REPORT and transport_len < IGMPV3_REPORT_LEN:
        raise WireError(None, "IGMPv3 report")
    if igmp_type == IGMP_HOST_MEMBERSHIP_QUERY and (
            (transport_len != IGMP_HLEN and transport_len < IGMPV3_QUERY_LEN)
            or (not group and daddr != INADDR_ALLHOSTS_GROUP)):
        raise WireError(None, "IGMP query")
    if igmp_type not in (IGMP_HOST_MEMBERSHIP_REPORT, IGMPV2_HOST_MEMBERSHIP_REPORT, IGMPV3_HOST_MEMBERSHIP_REPORT,
                         IGMP_HOST_MEMBERSHIP_QUERY, IGMP_HOST_LEAVE_MESSAGE):
        raise WireError(None, f"IGMP type {igmp_type:#x}")  # -ENODATA: freed too
    cb.igmp = igmp_type
    if igmp_type in (IGMP_HOST_MEMBERSHIP_REPORT, IGMPV2_HOST_MEMBERSHIP_REPORT):
        cb.mrouters_only = True
        if not ipv4_is_local_multicast(group):
            br_multicast_add_group(br, port, ETH_P_IP, group, vid)
    elif igmp_type == IGMPV3_HOST_MEMBERSHIP_REPORT:
        for grec_type, grec_group, nsrcs in igmp.igmpv3_records(buf, th, end):
            if ipv4_is_local_multicast(grec_group) or grec_type not in IGMPV3_GREC_TYPES:
                continue
            if nsrcs == 0 and grec_type in (IGMPV3_CHANGE_TO_INCLUDE, IGMPV3_MODE_IS_INCLUDE):
                br_multicast_leave_group(br, port, ETH_P_IP, grec_group, vid)
            else:
                br_multicast_add_group(br, port, ETH_P_IP, grec_group, vid)
    elif igmp_type == IGMP_HOST_MEMBERSHIP_QUERY:
        br_ip4_multicast_query(br, port, buf, th, transport_len, saddr, group, code, vid)
    elif not ipv4_is_local_multicast(group):
        br_multicast_leave_group(br, port, ETH_P_IP, group, vid)


def br_ip4_multicast_query(br: NetBridge, port, buf: bytearray, th: int, transport_len: int, saddr: int,
                           group: int, code: int, vid: int) -> None:
    """br_ip4_multicast_query(): a v2 query's code is its max response time in
    tenths (0: a v1 query, 10 s and general); a v3 one's the same (mrc), one with
    sources is left to IGMPv3 mode."""
    if transport_len == IGMP_HLEN:
        max_delay = code / IGMP_TIMER_SCALE
        if not max_delay:
            max_delay, group = 10.0, 0
    else:
        mrc, nsrcs = igmp.IGMPV3_QUERY_FIELDS.unpack_from(buf, th)
        if nsrcs:
            return
        max_delay = igmpv3_mrc(mrc) / IGMP_TIMER_SCALE if mrc else 1 / HZ
    if not group:
        br_multicast_query_received(br, port, ETH_P_IP, saddr, max_delay)
    else:
        br_multicast_group_query(br, ETH_P_IP, group, vid, max_delay)


def igmpv3_mrc(code: int) -> int:
    """IGMPV3_MRC(): a max resp code of 128 or more is a floating-point value."""
    return code if code < 0x80 else ((code & 0x0F) | 0x10) << (((code >> 4) & 0x07) + 3)


def br_multicast_ipv6_rcv(br: NetBridge, port: NetBridgePort | None, skb: SkBuff, vid: int, cb: McastCb) -> None:
    """ipv6_mc_check_mld(): a hop-by-hop header first, then ICMPv6 (anything else
    is data), its checksum, a known MLD type (another ICMPv6 type is data); a
    query from a link-local source, a general one to ff02::1."""
    buf, nh, tail = skb.buf, skb.network_header, skb.tail
    if tail - nh < IPV6_HLEN:
        raise WireError(None, "IPv6 header")
    first, payload_len, nexthdr, saddr, daddr = ipv6.RCV_FIELDS.unpack_from(buf, nh)
    end = nh + IPV6_HLEN + payload_len
    if first >> 4 != 6 or end > tail:
        raise WireError(None, "IPv6 header")
    th = -1  # no MLD without a hop-by-hop header first (ipv6_mc_check_exthdrs(): -ENOMSG)
    if nexthdr == NEXTHDR_HOP:
        th, nexthdr, _ = ipv6_skip_exthdr(buf, nh + IPV6_HLEN, nexthdr, end)
        if th < 0:
            raise WireError(None, "IPv6 extension headers")
    mld_type = buf[th] if th >= 0 and nexthdr == IPPROTO_ICMPV6 and end - th >= mld.MLD_MSG_LEN else None
    if mld_type not in (ICMPV6_MGM_QUERY, ICMPV6_MGM_REPORT, ICMPV6_MGM_REDUCTION, ICMPV6_MLD2_REPORT):
        if daddr != IN6ADDR_LINKLOCAL_ALLNODES:
            cb.mrouters_only = True
        return
    if not icmpv6.checksum_ok(buf, th, end, ipv6.pseudo_header_sum(buf, nh, IPPROTO_ICMPV6, end - th)):
        raise WireError(None, "ICMPv6 checksum")
    _, maxdelay, group = mld.MLD_MSG.unpack_from(buf, th)
    if mld_type == ICMPV6_MGM_QUERY:
        if not ipv6.is_linklocal(saddr) or (end - th != mld.MLD_MSG_LEN and end - th < mld.MLD2_QUERY_LEN) \
                or (group == ipv6.ANY and daddr != IN6ADDR_LINKLOCAL_ALLNODES):
            raise WireError(None, "MLD query")
    cb.igmp = mld_type
    if mld_type == ICMPV6_MGM_REPORT:
        cb.mrouters_only = True
        if group != IN6ADDR_LINKLOCAL_ALLNODES:
            br_multicast_add_group(br, port, ETH_P_IPV6, group, vid)
    elif mld_type == ICMPV6_MLD2_REPORT:
        for grec_type, grec_group, nsrcs in mld.mld2_records(buf, th, end):
            if grec_group == IN6ADDR_LINKLOCAL_ALLNODES or grec_type not in IGMPV3_GREC_TYPES:
                continue
            if nsrcs == 0 and grec_type in (mld.MLD2_CHANGE_TO_INCLUDE, mld.MLD2_MODE_IS_INCLUDE):
                br_multicast_leave_group(br, port, ETH_P_IPV6, grec_group, vid)
            else:
                br_multicast_add_group(br, port, ETH_P_IPV6, grec_group, vid)
    elif mld_type == ICMPV6_MGM_QUERY:
        br_ip6_multicast_query(br, port, buf, th, end - th, saddr, group, maxdelay, vid)
    elif group != IN6ADDR_LINKLOCAL_ALLNODES:
        br_multicast_leave_group(br, port, ETH_P_IPV6, group, vid)


def br_ip6_multicast_query(br: NetBridge, port, buf: bytearray, th: int, transport_len: int, saddr: bytes,
                           group: bytes, maxdelay: int, vid: int) -> None:
    """br_ip6_multicast_query(): an MLDv1 query's max delay is in ms (0: ignored);
    an MLDv2 one's (mrc) at least a jiffy."""
    if transport_len == mld.MLD_MSG_LEN:
        if not maxdelay:
            return
        max_delay = maxdelay / 1000
    else:
        max_delay = max(mldv2_mrc(mld.MLD2_QUERY_MRC.unpack_from(buf, th)[0]) / 1000, 1 / HZ)
    if group == ipv6.ANY:
        br_multicast_query_received(br, port, ETH_P_IPV6, saddr, max_delay)
    else:
        br_multicast_group_query(br, ETH_P_IPV6, group, vid, max_delay)


def mldv2_mrc(code: int) -> int:
    """mldv2_mrc(): a code of 32768 or more is a floating-point value (ms)."""
    return code if code < 0x8000 else ((code & 0x0FFF) | 0x1000) << (((code >> 12) & 0x07) + 3)


# ---------------------------------------------------------------- forwarding

def br_mdb_entry_skb_get(br: NetBridge, skb: SkBuff, cb: McastCb, vid: int) -> MdbEntry | None:
    """The frame's (*, G) entry: none for an IGMP/MLD message or with snooping off."""
    if not br.multicast_enabled or cb.igmp:
        return None
    if skb.protocol == ETH_P_IP:
        group = ipv4.DADDR_FIELD.unpack_from(skb.buf, skb.network_header)[0]
    elif skb.protocol == ETH_P_IPV6:
        group = ipv6.DADDR_FIELD.unpack_from(skb.buf, skb.network_header)[0]
    else:
        return None
    return br.mdb.get((skb.protocol, group, vid))


def br_multicast_ports(br: NetBridge, entry: MdbEntry | None, proto: int) -> list[NetBridgePort]:
    """br_multicast_flood()'s walk: the entry's members and the family's router
    ports merged, each port once, in the lists' order (by port, highest first)."""
    members = [pg.port for pg in entry.ports] if entry is not None else []
    routers = mcast_family(br.multicast_ctx, proto).router_ports
    return sorted(set(members).union(routers), key=lambda port: -port.port_no)


# ---------------------------------------------------------------- br_mdb.c: RTM_NEWMDB, RTM_DELMDB

def br_mdb_add(br: NetBridge, port: NetBridgePort, proto: int, group: int | bytes, vid: int, permanent: bool) -> None:
    """br_mdb_add() -> br_mdb_add_group(): the user's entry (RTPROT_STATIC), a
    temporary one ageing as a report's; a group the port already has, or a
    link-local IPv4 one or ff02::1, is refused with the kernel's extack text."""
    if (proto == ETH_P_IP and ipv4_is_local_multicast(group)) or group == IN6ADDR_LINKLOCAL_ALLNODES:
        family = "IPv4" if proto == ETH_P_IP else "IPv6"
        raise RtnlError(errno.EINVAL, f"{family} entry group address is local multicast")
    entry = br_multicast_new_group(br, proto, group, vid)
    if any(pg.port is port for pg in entry.ports):
        raise RtnlError(errno.EEXIST, "bridge: (*, G) group is already joined by port")
    pg = PortGroup(port, None, permanent, "static")
    pg.timer = Timer(br.net.clock, lambda: br_multicast_port_group_expired(br, entry, pg))
    entry.ports.append(pg)
    entry.ports.sort(key=lambda member: -member.port.port_no)
    if not permanent:
        pg.timer.mod_timer(br.net.clock.now + br.multicast_ctx.membership_interval)


def br_mdb_del(br: NetBridge, port: NetBridgePort, proto: int, group: int | bytes, vid: int) -> None:
    """br_mdb_del(): EINVAL for a group the port is not in."""
    entry = br.mdb.get((proto, group, vid))
    pg = next((pg for pg in entry.ports if pg.port is port), None) if entry is not None else None
    if pg is None:
        raise RtnlError(errno.EINVAL)
    br_multicast_del_pg(br, entry, pg)
