"""IPv4 receive (net/ipv4/ip_input.c): ip_rcv, ip_rcv_finish, ip_local_deliver.

ip_rcv_core() makes the header checks in the kernel's order, each with its drop
reason; ip_rcv_finish() routes the packet (route.ip_route_input) and hands it to
the dst's input: ip_local_deliver, ip_forward or ip_error. A multicast packet
to a joined group is delivered locally like any other (IGMP to igmp_rcv).
IP options are checked and written as ip_options.c does (ip_options.py).
Left out: early demux, raw sockets, IPsec.
SNMP counters (core/snmp.py) rise where ip_input.c and route.c ip_error()
count them: InReceives and InOctets for every packet to this host's link
address, the ECN class, header errors, multicast/broadcast, InDelivers after
the protocol handler returned (a UDP datagram to a closed port too).
"""
from __future__ import annotations

from harness.dropreason import DropReason
from harness.journey import Hop, Stage
from harness.mockkernel.core.skbuff import PACKET_OTHERHOST, SkBuff, kfree_skb
from harness.mockkernel.core.snmp import (IPSTATS_MIB_CSUMERRORS, IPSTATS_MIB_IN, IPSTATS_MIB_INADDRERRORS,
                                          IPSTATS_MIB_INBCAST, IPSTATS_MIB_INDELIVERS, IPSTATS_MIB_INHDRERRORS,
                                          IPSTATS_MIB_INMCAST, IPSTATS_MIB_INNOROUTES, IPSTATS_MIB_INTRUNCATEDPKTS,
                                          IPSTATS_MIB_INUNKNOWNPROTOS, IPSTATS_MIB_IN_BY_TOS, PO_PACKET,
                                          SNMP4_NET_LIST)
from harness.mockkernel.ipv4 import icmp, ip_forward, ip_fragment, ip_options, route
from harness.mockkernel.ipv4.protocol import inet_protos
from harness.mockkernel.ipv4.route import DST_FORWARD, DST_LOCAL
from harness.mockkernel.net import RTN_LOCAL
from harness.mockkernel.netfilter.core import NF_INET_LOCAL_IN, NF_INET_PRE_ROUTING, nf_hook
from harness.mockkernel.wire import Truncated, WireError, ipv4
from harness.mockkernel.wire.icmp import ICMP_DEST_UNREACH, ICMP_PARAMETERPROB, ICMP_PROT_UNREACH
from harness.mockkernel.wire.ipv4 import IP_MF, IP_OFFSET, TOS, Ipv4Packet

HOP_IP_RCV_OK = Hop(Stage.IP_RCV, "ip_rcv_core", "OK")
LINUX_MIB_IPRPFILTER = SNMP4_NET_LIST.index("IPReversePathFilter")


def ip_rcv(skb: SkBuff) -> None:
    """ip_rcv_core() checks, in order, then ip_rcv_finish()."""
    if skb.pkt_type == PACKET_OTHERHOST:
        skb.dev.stats.rx_otherhost_dropped += 1  # dev_core_stats_rx_otherhost_dropped_inc()
        return kfree_skb(skb, DropReason.OTHERHOST, Stage.IP_RCV, "ip_rcv_core")
    buf, off, net, tail = skb.buf, skb.data, skb.net, skb.tail
    mib = net.mib.ip_statistics
    tot_len = ipv4.rcv_header_ok(buf, off, tail)
    if not tot_len:
        return kfree_skb(skb, _ip_rcv_core_error(mib, buf, off, tail - off), Stage.IP_RCV, "ip_rcv_core")
    # __IP_UPD_PO_STATS(net, IPSTATS_MIB_IN, skb->len) and the ECN class, in one slot
    mib[IPSTATS_MIB_IN_BY_TOS[buf[off + TOS]]] += PO_PACKET + tail - off
    skb.tail = off + tot_len  # pskb_trim_rcsum(): Ethernet padding goes
    skb.transport_header = off + ipv4.HEADER_LEN[buf[off]]
    journey = skb.journey
    if journey is not None:
        journey.hops.append(HOP_IP_RCV_OK)
    hookfns = net.nf_hooks.ipv4[NF_INET_PRE_ROUTING]
    if hookfns and not nf_hook(skb, NF_INET_PRE_ROUTING, skb.dev, None, hookfns):
        return
    ip_rcv_finish(skb)


def _ip_rcv_core_error(mib: list[int], buf: bytearray, off: int, length: int) -> DropReason:
    """The drop reason of a header rcv_header_ok() refused, counted as
    ip_rcv_core() counts it: in InReceives, and in its ECN class once the
    version and IHL passed; the header itself is IP_INHDR (InHdrErrors); the
    checksum is checked next (IP_CSUM, InCsumErrors too), tot_len after it:
    longer than the packet is PKT_TOO_SMALL (InTruncatedPkts), shorter than
    the header IP_INHDR."""
    try:
        ipv4.check_len(buf, off, off + length)
    except WireError as err:
        return _ip_rcv_core_len_error(mib, buf, off, length, err)
    mib[IPSTATS_MIB_IN_BY_TOS[buf[off + TOS]]] += PO_PACKET + length
    mib[IPSTATS_MIB_CSUMERRORS] += 1
    mib[IPSTATS_MIB_INHDRERRORS] += 1
    return DropReason.IP_CSUM


def _ip_rcv_core_len_error(mib: list[int], buf: bytearray, off: int, length: int, err: WireError) -> DropReason:
    """A header check_len() refused (see _ip_rcv_core_error())."""
    ecn_counted = err.field == "tot_len" or (isinstance(err, Truncated) and err.field == "ihl")
    mib[IPSTATS_MIB_IN_BY_TOS[buf[off + TOS]] if ecn_counted else IPSTATS_MIB_IN] += PO_PACKET + length
    if err.field != "tot_len":
        mib[IPSTATS_MIB_INHDRERRORS] += 1
        return DropReason.IP_INHDR
    if not ipv4.checksum_ok(buf, off, ipv4.HEADER_LEN[buf[off]]):
        mib[IPSTATS_MIB_CSUMERRORS] += 1
        mib[IPSTATS_MIB_INHDRERRORS] += 1
        return DropReason.IP_CSUM
    if isinstance(err, Truncated):
        mib[IPSTATS_MIB_INTRUNCATEDPKTS] += 1
        return DropReason.PKT_TOO_SMALL
    mib[IPSTATS_MIB_INHDRERRORS] += 1
    return DropReason.IP_INHDR


def ip_rcv_finish(skb: SkBuff) -> None:
    """ip_rcv_finish_core(): route lookup, then source-route options, then the
    dst's input function. A looped-back packet still has the dst of its output
    route (skb_valid_dst()), so it is not routed again: a local route's input
    function is ip_local_deliver."""
    net, dev = skb.net, skb.dev
    nh = skb.network_header
    ver_ihl, tos, protocol, saddr, daddr = ipv4.RCV_FINISH_FIELDS.unpack_from(skb.buf, nh)
    rt = skb.dst
    if rt is None:
        rt = route.ip_route_input(net, daddr, saddr, tos, dev, skb.mark, protocol)
        if rt.__class__ is DropReason:
            where = "ip_route_input_rcu" if daddr >> 28 == 0xE else "ip_route_input_slow"
            net.tracer.hop(skb, Stage.ROUTING, where, "DROP", rt)
            if rt is DropReason.IP_RPFILTER:
                net.mib.net_statistics[LINUX_MIB_IPRPFILTER] += 1
            return kfree_skb(skb, rt, Stage.ROUTING, "ip_rcv_finish_core")
        skb.dst = rt
        journey = skb.journey
        if journey is not None:
            journey.hops.append(rt.hop)
    hlen = ipv4.HEADER_LEN[ver_ihl]
    if hlen > ipv4.IPV4_MIN_HLEN and not ip_rcv_options(skb, rt, hlen, saddr, daddr, tos):
        return
    # __IP_UPD_PO_STATS(net, IPSTATS_MIB_INMCAST or _INBCAST, skb->len): rt_type's, which its flags say
    if rt.is_multicast or rt.is_broadcast:
        net.mib.ip_statistics[IPSTATS_MIB_INMCAST if rt.is_multicast else IPSTATS_MIB_INBCAST] += \
            PO_PACKET + skb.tail - skb.network_header
    if rt.input is DST_LOCAL or rt.type is RTN_LOCAL:
        ip_local_deliver(skb)
    elif rt.input is DST_FORWARD:
        ip_forward.ip_forward(skb)
    else:
        ip_error(skb)


def ip_rcv_options(skb: SkBuff, rt, hlen: int, saddr: int, daddr: int, tos: int) -> bool:
    """ip_rcv_options(): compile the options (ip_options.py), kept in the skb's
    control block; False when the packet was dropped: a malformed option (a
    parameter problem sent, InHdrErrors, IP_INHDR) or a source route this
    device does not accept (not modelled further when it does). Both drops
    are ip_rcv_finish_core()'s, as 6.18 reports them."""
    net, dev = skb.net, skb.dev
    spec_dst = daddr if rt.type is RTN_LOCAL and not (rt.is_broadcast or rt.is_multicast) else \
        route.fib_compute_spec_dst(net, dev, saddr, tos & 0xFC)  # spec_dst_fill()
    try:
        opt = ip_options.ip_options_compile(skb.buf, skb.network_header, hlen, spec_dst, net.clock.now,
                                            lambda addr: route.inet_addr_is_unicast(net, addr))
    except ip_options.OptionError as err:
        net.tracer.hop(skb, Stage.ROUTING, "ip_options_compile", "DROP", f"bad option at byte {err.pointer}")
        icmp.icmp_send(skb, ICMP_PARAMETERPROB, 0, info=err.pointer << 24)
        net.mib.ip_statistics[IPSTATS_MIB_INHDRERRORS] += 1
        kfree_skb(skb, DropReason.IP_INHDR, Stage.ROUTING, "ip_rcv_finish_core")
        return False
    if skb.cb is None:
        skb.cb = {}
    skb.cb["opt"] = opt
    if opt.srr and not _accept_source_route(net, dev):
        kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.ROUTING, "ip_rcv_finish_core")
        return False
    return True


def _accept_source_route(net, dev) -> bool:
    return bool(net.sysctl.conf("all", "accept_source_route") and
                net.sysctl.conf(dev.name, "accept_source_route"))


def ip_error(skb: SkBuff) -> None:
    """route.c ip_error(): a failed input route. Without forwarding on the ingress
    device there is no ICMP; with it, net/host unreachable, rate limited per
    source by ip_rt_error_cost/burst (sharing the inet_peer tokens with ICMP)."""
    net, rt = skb.net, skb.dst
    reason = DropReason.NOT_SPECIFIED
    if not net.sysctl.conf(skb.dev.name, "forwarding"):
        if rt.error == route.EHOSTUNREACH:
            reason = DropReason.IP_INADDRERRORS
            net.mib.ip_statistics[IPSTATS_MIB_INADDRERRORS] += 1
        elif rt.error == route.ENETUNREACH:
            reason = DropReason.IP_INNOROUTES
            net.mib.ip_statistics[IPSTATS_MIB_INNOROUTES] += 1
        return kfree_skb(skb, reason, Stage.ROUTING, "ip_error")
    codes = {route.EHOSTUNREACH: 1, route.ENETUNREACH: 0, route.EACCES: 13}
    if rt.error not in codes:
        return kfree_skb(skb, reason, Stage.ROUTING, "ip_error")
    if rt.error == route.ENETUNREACH:
        reason = DropReason.IP_INNOROUTES
        net.mib.ip_statistics[IPSTATS_MIB_INNOROUTES] += 1
    saddr = Ipv4Packet(skb.buf, skb.network_header).saddr
    if icmp.peer_allow(net, saddr, cost=1.0, burst=5.0):
        icmp.icmp_send(skb, ICMP_DEST_UNREACH, codes[rt.error])
    kfree_skb(skb, reason, Stage.ROUTING, "ip_error")


def ip_local_deliver(skb: SkBuff) -> None:
    """Reassemble fragments, then the INPUT hook, then the protocol handler."""
    frag_off, _ = ipv4.FRAG_OFF_PROTOCOL.unpack_from(skb.buf, skb.network_header)
    if frag_off & (IP_MF | IP_OFFSET):
        skb = ip_fragment.ip_defrag(skb)
        if skb is None:
            return
    hookfns = skb.net.nf_hooks.ipv4[NF_INET_LOCAL_IN]
    if hookfns and not nf_hook(skb, NF_INET_LOCAL_IN, skb.dev, None, hookfns):
        return
    ip_local_deliver_finish(skb)


def ip_local_deliver_finish(skb: SkBuff) -> None:
    """ip_protocol_deliver_rcu(): the handler inet_add_protocol() registered
    (UDP, TCP, ICMP, IGMP); any other protocol gets ICMP protocol unreachable
    (never for a multicast or broadcast route) and IP_NOPROTO (no raw sockets
    here)."""
    _, protocol = ipv4.FRAG_OFF_PROTOCOL.unpack_from(skb.buf, skb.network_header)
    skb.data = skb.transport_header
    try:
        handler = inet_protos[protocol]
    except KeyError:
        skb.net.tracer.hop(skb, Stage.L4, "ip_protocol_deliver_rcu", "NOPROTO", f"protocol {protocol}")
        skb.net.mib.ip_statistics[IPSTATS_MIB_INUNKNOWNPROTOS] += 1
        icmp.icmp_send(skb, ICMP_DEST_UNREACH, ICMP_PROT_UNREACH)
        return kfree_skb(skb, DropReason.IP_NOPROTO, Stage.L4, "ip_local_deliver_finish")
    net = skb.net
    handler(skb)
    net.mib.ip_statistics[IPSTATS_MIB_INDELIVERS] += 1
