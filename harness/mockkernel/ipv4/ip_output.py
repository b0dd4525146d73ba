"""IPv4 output (net/ipv4/ip_output.c): ip_local_out, ip_output, fragmentation.

ip_finish_output() fragments a packet larger than the path MTU when DF is clear
(or the socket allowed local fragmentation): each fragment carries
(mtu - ihl*4) & ~7 bytes of payload, the original ID, MF on all but the last
(kept on the last if the packet was itself a non-last fragment), and a fresh
header checksum. A DF packet that does not fit is answered with frag needed.
Then ip_finish_output2() finds the next hop's neighbour and sends through it
(core/neighbour.py neigh_output(), arp_tbl's entry).
SNMP: __ip_local_out() counts OutRequests (locally generated packets),
ip_output() OutTransmits and OutOctets, ip_finish_output2() the multicast and
broadcast ones; fragmentation FragOKs, FragCreates and FragFails.
Left out: GSO, IP options on non-first fragments, the frag_list fast path (its
fragments come out the same on the wire).
"""
from __future__ import annotations

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.core import dev as core_dev
from harness.mockkernel.core.skbuff import SkBuff, alloc_skb, kfree_skb
from harness.mockkernel.core.snmp import (IPSTATS_MIB_FRAGCREATES, IPSTATS_MIB_FRAGFAILS, IPSTATS_MIB_FRAGOKS,
                                          IPSTATS_MIB_OUT, IPSTATS_MIB_OUTBCAST, IPSTATS_MIB_OUTREQUESTS, PO_PACKET)
from harness.mockkernel.core.neighbour import HH_OUTPUT_HOPS, neigh_hh_output, neigh_output
from harness.mockkernel.net import NUD_CONNECTED
from harness.mockkernel.netfilter.core import NF_INET_LOCAL_OUT, NF_INET_POST_ROUTING, nf_hook
from harness.mockkernel.wire.ethernet import BROADCAST
from harness.mockkernel.wire.icmp import ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED
from harness.mockkernel.wire.ipv4 import DADDR_FIELD, IP_DF, IP_MF, IP_OFFSET, Ipv4Packet
from harness.mockkernel.wire.tcp import DATA_OFFSET_LEN, DOFF


def ip_select_ident(net, df: bool, ignore_df: bool) -> int:
    """ip_select_ident_segs() for an unconnected sender: 0 for a DF packet that
    may not be fragmented locally; otherwise (no DF, or a socket whose
    IP_PMTUDISC_WANT sets ignore_df) the hashed per-destination generator,
    unpredictable on Linux and a seeded generator here."""
    if df and not ignore_df:
        return 0
    return net.random.randrange(0x10000)


def ip_local_out(skb: SkBuff) -> None:
    """__ip_local_out(): fix tot_len and checksum, then the OUTPUT hook and dst_output."""
    iph = Ipv4Packet(skb.buf, skb.network_header)
    iph.tot_len = skb.tail - skb.network_header
    iph.fill_checksum()
    net = skb.net
    net.mib.ip_statistics[IPSTATS_MIB_OUTREQUESTS] += 1
    hookfns = net.nf_hooks.ipv4[NF_INET_LOCAL_OUT]
    if hookfns and not nf_hook(skb, NF_INET_LOCAL_OUT, None, skb.dst.dev, hookfns):
        return
    ip_output(skb)


def ip_output(skb: SkBuff) -> None:
    """ip_output(): the POSTROUTING hook, then ip_finish_output()."""
    net = skb.net
    skb.dev = dev = skb.dst.dev
    net.mib.ip_statistics[IPSTATS_MIB_OUT] += PO_PACKET + skb.tail - skb.network_header  # IP_UPD_PO_STATS()
    hookfns = net.nf_hooks.ipv4[NF_INET_POST_ROUTING]
    if hookfns and not nf_hook(skb, NF_INET_POST_ROUTING, None, dev, hookfns):
        return
    ip_finish_output(skb)


def ip_finish_output(skb: SkBuff) -> None:
    rt = skb.dst
    mtu = rt.mtu or rt.dev.mtu
    if skb.tail - skb.network_header > mtu and not (skb.gso_size and skb_gso_network_seglen(skb) <= mtu):
        return ip_fragment(skb, mtu)
    ip_finish_output2(skb)


def skb_gso_network_seglen(skb: SkBuff) -> int:
    """ip_finish_output_gso()'s skb_gso_validate_network_len(): a GSO skb goes
    out unfragmented when each of its segments (headers + gso_size) fits the MTU."""
    th = skb.transport_header
    return th - skb.network_header + DATA_OFFSET_LEN[skb.buf[th + DOFF]] + skb.gso_size


def ip_finish_output2(skb: SkBuff) -> None:
    """Next hop, neighbour, then neigh_output(): a connected entry's cached
    header (neigh_hh_output()), any other entry's neigh->output."""
    net, rt = skb.net, skb.dst
    dev = skb.dev
    if dev.is_loopback:
        return core_dev.dev_queue_xmit(skb)
    (daddr,) = DADDR_FIELD.unpack_from(skb.buf, skb.network_header)
    if rt.is_broadcast:
        net.mib.ip_statistics[IPSTATS_MIB_OUTBCAST] += PO_PACKET + skb.tail - skb.network_header
        return neigh_hh_output(skb, BROADCAST)
    nexthop = rt.nexthop(daddr)
    neigh = net.neighbours.get((dev.ifindex, nexthop))
    if neigh is None:
        neigh = net.arp_tbl.create(net, dev.ifindex, nexthop)
    state = neigh.state
    if state & NUD_CONNECTED:  # neigh_output()'s test, inline here as in include/net/neighbour.h
        journey = skb.journey
        if journey is not None:
            journey.hops.append(HH_OUTPUT_HOPS[state])
        return neigh_hh_output(skb, neigh.lladdr)
    neigh_output(net, neigh, skb)


def ip_fragment(skb: SkBuff, mtu: int) -> None:
    net = skb.net
    iph = Ipv4Packet(skb.buf, skb.network_header)
    if iph.frag_off & IP_DF and not skb.ignore_df:
        net.tracer.hop(skb, Stage.IP_OUTPUT, "ip_fragment", "FRAG_NEEDED", f"mtu={mtu}")
        net.mib.ip_statistics[IPSTATS_MIB_FRAGFAILS] += 1
        net.icmp_send(skb, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, info=mtu)
        return kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.IP_OUTPUT, "ip_fragment")
    fragments = ip_do_fragment(skb, mtu)
    mib = net.mib.ip_statistics
    mib[IPSTATS_MIB_FRAGCREATES] += len(fragments)
    mib[IPSTATS_MIB_FRAGOKS] += 1
    for fragment in fragments:
        ip_finish_output2(fragment)


def ip_do_fragment(skb: SkBuff, mtu: int) -> list[SkBuff]:
    """The slow path of ip_do_fragment(): ip_frag_init() + ip_frag_next()."""
    net = skb.net
    nh = skb.network_header
    iph = Ipv4Packet(skb.buf, nh)
    hlen = iph.header_len
    header = bytearray(skb.buf[nh:nh + hlen])
    payload = skb.buf[nh + hlen:skb.tail]
    space = mtu - hlen
    offset = (iph.frag_off & IP_OFFSET) << 3
    not_last = iph.frag_off & IP_MF
    df = iph.frag_off & IP_DF
    left, ptr = len(payload), 0
    fragments = []
    while left > 0:
        length = min(left, space)
        if length < left:
            length &= ~7
        left -= length
        frag_off = (offset >> 3) | df | (IP_MF if left > 0 or not_last else 0)
        new = alloc_skb(header + payload[ptr:ptr + length])
        new.net, new.dst, new.dev, new.mark = net, skb.dst, skb.dev, skb.mark
        new.network_header = new.data
        new.transport_header = new.data + hlen
        fiph = Ipv4Packet(new.buf, new.data)
        fiph.frag_off = frag_off
        fiph.tot_len = hlen + length
        fiph.fill_checksum()
        net.tracer.start(new, f"fragment off={offset} len={length} of {skb.journey.packet if skb.journey else ''}",
                         parent=skb)
        net.tracer.hop(new, Stage.IP_OUTPUT, "ip_do_fragment", "FRAGMENT", f"off={offset} len={length}")
        fragments.append(new)
        ptr += length
        offset += length
    net.tracer.hop(skb, Stage.IP_OUTPUT, "ip_do_fragment", "FRAGMENTED", f"{len(fragments)} fragments, mtu={mtu}")
    return fragments
