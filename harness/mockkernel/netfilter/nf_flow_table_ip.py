"""The flowtable fast path (net/netfilter/nf_flow_table_ip.c): a flowtable's
ingress hook, registered on each of its devices at its priority among the netdev
ingress hooks (after TC ingress: __netif_receive_skb_core() runs
nf_hook_ingress() after sch_handle_ingress()), forwards the packets of an
offloaded connection itself. PREROUTING, routing, FORWARD and POSTROUTING never
see them, nor does conntrack; the journey shows one NF_INGRESS hop named
nf_flow_offload_ip_hook (or _ipv6_hook), then the neighbour output and the
device's egress (tc egress, the qdisc) as for any transmitted packet.

nf_flow_offload_ip_hook(): the packet's tuple (nf_flow_tuple_ip(): not a
fragment, no IP options, TCP or UDP, TTL above 1, the transport header there;
else NF_ACCEPT, the slow path) with the input device's ifindex, looked up
(flow_offload_lookup()). Found: a packet longer than the direction's route MTU
takes the slow path (nf_flow_exceeds_mtu(): a GSO packet whose segments fit
passes), as does a TCP FIN or RST, which tears the flow down first
(nf_flow_state_check()). Then the flow's timeout is refreshed, the addresses
and ports rewritten from the conntrack tuples (nf_flow_nat_ip(): SNAT, then
DNAT, with incremental checksum updates), the TTL decremented
(ip_decrease_ttl()), the entry's acct counters updated when the flowtable has
`counter` (nf_ct_acct_update(), for an entry with the acct extension), and the
packet sent to the route's next hop through the neighbour table
(FLOW_OFFLOAD_XMIT_NEIGH: neigh_xmit(), so dev_queue_xmit() and the qdisc);
NF_STOLEN. nf_flow_offload_ipv6_hook() is the same for IPv6
(nf_flow_tuple_ipv6(): the transport header right after the fixed header, hop
limit above 1; the hop limit decremented; neigh_xmit() to the ND table).
Left out: VLAN and PPPoE encapsulation, XFRM and direct (bridge) transmit.
"""
from __future__ import annotations

from harness.journey import Stage
from harness.mockkernel.core.neighbour import NEIGH_ARP_TABLE, NEIGH_ND_TABLE, neigh_xmit
from harness.mockkernel.ipv4.ip_output import skb_gso_network_seglen
from harness.mockkernel.netfilter.core import NF_ACCEPT, NF_STOLEN
from harness.mockkernel.netfilter.nf_flow_table_core import (FLOW_OFFLOAD_DIR_ORIGINAL, NfFlowtable,
                                                             flow_offload_lookup, flow_offload_refresh,
                                                             flow_offload_teardown)
from harness.mockkernel.netfilter.nf_nat import NF_NAT_MANIP_DST, NF_NAT_MANIP_SRC, manip_pkt, manip_pkt6
from harness.mockkernel.wire import ipv6
from harness.mockkernel.wire.ethernet import ETH_P_IP, ETH_P_IPV6
from harness.mockkernel.wire.ipv4 import (IP_MF, IP_OFFSET, IPPROTO_TCP, IPPROTO_UDP, PKTINFO_FIELDS, TTL,
                                          ip_decrease_ttl)
from harness.mockkernel.wire.ipv4 import ADDRS as IPV4_ADDRS
from harness.mockkernel.wire.tcp import FLAGS as TCP_FLAGS
from harness.mockkernel.wire.tcp import TCPHDR_FIN, TCPHDR_RST
from harness.mockkernel.wire.udp import PORTS

HDRSIZE = {IPPROTO_TCP: 20, IPPROTO_UDP: 8}  # sizeof(struct tcphdr), sizeof(struct udphdr)


def nf_flow_offload_ip_hook(flow_table: NfFlowtable, skb, state) -> int:
    if skb.protocol != ETH_P_IP:
        return NF_ACCEPT
    buf, nh, end = skb.buf, skb.network_header, skb.tail
    # nf_flow_tuple_ip()
    if nh + 20 > end:
        return NF_ACCEPT
    ver_ihl, frag_off, proto = PKTINFO_FIELDS.unpack_from(buf, nh)
    if frag_off & (IP_MF | IP_OFFSET) or ver_ihl & 0x0F != 5:  # ip_is_fragment(), ip_has_options()
        return NF_ACCEPT
    hdrsize = HDRSIZE.get(proto)
    if hdrsize is None or buf[nh + TTL] <= 1:
        return NF_ACCEPT
    th = nh + 20
    if th + hdrsize > end:
        return NF_ACCEPT
    saddr, daddr = IPV4_ADDRS.unpack_from(buf, nh)
    sport, dport = PORTS.unpack_from(buf, th)
    found = flow_offload_lookup(flow_table, (saddr, daddr, proto, sport, dport, state.in_dev.ifindex))
    if found is None:
        return NF_ACCEPT
    flow, direction = found
    if _exceeds_mtu(skb, end - nh, flow.tuplehash[direction].mtu) or not _state_check(flow_table, flow, proto, buf, th):
        return NF_ACCEPT
    flow_offload_refresh(flow_table, flow)
    original, reply = _flow_nat(flow, direction, skb, nh, manip_pkt)  # nf_flow_nat_ip()
    ip_decrease_ttl(buf, nh)
    skb.tstamp = 0.0  # skb_clear_tstamp()
    _acct(flow_table, flow, direction, skb)
    rt = flow.tuplehash[direction].dst
    other = reply if direction == FLOW_OFFLOAD_DIR_ORIGINAL else original
    _xmit(flow_table, skb, rt, NEIGH_ARP_TABLE, rt.nexthop(other.src), "nf_flow_offload_ip_hook")
    return NF_STOLEN


def _flow_nat(flow, direction: int, skb, nh: int, manip) -> tuple:
    """nf_flow_nat_ip()/nf_flow_nat_ipv6(): the source (nf_flow_snat_port()/_ip()),
    then the destination (nf_flow_dnat_*()), rewritten to what the conntrack tuples
    say for this direction; returns the tuples (original, reply)."""
    original, reply = flow.ct.original, flow.ct.reply
    forward = direction == FLOW_OFFLOAD_DIR_ORIGINAL
    if flow.snat:
        if forward:
            manip(skb, nh, reply.dst, reply.dport, NF_NAT_MANIP_SRC)
        else:
            manip(skb, nh, original.src, original.sport, NF_NAT_MANIP_DST)
    if flow.dnat:
        if forward:
            manip(skb, nh, reply.src, reply.sport, NF_NAT_MANIP_DST)
        else:
            manip(skb, nh, original.dst, original.dport, NF_NAT_MANIP_SRC)
    return original, reply


def nf_flow_offload_ipv6_hook(flow_table: NfFlowtable, skb, state) -> int:
    if skb.protocol != ETH_P_IPV6:
        return NF_ACCEPT
    buf, nh, end = skb.buf, skb.network_header, skb.tail
    th = nh + ipv6.IPV6_HLEN
    if th > end:
        return NF_ACCEPT
    proto = buf[nh + ipv6.NEXTHDR]
    hdrsize = HDRSIZE.get(proto)
    if hdrsize is None or buf[nh + ipv6.HOP_LIMIT] <= 1 or th + hdrsize > end:
        return NF_ACCEPT
    saddr, daddr = ipv6.ADDRS.unpack_from(buf, nh)
    sport, dport = PORTS.unpack_from(buf, th)
    found = flow_offload_lookup(flow_table, (saddr, daddr, proto, sport, dport, state.in_dev.ifindex))
    if found is None:
        return NF_ACCEPT
    flow, direction = found
    if _exceeds_mtu(skb, end - nh, flow.tuplehash[direction].mtu) or not _state_check(flow_table, flow, proto, buf, th):
        return NF_ACCEPT
    flow_offload_refresh(flow_table, flow)
    original, reply = _flow_nat(flow, direction, skb, nh, manip_pkt6)  # nf_flow_nat_ipv6()
    buf[nh + ipv6.HOP_LIMIT] -= 1
    skb.tstamp = 0.0
    _acct(flow_table, flow, direction, skb)
    rt = flow.tuplehash[direction].dst
    other = reply if direction == FLOW_OFFLOAD_DIR_ORIGINAL else original
    _xmit(flow_table, skb, rt, NEIGH_ND_TABLE, rt.nexthop(other.src), "nf_flow_offload_ipv6_hook")
    return NF_STOLEN


def _exceeds_mtu(skb, length: int, mtu: int) -> bool:
    """nf_flow_exceeds_mtu(), after ip_exceeds_mtu(): longer than the MTU, unless a GSO
    packet whose segments fit."""
    if length <= mtu:
        return False
    return not (skb.gso_size and skb_gso_network_seglen(skb) <= mtu)


def _state_check(flow_table: NfFlowtable, flow, proto: int, buf, th: int) -> bool:
    """nf_flow_state_check(): a TCP FIN or RST tears the flow down (False: the slow path)."""
    if proto == IPPROTO_TCP and buf[th + TCP_FLAGS] & (TCPHDR_FIN | TCPHDR_RST):
        flow_offload_teardown(flow_table.net, flow)
        return False
    return True


def _acct(flow_table: NfFlowtable, flow, direction: int, skb) -> None:
    """nf_ct_acct_update() with the flowtable's counter flag: the entry's acct extension,
    the packet's length from its network header."""
    acct = flow.ct.acct
    if flow_table.counter and acct is not None:
        counters = acct[direction]
        counters[0] += 1
        counters[1] += skb.tail - skb.network_header


def _xmit(flow_table: NfFlowtable, skb, rt, table: int, nexthop, where: str) -> None:
    """FLOW_OFFLOAD_XMIT_NEIGH: the route's dst set, out of its device to the next hop."""
    skb.dst = rt
    net = flow_table.net
    net.tracer.hop(skb, Stage.NF_INGRESS, where, "STOLEN",
                   f"flowtable {flow_table.family} {flow_table.table} {flow_table.name} -> {rt.dev.name}")
    neigh_xmit(net, table, rt.dev, nexthop, skb)

