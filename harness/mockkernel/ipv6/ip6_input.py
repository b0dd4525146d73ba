"""IPv6 receive (net/ipv6/ip6_input.c): ipv6_rcv, ip6_rcv_finish, ip6_input,
ip6_protocol_deliver_rcu, ip6_mc_input; and the inputs of reject routes
(net/ipv6/route.c ip6_pkt_drop()).

ip6_rcv_core() makes the header checks in the kernel's order, each with its
drop reason: a frame for another host (OTHERHOST), IPv6 off on the device
(IPV6DISABLED), a header cut short (IP_INHDR), another version
(UNHANDLED_PROTO), loopback addresses from the wire, an interface-local or
reserved-scope multicast destination, a multicast source (IP_INHDR), a
payload_len past the packet (PKT_TOO_SMALL); Ethernet padding is trimmed;
a hop-by-hop header is parsed here (exthdrs.py), before PREROUTING.
ip6_rcv_finish() routes (route.py ip6_route_input()) and hands the packet
to the dst's input: ip6_input (the INPUT hook, then the next header's
handler inet6_add_protocol() registered, extension headers resubmitting),
ip6_mc_input (delivered only to a group the device joined), ip6_forward
(ip6_output.py), or a reject route's drop, which answers ICMPv6
destination unreachable (no route, or administratively prohibited for a
prohibit route) whether or not the host forwards; a blackhole drops silently.
A next header nobody handles is answered with parameter problem
(unrecognized next header, pointing at the field) and dropped IP_NOPROTO.
Each step counts in the namespace's SNMP6 MIB where the kernel does
(/proc/net/snmp6). Left out: per-device SNMP6 counters (dev_snmp6), raw
sockets, early demux, IPsec, the jumbogram option,
drop_unicast_in_l2_multicast, multicast routing.
"""
from __future__ import annotations

from harness.dropreason import DropReason
from harness.journey import Hop, Stage
from harness.mockkernel.core.snmp import (INET_ECN_MASK, IP6_MIB_INADDRERRORS, IP6_MIB_INDELIVERS,
                                          IP6_MIB_INDISCARDS, IP6_MIB_INHDRERRORS, IP6_MIB_INMCASTOCTETS,
                                          IP6_MIB_INMCASTPKTS, IP6_MIB_INNOECTPKTS, IP6_MIB_INNOROUTES,
                                          IP6_MIB_INOCTETS, IP6_MIB_INRECEIVES, IP6_MIB_INTRUNCATEDPKTS,
                                          IP6_MIB_INUNKNOWNPROTOS)
from harness.mockkernel.core.skbuff import PACKET_OTHERHOST, SkBuff, kfree_skb
from harness.mockkernel.ipv6 import addrconf, exthdrs, ip6_output, route
from harness.mockkernel.ipv6.protocol import inet6_protos
from harness.mockkernel.ipv6.route import RT6_ERROR, RT6_FORWARD, RT6_LOCAL
from harness.mockkernel.net import RTN_BLACKHOLE, RTN_PROHIBIT
from harness.mockkernel.netfilter.core import NF_BRIDGE, NF_INET_LOCAL_IN, NF_INET_PRE_ROUTING, NFPROTO_IPV6, nf_hook
from harness.mockkernel.wire import ipv6
from harness.mockkernel.wire.icmpv6 import (ICMPV6_ADM_PROHIBITED, ICMPV6_DEST_UNREACH, ICMPV6_NOROUTE,
                                            ICMPV6_PARAMPROB, ICMPV6_UNK_NEXTHDR)
from harness.mockkernel.wire.ipv6 import (ANY, FLOWINFO_ADDRS, IPV6_FLOWINFO_MASK, IPV6_HLEN, LOOPBACK, NEXTHDR,
                                          NEXTHDR_DEST, NEXTHDR_FRAGMENT, NEXTHDR_HOP, NEXTHDR_ROUTING, RCV_FIELDS,
                                          Ipv6Packet)

HOP_IP6_RCV_OK = Hop(Stage.IP_RCV, "ip6_rcv_core", "OK")
# the extension headers whose handlers resubmit (1) or fail (-1), never counted as delivered
RESUBMITTING_HEADERS = (NEXTHDR_ROUTING, NEXTHDR_DEST, NEXTHDR_FRAGMENT)


def ipv6_rcv(skb: SkBuff) -> None:
    """ip6_rcv_core(), then the PREROUTING hook and ip6_rcv_finish()."""
    net, dev = skb.net, skb.dev
    if skb.pkt_type == PACKET_OTHERHOST:
        dev.stats.rx_otherhost_dropped += 1  # dev_core_stats_rx_otherhost_dropped_inc()
        return kfree_skb(skb, DropReason.OTHERHOST, Stage.IP_RCV, "ip6_rcv_core")
    idev = addrconf.__in6_dev_get(dev)
    stats = net.mib.ipv6_statistics
    stats[IP6_MIB_INRECEIVES] += 1
    stats[IP6_MIB_INOCTETS] += skb.tail - skb.network_header
    if idev is None or idev.cnf.disable_ipv6:
        stats[IP6_MIB_INDISCARDS] += 1
        reason = DropReason.NOT_SPECIFIED if idev is None else DropReason.IPV6DISABLED
        return kfree_skb(skb, reason, Stage.IP_RCV, "ip6_rcv_core")
    reason = _ip6_rcv_core_error(skb, stats)
    if reason is not None:
        stats[IP6_MIB_INTRUNCATEDPKTS if reason is DropReason.PKT_TOO_SMALL else IP6_MIB_INHDRERRORS] += 1
        return kfree_skb(skb, reason, Stage.IP_RCV, "ip6_rcv_core")
    cb = skb.cb
    skb.cb = {"nhoff": NEXTHDR}  # IP6CB(): zeroed, the next header field right after the fixed header
    if cb and NF_BRIDGE in cb:  # an skb extension in the kernel: br_netfilter's ip_sabotage_in() reads it
        skb.cb[NF_BRIDGE] = cb[NF_BRIDGE]
    journey = skb.journey
    if journey is not None:
        journey.hops.append(HOP_IP6_RCV_OK)
    if skb.buf[skb.network_header + NEXTHDR] == NEXTHDR_HOP and not exthdrs.ipv6_parse_hopopts(skb):
        return
    hookfns = net.nf_hooks.ipv6[NF_INET_PRE_ROUTING]
    if hookfns and not nf_hook(skb, NF_INET_PRE_ROUTING, dev, None, hookfns, NFPROTO_IPV6):
        return
    ip6_rcv_finish(skb)


def _ip6_rcv_core_error(skb: SkBuff, stats: list[int]) -> DropReason | None:
    """The header checks of ip6_rcv_core() in its order, counting a packet of
    version 6 in its ECN class; None when the packet passes (the skb trimmed
    to payload_len, transport_header past the fixed header)."""
    buf, nh, tail = skb.buf, skb.network_header, skb.tail
    if tail - nh < IPV6_HLEN:
        return DropReason.IP_INHDR
    first, payload_len, nexthdr, saddr, daddr = RCV_FIELDS.unpack_from(buf, nh)
    if first >> 4 != 6:
        return DropReason.UNHANDLED_PROTO
    stats[IP6_MIB_INNOECTPKTS + (Ipv6Packet(buf, nh).tclass & INET_ECN_MASK)] += 1
    from_loopback = skb.dev.is_loopback
    if (saddr == LOOPBACK or daddr == LOOPBACK) and not from_loopback:
        return DropReason.IP_INHDR  # RFC 4291 2.5.3
    if daddr[0] == 0xFF:
        scope = ipv6.mc_scope(daddr)
        if (scope == ipv6.IPV6_ADDR_SCOPE_NODELOCAL and not from_loopback) or scope == 0:
            return DropReason.IP_INHDR  # RFC 4291 errata 3480, RFC 4291 2.7
    if saddr[0] == 0xFF:
        return DropReason.IP_INHDR
    skb.transport_header = nh + IPV6_HLEN
    if payload_len or nexthdr != NEXTHDR_HOP:
        if IPV6_HLEN + payload_len > tail - nh:
            return DropReason.PKT_TOO_SMALL
        skb.tail = nh + IPV6_HLEN + payload_len  # pskb_trim_rcsum()
    return None


def ip6_rcv_finish(skb: SkBuff) -> None:
    """ip6_rcv_finish_core(): the input route unless the packet still has the
    dst it was sent with (looped back), then dst_input()."""
    rt = skb.dst
    if rt is None:
        first_word, saddr, daddr = FLOWINFO_ADDRS.unpack_from(skb.buf, skb.network_header)
        rt = skb.dst = route.ip6_route_input(skb.net, daddr, skb.dev, saddr, skb.mark, first_word & IPV6_FLOWINFO_MASK,
                                             skb)
        journey = skb.journey
        if journey is not None:
            journey.hops.append(rt.hop)
    dst_input(skb)


def dst_input(skb: SkBuff) -> None:
    rt = skb.dst
    if rt.input is RT6_LOCAL:
        ip6_input(skb)
    elif rt.input is RT6_FORWARD:
        if ip6_output.ip6_forward(skb):
            ip6_input(skb)
    elif rt.input is RT6_ERROR:
        ip6_pkt_input_error(skb)
    else:
        ip6_mc_input(skb)


def ip6_pkt_input_error(skb: SkBuff) -> None:
    """A reject route's input: dst_discard for a blackhole, else ip6_pkt_drop()
    with no route (ip6_pkt_discard) or administratively prohibited
    (ip6_pkt_prohibit); an unspecified destination is IP_INADDRERRORS."""
    rt = skb.dst
    if rt.type is RTN_BLACKHOLE:
        return kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.ROUTING, "dst_discard_out")
    daddr = ipv6.DADDR_FIELD.unpack_from(skb.buf, skb.network_header)[0]
    reason = DropReason.IP_INADDRERRORS if daddr == ANY else DropReason.IP_INNOROUTES
    skb.net.mib.ipv6_statistics[IP6_MIB_INADDRERRORS if daddr == ANY else IP6_MIB_INNOROUTES] += 1
    prohibit = rt.type is RTN_PROHIBIT
    skb.net.ipv6.icmpv6_send(skb, ICMPV6_DEST_UNREACH, ICMPV6_ADM_PROHIBITED if prohibit else ICMPV6_NOROUTE, 0)
    kfree_skb(skb, reason, Stage.ROUTING, "ip6_pkt_prohibit" if prohibit else "ip6_pkt_discard")


def ip6_input(skb: SkBuff) -> None:
    """The INPUT hook, then ip6_input_finish()."""
    hookfns = skb.net.nf_hooks.ipv6[NF_INET_LOCAL_IN]
    if hookfns and not nf_hook(skb, NF_INET_LOCAL_IN, skb.dev, None, hookfns, NFPROTO_IPV6):
        return
    ip6_protocol_deliver_rcu(skb)


def ip6_protocol_deliver_rcu(skb: SkBuff) -> None:
    """From the header after the fixed one (or after the extension headers a
    handler consumed), the handler of the next header; an extension header's
    handler returns True to resubmit with transport_header and `skb.cb["nhoff"]`
    (the offset of the next-header field) moved past it."""
    net, cb = skb.net, skb.cb
    while True:
        nhoff = cb["nhoff"]
        nexthdr = skb.buf[skb.network_header + nhoff]
        skb.data = skb.transport_header
        handler = inet6_protos.get(nexthdr)
        if handler is None:
            net.tracer.hop(skb, Stage.L4, "ip6_protocol_deliver_rcu", "NOPROTO", f"nexthdr {nexthdr}")
            net.mib.ipv6_statistics[IP6_MIB_INUNKNOWNPROTOS] += 1
            net.ipv6.icmpv6_send(skb, ICMPV6_PARAMPROB, ICMPV6_UNK_NEXTHDR, nhoff)
            return kfree_skb(skb, DropReason.IP_NOPROTO, Stage.L4, "ip6_input_finish")  # inlined there
        if not handler(skb):
            # a protocol's handler returned 0: delivered, dropped there or not; an extension header's, -1
            if nexthdr not in RESUBMITTING_HEADERS:
                net.mib.ipv6_statistics[IP6_MIB_INDELIVERS] += 1
            return


def ip6_mc_input(skb: SkBuff) -> None:
    """A multicast packet goes on to ip6_input() when the receiving device
    joined the group (ipv6_chk_mcast_addr()), else it is dropped."""
    stats = skb.net.mib.ipv6_statistics
    stats[IP6_MIB_INMCASTPKTS] += 1
    stats[IP6_MIB_INMCASTOCTETS] += skb.tail - skb.network_header
    daddr = ipv6.DADDR_FIELD.unpack_from(skb.buf, skb.network_header)[0]
    if not addrconf.ipv6_chk_mcast_addr(skb.dev, daddr):
        return kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.ROUTING, "ip6_mc_input")
    ip6_input(skb)

