"""The flow table of an nft flowtable (net/netfilter/nf_flow_table_core.c): the
connections `flow add @ft` offloaded (nft_flow_offload.py), each found from
either direction by its tuple and the device its packets come in on, which the
flowtable's ingress hook (nf_flow_table_ip.py) forwards past the stack.

flow_offload_alloc() copies both conntrack tuples and notes whether the entry
is SNATed and/or DNATed; the route of each direction (its dst, its MTU, the
device the other direction comes in on) is nft_flow_offload.py's
nft_flow_route(). flow_offload_add() gives the flow its timeout (now +
net.netfilter.nf_flowtable_tcp_timeout or _udp_timeout, 30 s; NF_FLOW_TIMEOUT
for other protocols) and the conntrack entry a day (nf_ct_offload_timeout():
conntrack's gc_worker keeps refreshing an offloaded entry instead of reaping
it). A packet through the fast path refreshes the flow's timeout when that
moves it by more than a second (flow_offload_refresh()).

flow_offload_teardown() (a TCP FIN or RST, an expired flow, the flowtable
going) clears the entry's IPS_OFFLOAD, marks the flow (lookups miss it from
then on) and fixes the entry's timeout up (flow_offload_fixup_ct()): TCP's to
its state's timeout less the offload timeout, UDP's to the replied (stream)
timeout less it, whichever is shorter than what it has; TCP's window tracking
starts over (td_maxwin 0). The gc work (nf_flow_offload_work_gc(), every
second of virtual time while the table holds flows) tears down expired flows
and flows whose conntrack entry is gone, and frees the torn-down ones
(flow_offload_del()). Left out: hardware offload (NF_FLOW_HW), encapsulation
(VLAN, PPPoE), the dst check of a cached route (nf_flow_dst_check()).
"""
from __future__ import annotations

from harness.mockkernel.netfilter.nf_conntrack import IPS_OFFLOAD, NfConn
from harness.mockkernel.netfilter.nf_conntrack_core import NF_CT_DAY
from harness.mockkernel.netfilter.nf_conntrack_proto_tcp import timeout_of

FLOW_OFFLOAD_DIR_ORIGINAL, FLOW_OFFLOAD_DIR_REPLY = 0, 1
NF_FLOW_TIMEOUT = 30  # include/net/netfilter/nf_flow_table.h, seconds
GC_INTERVAL = 1.0  # nf_flow_offload_work_gc() requeues itself after HZ
FLOWTABLE_TCP_TIMEOUT = "net.netfilter.nf_flowtable_tcp_timeout"  # nf_conntrack_standalone.c, NF_FLOW_TABLE
FLOWTABLE_UDP_TIMEOUT = "net.netfilter.nf_flowtable_udp_timeout"
UDP_STREAM_TIMEOUT = "net.netfilter.nf_conntrack_udp_timeout_stream"  # timeouts[UDP_CT_REPLIED]
IPPROTO_TCP, IPPROTO_UDP = 6, 17


class FlowOffloadTuple:
    """struct flow_offload_tuple of one direction: its lookup key (addresses, protocol,
    ports and the device its packets come in on), the route its packets leave by
    (dst_cache, FLOW_OFFLOAD_XMIT_NEIGH) and that route's MTU."""

    __slots__ = ("key", "dst", "mtu")

    def __init__(self, key: tuple, dst, mtu: int):
        self.key, self.dst, self.mtu = key, dst, mtu


class FlowOffload:
    """struct flow_offload: the conntrack entry, both directions' tuples, NF_FLOW_SNAT /
    NF_FLOW_DNAT, the timeout (virtual time) and NF_FLOW_TEARDOWN."""

    __slots__ = ("ct", "tuplehash", "snat", "dnat", "timeout", "teardown")

    def __init__(self, ct: NfConn, tuplehash: tuple[FlowOffloadTuple, FlowOffloadTuple], snat: bool, dnat: bool):
        self.ct, self.tuplehash, self.snat, self.dnat = ct, tuplehash, snat, dnat
        self.timeout = 0.0
        self.teardown = False


class NfFlowtable:
    """struct nf_flowtable: the flows by key (a flow once per direction, with the
    direction: the kernel's rhashtable of tuplehashes), the flowtable's flags
    (NFT_FLOWTABLE_COUNTER) and its gc work."""

    def __init__(self, net, family: str, table: str, name: str):
        self.net, self.family, self.table, self.name = net, family, table, name
        self.flows: dict[tuple, tuple[FlowOffload, int]] = {}
        self.counter = False
        self.gc_queued = False
        self.freed = False


def flow_offload_get_timeout(net, flow: FlowOffload) -> int:
    proto = flow.ct.original.proto
    if proto == IPPROTO_TCP:
        return net.sysctl.values[FLOWTABLE_TCP_TIMEOUT]
    if proto == IPPROTO_UDP:
        return net.sysctl.values[FLOWTABLE_UDP_TIMEOUT]
    return NF_FLOW_TIMEOUT


def nf_ct_offload_timeout(net, ct: NfConn) -> None:
    """include/net/netfilter/nf_conntrack.h: an offloaded entry lives a day at least."""
    if ct.timeout - net.clock.now < NF_CT_DAY / 2:
        ct.timeout = net.clock.now + NF_CT_DAY


def flow_offload_add(flow_table: NfFlowtable, flow: FlowOffload) -> bool:
    """Both directions into the table (a key taken already: rhashtable_insert_fast()'s
    EEXIST, False), the flow's timeout, the entry's day."""
    net = flow_table.net
    keys = [t.key for t in flow.tuplehash]
    if any(key in flow_table.flows for key in keys):
        return False
    flow.timeout = net.clock.now + flow_offload_get_timeout(net, flow)
    for direction, key in enumerate(keys):
        flow_table.flows[key] = (flow, direction)
    nf_ct_offload_timeout(net, flow.ct)
    if not flow_table.gc_queued:
        flow_table.gc_queued = True
        net.clock.add_timer(GC_INTERVAL, lambda: nf_flow_offload_work_gc(flow_table))
    return True


def flow_offload_refresh(flow_table: NfFlowtable, flow: FlowOffload) -> None:
    net = flow_table.net
    timeout = net.clock.now + flow_offload_get_timeout(net, flow)
    if timeout - flow.timeout > 1.0:  # HZ
        flow.timeout = timeout


def flow_offload_lookup(flow_table: NfFlowtable, key: tuple) -> tuple[FlowOffload, int] | None:
    """The flow and direction of a packet's key; none once the flow is torn down or
    its conntrack entry is gone (nf_ct_is_dying())."""
    found = flow_table.flows.get(key)
    if found is None:
        return None
    flow = found[0]
    if flow.teardown or nf_ct_is_dying(flow_table.net, flow.ct):
        return None
    return found


def nf_ct_is_dying(net, ct: NfConn) -> bool:
    """Deleted from the table (conntrack -D/-F, a kill): the entry is the hash's no more."""
    return net.conntrack.hash.get(ct.original) is not ct


def flow_offload_teardown(net, flow: FlowOffload) -> None:
    flow.ct.status &= ~IPS_OFFLOAD
    flow.teardown = True
    flow_offload_fixup_ct(net, flow.ct)


def flow_offload_fixup_ct(net, ct: NfConn) -> None:
    """Back to the slow path: the entry's timeout at most its state's less the
    offload timeout (TCP; UDP: the replied timeout less it), and TCP window
    tracking restarted (flow_offload_fixup_tcp())."""
    proto = ct.original.proto
    if proto == IPPROTO_TCP:
        for seen in ct.proto.seen:
            seen.td_maxwin = 0
        state_timeout = timeout_of(net, ct.proto.state) if ct.proto.state else 0  # TCP_CONNTRACK_NONE: 0
        timeout = state_timeout - net.sysctl.values[FLOWTABLE_TCP_TIMEOUT]
    elif proto == IPPROTO_UDP:
        timeout = net.sysctl.values[UDP_STREAM_TIMEOUT] - net.sysctl.values[FLOWTABLE_UDP_TIMEOUT]
    else:
        return
    timeout = max(timeout, 0)
    if ct.timeout - net.clock.now > timeout:
        ct.timeout = net.clock.now + timeout


def flow_offload_del(flow_table: NfFlowtable, flow: FlowOffload) -> None:
    for t in flow.tuplehash:
        flow_table.flows.pop(t.key, None)


def nf_flow_offload_gc_step(flow_table: NfFlowtable, flow: FlowOffload) -> None:
    net = flow_table.net
    if flow.timeout - net.clock.now <= 0 or nf_ct_is_dying(net, flow.ct):
        flow_offload_teardown(net, flow)
    if flow.teardown:
        flow_offload_del(flow_table, flow)


def nf_flow_table_gc_run(flow_table: NfFlowtable) -> None:
    """nf_flow_table_iterate(): each flow once, by its original direction."""
    for flow, direction in list(flow_table.flows.values()):
        if direction == FLOW_OFFLOAD_DIR_ORIGINAL:
            nf_flow_offload_gc_step(flow_table, flow)


def nf_flow_offload_work_gc(flow_table: NfFlowtable) -> None:
    flow_table.gc_queued = False
    if flow_table.freed:
        return
    nf_flow_table_gc_run(flow_table)
    if flow_table.flows:
        flow_table.gc_queued = True
        flow_table.net.clock.add_timer(GC_INTERVAL, lambda: nf_flow_offload_work_gc(flow_table))


def nf_flow_table_free(flow_table: NfFlowtable) -> None:
    """The flowtable is gone: every flow torn down and freed (nf_flow_table_free():
    nf_flow_table_do_cleanup(), then a last gc run)."""
    for flow, direction in list(flow_table.flows.values()):
        if direction == FLOW_OFFLOAD_DIR_ORIGINAL:
            flow_offload_teardown(flow_table.net, flow)
    nf_flow_table_gc_run(flow_table)
    flow_table.freed = True
