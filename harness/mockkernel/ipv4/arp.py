"""ARP (net/ipv4/arp.c): arp_tbl's solicitations and errors, and arp_rcv().

The state machine is the neighbour core's (core/neighbour.py); ARP gives it
arp_solicit() (a broadcast request while INCOMPLETE, unicast when PROBE) and
arp_error_report() (ICMP host unreachable for a packet that failed
resolution), with arp_tbl's parms (mcast_probes 3, retrans_time 1 s,
delay_first_probe_time 5 s, base_reachable_time 30 s, locktime 1 s).
Input: arp_process() answers requests for local addresses (arp_ignore=0),
records the sender as STALE, and a unicast reply makes a known entry REACHABLE.
Netfilter's ARP hooks (nftables' arp family): arp_rcv() runs NF_ARP_IN (the
receiving device as input) between its header checks and arp_process();
arp_xmit() runs NF_ARP_OUT (the device as output) before the frame is queued.
"""
from __future__ import annotations

import socket

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.core.dev import dev_add_pack, dev_queue_xmit
from harness.mockkernel.core.neighbour import NeighTable, neigh_event_ns, neigh_update
from harness.mockkernel.core.rtnetlink import neigh_table_init
from harness.mockkernel.core.skbuff import PACKET_HOST, PACKET_OTHERHOST, SkBuff, alloc_skb, kfree_skb
from harness.mockkernel.ipv4.route import inet_select_addr, local_addresses
from harness.mockkernel.netfilter.core import NF_ARP_IN, NF_ARP_OUT, NF_HOOK_ARP
from harness.mockkernel.net import NUD_FAILED, NUD_INCOMPLETE, NUD_NAMES, NUD_PROBE, NUD_REACHABLE, NUD_STALE, Neighbour
from harness.mockkernel.wire import Truncated, WireError
from harness.mockkernel.wire import arp as wire_arp
from harness.mockkernel.wire.ethernet import BROADCAST, ETH_HLEN, ETH_P_ARP, ETH_P_IP
from harness.mockkernel.wire.icmp import ICMP_DEST_UNREACH, ICMP_HOST_UNREACH
from harness.mockkernel.wire.ipv4 import Ipv4Packet


def _ip(addr: int) -> bytes:
    return addr.to_bytes(4, "big")


def arp_solicit(net, neigh: Neighbour, skb: SkBuff | None) -> None:
    """A broadcast request while INCOMPLETE, unicast when PROBE. The sender
    address is the packet's source if it is local (arp_announce=0), else one
    chosen for the target."""
    dev = net.devices[neigh.ifindex]
    saddr = 0
    if skb is not None:
        src = Ipv4Packet(skb.buf, skb.network_header).saddr
        if src in local_addresses(net):
            saddr = src
    if not saddr:
        saddr = inet_select_addr(net, dev, neigh.ip, 253)
    dest = neigh.lladdr if neigh.state == NUD_PROBE and neigh.lladdr else BROADCAST
    arp_send(net, dev, wire_arp.ARPOP_REQUEST, dest, _ip(neigh.ip), bytes(6), _ip(saddr),
             f"arp_solicit {NUD_NAMES[neigh.state]} probe {neigh.probes}")


def arp_send(net, dev, op: int, eth_dst: bytes, tip: bytes, tha: bytes, sip: bytes, why: str) -> None:
    """arp_create() (skb->protocol ETH_P_ARP, the network header at the ARP
    header, the Ethernet header in front) + arp_xmit(): NF_ARP_OUT, then
    arp_xmit_finish()'s dev_queue_xmit()."""
    body = wire_arp.build(op, dev.mac, sip, tha, tip)
    skb = alloc_skb(eth_dst + dev.mac + ETH_P_ARP.to_bytes(2, "big") + body)
    skb.net, skb.dev, skb.protocol = net, dev, ETH_P_ARP
    skb.mac_header, skb.network_header = skb.data, skb.data + ETH_HLEN
    net.tracer.start(skb, f"{why}: ARP {'request' if op == 1 else 'reply'} "
                          f"{socket.inet_ntoa(tip)} tell {socket.inet_ntoa(sip)}")
    NF_HOOK_ARP(skb, NF_ARP_OUT, None, dev, dev_queue_xmit)


def arp_rcv(skb: SkBuff) -> None:
    """arp_rcv(): other hosts' frames consumed, the header's length and its
    address lengths checked, then NF_ARP_IN and arp_process()."""
    net, dev = skb.net, skb.dev
    if skb.pkt_type == PACKET_OTHERHOST:
        net.tracer.hop(skb, Stage.NEIGH, "arp_rcv", "CONSUMED", "otherhost")
        return
    try:
        wire_arp.ArpPacket(skb.buf, skb.data).check_len(skb.tail)
    except Truncated:  # pskb_may_pull_reason(skb, arp_hdr_len(dev)), 6.17+
        return kfree_skb(skb, DropReason.PKT_TOO_SMALL, Stage.NEIGH, "arp_rcv")
    except WireError:
        return kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.NEIGH, "arp_rcv")
    NF_HOOK_ARP(skb, NF_ARP_IN, dev, None, arp_process)


def arp_process(skb: SkBuff) -> None:
    """arp_process(): answer a request for a local address, learn the sender."""
    net, dev = skb.net, skb.dev
    arph = wire_arp.ArpPacket(skb.buf, skb.data)
    hrd, pro, _, _, op, sha, sip_b, _, tip_b = arph.fields()
    if hrd not in (wire_arp.ARPHRD_ETHER, wire_arp.ARPHRD_IEEE802) or pro != ETH_P_IP or op not in (wire_arp.ARPOP_REQUEST, wire_arp.ARPOP_REPLY):
        return kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.NEIGH, "arp_process")
    sip, tip = int.from_bytes(sip_b, "big"), int.from_bytes(tip_b, "big")
    if sip >> 28 == 0xE or tip >> 28 == 0xE or (tip >> 24 == 127):
        return kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.NEIGH, "arp_process")
    local = local_addresses(net)
    if op == wire_arp.ARPOP_REQUEST and tip in local:
        if sip == 0:  # duplicate address detection probe: answer, learn nothing
            arp_send(net, dev, wire_arp.ARPOP_REPLY, sha, sip_b, sha, tip_b, "arp_process DAD reply")
            net.tracer.hop(skb, Stage.NEIGH, "arp_process", "REPLIED")
            return
        neigh_event_ns(net, net.arp_tbl, dev, sip, sha)
        arp_send(net, dev, wire_arp.ARPOP_REPLY, sha, sip_b, sha, tip_b, "arp_process reply")
        net.tracer.hop(skb, Stage.NEIGH, "arp_process", "REPLIED")
        return
    neigh = net.neighbours.get((dev.ifindex, sip))
    if neigh is not None:
        state = NUD_REACHABLE if op == wire_arp.ARPOP_REPLY and skb.pkt_type == PACKET_HOST else NUD_STALE
        override = net.clock.now > neigh.updated + neigh.tbl.locktime or neigh.state & (NUD_INCOMPLETE | NUD_FAILED)
        neigh_update(net, neigh, sha, state, bool(override))
    net.tracer.hop(skb, Stage.NEIGH, "arp_process", "CONSUMED", "updated" if neigh else "no entry")


def arp_error_report(net, skb: SkBuff) -> None:
    """ipv4_link_failure() (the sender gets host unreachable), then
    kfree_skb_reason(NEIGH_FAILED)."""
    net.icmp_send(skb, ICMP_DEST_UNREACH, ICMP_HOST_UNREACH)
    kfree_skb(skb, DropReason.NEIGH_FAILED, Stage.NEIGH, "neigh_invalidate")


def arp_init(net) -> None:
    """neigh_table_init(NEIGH_ARP_TABLE, &arp_tbl), its entries net.neighbours; ETH_P_ARP's receive."""
    neigh_table_init(net, "arp_tbl", NeighTable(net.neighbours, ETH_P_IP, arp_solicit, arp_error_report))
    dev_add_pack(ETH_P_ARP, arp_rcv)
