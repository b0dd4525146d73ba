"""IPv4 forwarding (net/ipv4/ip_forward.c): ip_forward, ip_forward_finish.

Before the FORWARD hook: TTL <= 1 is answered with ICMP time exceeded and dropped
(IP_INHDR); a DF packet larger than the egress MTU gets ICMP frag needed carrying
the MTU and is dropped (PKT_TOO_BIG). Otherwise TTL is decremented in place with
the kernel's incremental checksum update, skb->priority is set from the TOS
(rt_tos2priority(), while ip_forward_update_priority is on: a priority TC set at
ingress does not survive forwarding) and the packet goes to ip_output.
A multicast packet never comes here: forwarding it is ip_mr_input()'s, which
route.c only picks while a multicast router daemon has set mc_forwarding, so
without one a group packet is delivered locally or dropped at routing (seen on
the lab with ip_forward=1: all-hosts goes to INPUT, never FORWARD).
SNMP: TTL exceeded counts InHdrErrors, a DF packet over the MTU FragFails,
and ip_forward_finish() ForwDatagrams (after the FORWARD hook accepted).
Left out: router alert, strict source routes, redirects (send_redirects is 0 on
the DUT), IPsec, multicast routing.
"""
from __future__ import annotations

from harness.dropreason import DropReason
from harness.journey import Hop, Stage
from harness.mockkernel.core.skbuff import PACKET_HOST, SkBuff, kfree_skb
from harness.mockkernel.core.snmp import IPSTATS_MIB_FRAGFAILS, IPSTATS_MIB_INHDRERRORS, IPSTATS_MIB_OUTFORWDATAGRAMS
from harness.mockkernel.ipv4 import icmp, ip_options, ip_output, route
from harness.mockkernel.netfilter.core import NF_INET_FORWARD, nf_hook
from harness.mockkernel.wire.icmp import (ICMP_DEST_UNREACH, ICMP_EXC_TTL, ICMP_FRAG_NEEDED,
                                          ICMP_TIME_EXCEEDED)
from harness.mockkernel.wire.ipv4 import (IP_DF, IPTOS_TOS_MASK, TOS, TTL, Ipv4Packet, fill_checksum,
                                          ip_decrease_ttl)


HOP_FORWARD_OK = Hop(Stage.IP_FORWARD, "ip_forward", "OK")
# net/ipv4/route.c ip_tos2prio: TC_PRIO_BESTEFFORT 0, BULK 2, INTERACTIVE_BULK 4, INTERACTIVE 6
IP_TOS2PRIO = (0, 0, 0, 0, 2, 2, 2, 2, 6, 6, 6, 6, 4, 4, 4, 4)


def ip_forward(skb: SkBuff) -> None:
    net, rt = skb.net, skb.dst
    if skb.pkt_type != PACKET_HOST:
        return kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.IP_FORWARD, "ip_forward")
    buf, nh = skb.buf, skb.network_header
    ttl = buf[nh + TTL]  # a byte field read in place: cheaper than any load of the header
    if ttl <= 1:
        net.tracer.hop(skb, Stage.IP_FORWARD, "ip_forward", "TTL_EXCEEDED", f"ttl={ttl}")
        net.mib.ip_statistics[IPSTATS_MIB_INHDRERRORS] += 1
        icmp.icmp_send(skb, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL)
        return kfree_skb(skb, DropReason.IP_INHDR, Stage.IP_FORWARD, "ip_forward")
    mtu = rt.mtu or rt.dev.mtu
    # ip_exceeds_mtu(): a GRO skb passes when each of its segments fits
    if skb.tail - skb.data > mtu and Ipv4Packet(buf, nh).frag_off & IP_DF and not skb.ignore_df \
            and not (skb.gso_size and ip_output.skb_gso_network_seglen(skb) <= mtu):
        net.tracer.hop(skb, Stage.IP_FORWARD, "ip_forward", "FRAG_NEEDED", f"len={skb.len} mtu={mtu}")
        net.mib.ip_statistics[IPSTATS_MIB_FRAGFAILS] += 1
        icmp.icmp_send(skb, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, info=mtu)
        return kfree_skb(skb, DropReason.PKT_TOO_BIG, Stage.IP_FORWARD, "ip_forward")
    ip_decrease_ttl(buf, nh)
    skb.csum_complete = False  # skb_forward_csum(): CHECKSUM_COMPLETE back to NONE (csum_valid stays)
    if net.sysctl.values["net.ipv4.ip_forward_update_priority"]:
        skb.priority = IP_TOS2PRIO[(buf[nh + TOS] & IPTOS_TOS_MASK) >> 1]  # rt_tos2priority()
    journey = skb.journey
    if journey is not None:
        journey.hops.append(HOP_FORWARD_OK)
    hookfns = net.nf_hooks.ipv4[NF_INET_FORWARD]
    if hookfns and not nf_hook(skb, NF_INET_FORWARD, skb.dev, rt.dev, hookfns):
        return
    ip_forward_finish(skb)


def ip_forward_finish(skb: SkBuff) -> None:
    """After the FORWARD hook: the options' outgoing entries
    (ip_forward_options(), the checksum refreshed when they changed the
    header), then dst_output()."""
    net = skb.net
    opt = skb.cb.get("opt") if skb.cb else None
    if opt is not None:
        buf, nh = skb.buf, skb.network_header
        source = route.ip_rt_get_source(net, skb.dst, Ipv4Packet(buf, nh).daddr)
        if ip_options.ip_forward_options(buf, nh, opt, source):
            fill_checksum(buf, nh)  # ip_send_check()
    net.mib.ip_statistics[IPSTATS_MIB_OUTFORWDATAGRAMS] += 1
    ip_output.ip_output(skb)
