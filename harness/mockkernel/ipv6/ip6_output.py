"""IPv6 output and forwarding (net/ipv6/ip6_output.c): ip6_forward,
ip6_local_out, ip6_output, ip6_fragment, ip6_finish_output2,
ip6_dst_lookup (the source address of a locally sent packet).

ip6_forward(), in the kernel's order: with net.ipv6.conf.all.forwarding 0
(and no force_forwarding on the receiving device) the packet is dropped
IP_INADDRERRORS (no ICMP); a frame for another host is
dropped; hop limit 1 or less is answered with time exceeded (hop limit) and
IP_INHDR; with conf/all/proxy_ndp, a neighbour discovery message to an
address proxied on the input device goes to local input instead
(ip6_forward_proxy_check(); a link-local destination there is dropped with
address unreachable); a packet going out of the device it came in on makes a redirect
to its sender (ndisc_send_redirect(), naming the route's gateway or the
destination itself), at most one a second per destination after a burst of
six (inet_peer_xrlim_allow()), and goes on; else an unspecified, multicast or
loopback source is IP_INADDRERRORS, a link-local one is answered with
destination unreachable (beyond scope, ICMPV6_NOT_NEIGHBOUR) first; a packet over the egress MTU is answered with
packet too big carrying the MTU and dropped PKT_TOO_BIG (routers never
fragment). The MTU is the egress device's (ip6_dst_mtu_maybe_forward(): a
route's mtu metric counts for forwarding only when locked), at least 1280.
Then the hop limit goes down by one (no checksum in IPv6), the FORWARD hook,
and ip6_output().
ip6_output(): skb->protocol ETH_P_IPV6, IPV6DISABLED on a device with IPv6
off, the POSTROUTING hook, ip6_fragment() for a packet over the path MTU
(only one a local socket allowed to fragment, ignore_df; else packet too big
to itself), then ip6_finish_output2(): a multicast destination of scope
interface-local or less never leaves a device other than lo, and the next
hop's neighbour (the ND table's output, ndisc.py) takes the packet.
ip6_fragment(): each fragment holds the unfragmentable headers, a fragment
header (one identification for all, from a seeded generator where Linux
hashes) and (mtu - headers - 8) & ~7 bytes of the rest. A datagram
nf_defrag_ipv6 reassembled (netfilter/nf_conntrack_reasm.py) carries the
length of its largest fragment (IP6CB(skb)->frag_max_size) and its fragments'
lengths (its frag_list): forwarding refuses it with packet too big when that
fragment does not fit the MTU (ip6_pkt_too_big()), and it leaves cut where it
was cut on arrival (ip6_fragment()'s fast path), even when it would fit whole.
Left out: router alert delivery to raw sockets, GSO, IPsec (a
redirect's "not for a packet decapsulated from IPsec"), per-device SNMP6 counters.
"""
from __future__ import annotations

import errno

from harness.dropreason import DropReason
from harness.journey import Hop, Stage
from harness.mockkernel.core import dev as core_dev
from harness.mockkernel.core.snmp import (IP6_MIB_FRAGCREATES, IP6_MIB_FRAGFAILS, IP6_MIB_FRAGOKS,
                                          IP6_MIB_INADDRERRORS, IP6_MIB_INDISCARDS, IP6_MIB_INHDRERRORS,
                                          IP6_MIB_INTOOBIGERRORS,
                                          IP6_MIB_OUTFORWDATAGRAMS, IP6_MIB_OUTMCASTOCTETS, IP6_MIB_OUTMCASTPKTS,
                                          IP6_MIB_OUTOCTETS, IP6_MIB_OUTREQUESTS, IP6_MIB_OUTTRANSMITS)
from harness.mockkernel.core.skbuff import PACKET_HOST, SkBuff, alloc_skb, kfree_skb
from harness.mockkernel.ipv4.icmp import inet_peer_xrlim_allow
from harness.mockkernel.ipv6 import addrconf, route
from harness.mockkernel.ipv6.exthdrs_core import ipv6_skip_exthdr
from harness.mockkernel.ipv6.ip6_fib import RTF_GATEWAY
from harness.mockkernel.netfilter.core import NF_INET_FORWARD, NF_INET_LOCAL_OUT, NF_INET_POST_ROUTING, \
    NFPROTO_IPV6, nf_hook
from harness.mockkernel.wire.ethernet import ETH_P_IPV6
from harness.mockkernel.wire.icmpv6 import (ICMPV6_ADDR_UNREACH, ICMPV6_DEST_UNREACH, ICMPV6_EXC_HOPLIMIT,
                                            ICMPV6_NOT_NEIGHBOUR, ICMPV6_PKT_TOOBIG, ICMPV6_TIME_EXCEED,
                                            NDISC_REDIRECT, NDISC_ROUTER_SOLICITATION)
from harness.mockkernel.wire.ipv6 import (ANY, ADDRS, DADDR_FIELD, FRAG_HEADER, FRAG_HLEN, HOP_LIMIT, IP6_MF,
                                          IPV6_ADDR_ANY, IPV6_ADDR_LINKLOCAL, IPV6_ADDR_LOOPBACK,
                                          IPV6_ADDR_MULTICAST, IPV6_ADDR_SCOPE_NODELOCAL, IPV6_HLEN, IPV6_MIN_MTU,
                                          NEXTHDR, NEXTHDR_DEST, NEXTHDR_FRAGMENT, NEXTHDR_HOP, NEXTHDR_ICMP,
                                          NEXTHDR_ROUTING,
                                          OPT_NEXTHDR, Ipv6Packet, exthdr_len, ipv6_addr_type,
                                          mc_scope)

HOP_FORWARD_OK = Hop(Stage.IP_FORWARD, "ip6_forward", "OK")
ALL_FORWARDING = "net.ipv6.conf.all.forwarding"
REDIRECT_INTERVAL = 1.0  # 1*HZ: a redirect's token per destination (ip6_forward) and per sender (ndisc_send_redirect)


def ip6_dev_mtu(dev) -> int:
    """The device's IPv6 MTU, idev->cnf.mtu6 (IPV6_MIN_MTU without an inet6_dev)."""
    idev = addrconf.__in6_dev_get(dev)
    return idev.cnf.mtu6 if idev is not None else IPV6_MIN_MTU


def ip6_dst_mtu(rt: route.Rt6Info) -> int:
    """ip6_mtu(): the route's mtu metric, else the device's IPv6 MTU."""
    return rt.mtu or ip6_dev_mtu(rt.dev)


def ip6_dst_mtu_forward(rt: route.Rt6Info) -> int:
    """ip6_dst_mtu_maybe_forward(dst, true): the egress device's IPv6 MTU."""
    return ip6_dev_mtu(rt.dev)


def ip6_dst_hoplimit(rt: route.Rt6Info) -> int:
    """ip6_dst_hoplimit(): the route's hoplimit metric (a router advertisement
    sets it), else the device conf's hop_limit."""
    if rt.f6i is not None and rt.f6i.hoplimit is not None:
        return rt.f6i.hoplimit
    idev = addrconf.__in6_dev_get(rt.dev)
    return idev.cnf.hop_limit if idev is not None else 64


def _force_forwarding(net, iif: int) -> bool:
    """The receiving device's force_forwarding (6.17): it forwards while conf/all does not."""
    dev = net.devices.get(iif)
    idev = addrconf.__in6_dev_get(dev) if dev is not None else None
    return idev is not None and bool(idev.cnf.force_forwarding)


NDISC_TYPES = frozenset(range(NDISC_ROUTER_SOLICITATION, NDISC_REDIRECT + 1))


def ip6_forward_proxy_check(skb: SkBuff) -> int:
    """For a packet to an address proxied on its input device: 1 for a
    neighbour discovery message (handed to local input), -1 for a link-local
    destination (dropped; the sender told address unreachable), else 0."""
    buf, nh = skb.buf, skb.network_header
    offset, nexthdr, _ = ipv6_skip_exthdr(buf, nh + IPV6_HLEN, buf[nh + NEXTHDR], skb.tail)
    if nexthdr == NEXTHDR_ICMP and 0 <= offset < skb.tail and buf[offset] in NDISC_TYPES:
        return 1
    if ipv6_addr_type(DADDR_FIELD.unpack_from(buf, nh)[0]) & IPV6_ADDR_LINKLOCAL:
        skb.net.ipv6.icmpv6_send(skb, ICMPV6_DEST_UNREACH, ICMPV6_ADDR_UNREACH, 0)
        return -1
    return 0


def ip6_forward(skb: SkBuff) -> bool | None:
    """ip6_forward(), counting as 6.18 does: OutForwDatagrams once the hop
    limit and source passed, before the MTU check (a packet too big counts
    there too, and InTooBigErrors and FragFails). True: a neighbour discovery
    message to a proxied address, for local input (ip6_input(), which the
    kernel calls from here) with its hop limit untouched."""
    net, rt = skb.net, skb.dst
    stats = net.mib.ipv6_statistics
    if not net.sysctl.values[ALL_FORWARDING] and not _force_forwarding(net, skb.skb_iif):
        stats[IP6_MIB_INADDRERRORS] += 1
        return kfree_skb(skb, DropReason.IP_INADDRERRORS, Stage.IP_FORWARD, "ip6_forward")
    if skb.pkt_type != PACKET_HOST:
        return kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.IP_FORWARD, "ip6_forward")
    buf, nh = skb.buf, skb.network_header
    hop_limit = buf[nh + HOP_LIMIT]
    if hop_limit <= 1:
        net.tracer.hop(skb, Stage.IP_FORWARD, "ip6_forward", "HOPLIMIT_EXCEEDED", f"hlim={hop_limit}")
        net.ipv6.icmpv6_send(skb, ICMPV6_TIME_EXCEED, ICMPV6_EXC_HOPLIMIT, 0)
        stats[IP6_MIB_INHDRERRORS] += 1
        return kfree_skb(skb, DropReason.IP_INHDR, Stage.IP_FORWARD, "ip6_forward")
    if net.ipv6.devconf_all.proxy_ndp and (skb.dev.ifindex, DADDR_FIELD.unpack_from(buf, nh)[0]) in net.nd_tbl.proxies:
        proxied = ip6_forward_proxy_check(skb)
        if proxied > 0:
            net.tracer.hop(skb, Stage.IP_FORWARD, "ip6_forward", "PROXIED_NDISC")
            return True
        if proxied < 0:
            stats[IP6_MIB_INDISCARDS] += 1
            return kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.IP_FORWARD, "ip6_forward")
    out = rt.dev
    if skb.skb_iif == out.ifindex:
        # in and out the same device: the sender gets a redirect, limited by destination here
        f6i = rt.f6i
        target = f6i.gateway if f6i is not None and f6i.flags & RTF_GATEWAY else DADDR_FIELD.unpack_from(buf, nh)[0]
        if inet_peer_xrlim_allow(net, DADDR_FIELD.unpack_from(buf, nh)[0], REDIRECT_INTERVAL):
            net.ipv6.ndisc_send_redirect(skb, target)
    else:
        saddr_type = ipv6_addr_type(ADDRS.unpack_from(buf, nh)[0])
        if saddr_type == IPV6_ADDR_ANY or saddr_type & (IPV6_ADDR_MULTICAST | IPV6_ADDR_LOOPBACK):
            stats[IP6_MIB_INADDRERRORS] += 1
            return kfree_skb(skb, DropReason.IP_INADDRERRORS, Stage.IP_FORWARD, "ip6_forward")
        if saddr_type & IPV6_ADDR_LINKLOCAL:
            net.ipv6.icmpv6_send(skb, ICMPV6_DEST_UNREACH, ICMPV6_NOT_NEIGHBOUR, 0)
            stats[IP6_MIB_INADDRERRORS] += 1
            return kfree_skb(skb, DropReason.IP_INADDRERRORS, Stage.IP_FORWARD, "ip6_forward")
    stats[IP6_MIB_OUTFORWDATAGRAMS] += 1
    mtu = max(ip6_dst_mtu_forward(rt), IPV6_MIN_MTU)
    if ip6_pkt_too_big(skb, mtu):
        net.tracer.hop(skb, Stage.IP_FORWARD, "ip6_forward", "PKT_TOOBIG", f"len={skb.tail - nh} mtu={mtu}")
        skb.dev = out
        net.ipv6.icmpv6_send(skb, ICMPV6_PKT_TOOBIG, 0, mtu)
        stats[IP6_MIB_INTOOBIGERRORS] += 1
        stats[IP6_MIB_FRAGFAILS] += 1
        return kfree_skb(skb, DropReason.PKT_TOO_BIG, Stage.IP_FORWARD, "ip6_forward")
    buf[nh + HOP_LIMIT] = hop_limit - 1
    journey = skb.journey
    if journey is not None:
        journey.hops.append(HOP_FORWARD_OK)
    hookfns = net.nf_hooks.ipv6[NF_INET_FORWARD]
    if hookfns and not nf_hook(skb, NF_INET_FORWARD, skb.dev, out, hookfns, NFPROTO_IPV6):
        return
    ip6_output(skb)


def ip6_pkt_too_big(skb: SkBuff, mtu: int) -> bool:
    """Over the MTU and not allowed to fragment, or a datagram conntrack
    reassembled from a fragment larger than the MTU (frag_max_size)."""
    if skb.tail - skb.network_header <= mtu:
        return False
    cb = skb.cb
    if cb and cb.get("frag_max_size", 0) > mtu:
        return True
    return not skb.ignore_df


def ip6_local_out(skb: SkBuff) -> None:
    """__ip6_local_out(): payload_len from the packet, the OUTPUT hook,
    dst_output(); counted in OutRequests, as __ip6_make_skb(), ip6_xmit()
    and ndisc_send_skb() count every packet the host sends."""
    nh = skb.network_header
    length = skb.tail - nh - IPV6_HLEN
    Ipv6Packet(skb.buf, nh).payload_len = length if length <= 0xFFFF else 0
    skb.protocol = ETH_P_IPV6
    net = skb.net
    net.mib.ipv6_statistics[IP6_MIB_OUTREQUESTS] += 1
    hookfns = net.nf_hooks.ipv6[NF_INET_LOCAL_OUT]
    if hookfns and not nf_hook(skb, NF_INET_LOCAL_OUT, None, skb.dst.dev, hookfns, NFPROTO_IPV6):
        return
    ip6_output(skb)


def ip6_output(skb: SkBuff) -> None:
    net, rt = skb.net, skb.dst
    skb.protocol = ETH_P_IPV6
    indev, skb.dev = skb.dev, rt.dev
    if route.ipv6_disabled(net, rt.dev):
        return kfree_skb(skb, DropReason.IPV6DISABLED, Stage.IP_OUTPUT, "ip6_output")
    hookfns = net.nf_hooks.ipv6[NF_INET_POST_ROUTING]
    if hookfns and not nf_hook(skb, NF_INET_POST_ROUTING, indev, rt.dev, hookfns, NFPROTO_IPV6):
        return
    ip6_finish_output(skb)


def ip6_finish_output(skb: SkBuff) -> None:
    """__ip6_finish_output(): fragment what is over the MTU, and a datagram
    conntrack reassembled that is longer than its largest fragment was."""
    mtu = ip6_dst_mtu(skb.dst)
    length = skb.tail - skb.network_header
    frag_max_size = skb.cb.get("frag_max_size", 0) if skb.cb else 0
    if (length > mtu and not skb.gso_size) or (frag_max_size and length > frag_max_size):
        return ip6_fragment(skb, mtu)
    ip6_finish_output2(skb)


def ip6_finish_output2(skb: SkBuff) -> None:
    """A multicast destination (OutMcastPkts) of interface-local scope never
    leaves a real device; then OutTransmits and the next hop's neighbour
    output (lo transmits directly)."""
    net, rt, dev = skb.net, skb.dst, skb.dev
    daddr = DADDR_FIELD.unpack_from(skb.buf, skb.network_header)[0]
    stats, length = net.mib.ipv6_statistics, skb.tail - skb.network_header
    if daddr[0] == 0xFF:
        stats[IP6_MIB_OUTMCASTPKTS] += 1
        stats[IP6_MIB_OUTMCASTOCTETS] += length
        if mc_scope(daddr) <= IPV6_ADDR_SCOPE_NODELOCAL and not dev.is_loopback:
            return kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.IP_OUTPUT, "ip6_finish_output2")
    stats[IP6_MIB_OUTTRANSMITS] += 1
    stats[IP6_MIB_OUTOCTETS] += length
    if dev.is_loopback:
        return core_dev.dev_queue_xmit(skb)
    net.ipv6.neigh_output(skb, rt.nexthop(daddr))


def ip6_find_1stfragopt(buf: bytearray, nh: int, tail: int) -> tuple[int, int]:
    """(length of the unfragmentable part, offset of the next-header field
    that will name the fragment header): hop-by-hop, routing, and
    destination options unless they follow a routing header."""
    offset, nhoff = IPV6_HLEN, NEXTHDR
    found_rhdr = False
    while offset <= tail - nh:
        nexthdr = buf[nh + nhoff]
        if nexthdr == NEXTHDR_ROUTING:
            found_rhdr = True
        elif nexthdr == NEXTHDR_DEST:
            if found_rhdr:
                return offset, nhoff
        elif nexthdr != NEXTHDR_HOP:
            return offset, nhoff
        nhoff = offset + OPT_NEXTHDR
        offset += exthdr_len(buf, nh + offset, nexthdr)
    return offset, nhoff


def ip6_fragment(skb: SkBuff, mtu: int) -> None:
    """ip6_fragment(): a packet no local socket allowed to fragment gets packet
    too big (to its own source) instead, as does a reassembled datagram whose
    largest fragment does not fit; the fragments are no larger than that
    fragment was (frag_max_size). A reassembled datagram whose fragments fit
    is cut where it was cut before (the fast path over its frag_list), any
    other packet into pieces of (mtu - headers - 8) & ~7 bytes."""
    net = skb.net
    length = skb.tail - skb.network_header
    cb = skb.cb or {}
    frag_max_size = cb.get("frag_max_size", 0)
    if (not skb.ignore_df and length > mtu) or frag_max_size > mtu:
        net.tracer.hop(skb, Stage.IP_OUTPUT, "ip6_fragment", "PKT_TOOBIG", f"mtu={mtu}")
        net.ipv6.icmpv6_send(skb, ICMPV6_PKT_TOOBIG, 0, mtu)
        net.mib.ipv6_statistics[IP6_MIB_FRAGFAILS] += 1
        return kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.IP_OUTPUT, "ip6_fragment")
    if frag_max_size:
        mtu = max(frag_max_size, IPV6_MIN_MTU)
    buf, nh = skb.buf, skb.network_header
    hlen, nhoff = ip6_find_1stfragopt(buf, nh, skb.tail)
    space = mtu - hlen - FRAG_HLEN
    payload = bytes(buf[nh + hlen:skb.tail])
    pieces = _frag_list_geometry(cb.get("frag_list"), space, len(payload)) or _slow_path_pieces(space, len(payload))
    headers = bytearray(buf[nh:nh + hlen])
    nexthdr = headers[nhoff]
    headers[nhoff] = NEXTHDR_FRAGMENT
    ident = net.random.getrandbits(32)  # ipv6_select_ident(): a keyed hash of the addresses on Linux
    offset, fragments = 0, []
    for size in pieces:
        chunk = payload[offset:offset + size]
        more = offset + len(chunk) < len(payload)
        frag = alloc_skb(bytes(headers) + FRAG_HEADER.pack(nexthdr, offset | (IP6_MF if more else 0), ident)
                         + chunk)
        frag.net, frag.dst, frag.dev, frag.mark, frag.protocol = net, skb.dst, skb.dev, skb.mark, ETH_P_IPV6
        frag.network_header, frag.transport_header = frag.data, frag.data + hlen + FRAG_HLEN
        Ipv6Packet(frag.buf, frag.data).payload_len = hlen + FRAG_HLEN + len(chunk) - IPV6_HLEN
        net.tracer.start(frag, f"fragment off={offset} len={len(chunk)} of "
                               f"{skb.journey.packet if skb.journey else ''}", parent=skb)
        net.tracer.hop(frag, Stage.IP_OUTPUT, "ip6_fragment", "FRAGMENT", f"off={offset} len={len(chunk)}")
        fragments.append(frag)
        offset += len(chunk)
    net.tracer.hop(skb, Stage.IP_OUTPUT, "ip6_fragment", "FRAGMENTED", f"{len(fragments)} fragments, mtu={mtu}")
    stats = net.mib.ipv6_statistics
    for frag in fragments:
        stats[IP6_MIB_FRAGCREATES] += 1
        ip6_finish_output2(frag)
    stats[IP6_MIB_FRAGOKS] += 1


def _frag_list_geometry(frag_list: tuple[int, ...] | None, space: int, length: int) -> tuple[int, ...] | None:
    """The fast path's check of the fragments' lengths: each fits, and each but
    the last is a multiple of 8 (else the slow path)."""
    if not frag_list or sum(frag_list) != length:
        return None
    for index, size in enumerate(frag_list):
        if size > space or (size & 7 and index < len(frag_list) - 1):
            return None
    return frag_list


def _slow_path_pieces(space: int, length: int) -> list[int]:
    """Pieces of space & ~7 bytes, the last whatever is left (when it fits whole)."""
    pieces, left = [], length
    while left > 0:
        size = left if left <= space else space & ~7
        pieces.append(size)
        left -= size
    return pieces


def ip6_dst_lookup(net, daddr: bytes, saddr: bytes | None = None, oif: int | None = None) -> \
        tuple[route.Rt6Info, bytes] | int:
    """ip6_dst_lookup_tail(): the output route (for the flow's source, when
    the socket has one) and the source address (the route's preferred
    source, else ipv6_dev_get_saddr() on its device), or an errno."""
    rt = route.ip6_route_output(net, daddr, oif, saddr or ANY)
    if saddr is None:
        from_ = rt.f6i if not rt.error else None
        if from_ is not None and from_.prefsrc is not None:
            saddr = from_.prefsrc
        else:
            saddr = addrconf.ipv6_dev_get_saddr(net, rt.dev if not rt.error else None, daddr)
            if saddr is None:
                return errno.EADDRNOTAVAIL
    if rt.error:
        return rt.error
    return rt, saddr
