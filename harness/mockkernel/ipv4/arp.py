"""ARP and the neighbour state machine (net/ipv4/arp.c, net/core/neighbour.c).

Output: neigh_output() for the next hop's neighbour (ip_output.py's
ip_finish_output2() looks it up or creates it). A connected entry
(PERMANENT, NOARP, REACHABLE) sends at once; STALE sends and moves to DELAY,
then PROBE (unicast requests) after delay_first_probe_time; a missing entry
becomes INCOMPLETE, queues the packet and broadcasts up to mcast_probes
requests, retrans_time apart. With no answer the entry FAILs: queued packets
are dropped (NEIGH_FAILED) and their senders get ICMP host unreachable.
Input: arp_process() answers requests for local addresses (arp_ignore=0),
records the sender as STALE, and a unicast reply makes a known entry REACHABLE.
Timers run on the virtual clock.
"""
from __future__ import annotations

import socket

from harness.dropreason import DropReason
from harness.journey import Hop, Stage
from harness.mockkernel.core.dev import dev_add_pack, dev_queue_xmit
from harness.mockkernel.core.rtnetlink import neigh_table_init
from harness.mockkernel.core.skbuff import PACKET_HOST, PACKET_OTHERHOST, SkBuff, alloc_skb, kfree_skb
from harness.mockkernel.ipv4.route import inet_select_addr, local_addresses
from harness.mockkernel.net import (NUD_CONNECTED, NUD_DELAY, NUD_FAILED, NUD_INCOMPLETE, NUD_NAMES, NUD_NOARP,
                                    NUD_PERMANENT, NUD_PROBE, NUD_REACHABLE, NUD_STALE, NUD_VALID, Neighbour)
from harness.mockkernel.wire import Truncated, WireError
from harness.mockkernel.wire import arp as wire_arp
from harness.mockkernel.wire.ethernet import BROADCAST, ETH_HLEN, ETH_P_ARP, ETH_P_IP
from harness.mockkernel.wire.ethernet import HEADER as ETH_HEADER
from harness.mockkernel.wire.icmp import ICMP_DEST_UNREACH, ICMP_HOST_UNREACH
from harness.mockkernel.wire.ipv4 import Ipv4Packet

# arp_tbl parms defaults (net/ipv4/arp.c)
MCAST_PROBES, UCAST_PROBES = 3, 3
RETRANS_TIME, DELAY_PROBE_TIME, BASE_REACHABLE_TIME, LOCKTIME = 1.0, 5.0, 30.0, 1.0
QUEUE_LEN_BYTES = 212992


HH_OUTPUT_HOPS = {state: Hop(Stage.NEIGH, "neigh_hh_output", NUD_NAMES[state])
                  for state in (NUD_PERMANENT, NUD_NOARP, NUD_REACHABLE)}


def _ip(addr: int) -> bytes:
    return addr.to_bytes(4, "big")


def neigh_output(net, neigh: Neighbour, skb: SkBuff) -> None:
    state = neigh.state
    if state & NUD_CONNECTED:
        journey = skb.journey
        if journey is not None:
            journey.hops.append(HH_OUTPUT_HOPS[state])
        return neigh_hh_output(skb, neigh.lladdr)
    if neigh.state & (NUD_STALE | NUD_DELAY | NUD_PROBE):
        if neigh.state == NUD_STALE:
            _set_state(net, neigh, NUD_DELAY)
            net.clock.add_timer(DELAY_PROBE_TIME, lambda: _delay_expired(net, neigh))
        net.tracer.hop(skb, Stage.NEIGH, "neigh_resolve_output", NUD_NAMES[neigh.state])
        return neigh_hh_output(skb, neigh.lladdr)
    # __neigh_event_send(): resolve, and queue the packet meanwhile
    if neigh.state in (0, NUD_FAILED):
        _set_state(net, neigh, NUD_INCOMPLETE)
        neigh.probes = 0
        _solicit(net, neigh, skb)
        net.clock.add_timer(RETRANS_TIME, lambda: _retransmit(net, neigh))
    net.tracer.hop(skb, Stage.NEIGH, "__neigh_event_send", "QUEUED", "INCOMPLETE")
    neigh.queue.append(skb)
    while sum(q.truesize for q in neigh.queue) > QUEUE_LEN_BYTES:
        kfree_skb(neigh.queue.pop(0), DropReason.NEIGH_QUEUEFULL, Stage.NEIGH, "__neigh_event_send")


def neigh_hh_output(skb: SkBuff, lladdr: bytes) -> None:
    """The neighbour's link-layer header copied in front, into headroom (the
    kernel copies its cached hh_data; one pack_into here), then out of the device.
    As the kernel's, it checks the headroom itself and pushes inline; only a
    packet without headroom pays skb_push()'s reallocation."""
    data = skb.data - ETH_HLEN
    if data < 0:
        data = skb.push(ETH_HLEN)
    else:
        skb.data = data
    ETH_HEADER.pack_into(skb.buf, data, lladdr, skb.dev.mac, ETH_P_IP)
    skb.mac_header = data
    dev_queue_xmit(skb)


def _set_state(net, neigh: Neighbour, state: int) -> None:
    neigh.state = state
    neigh.updated = net.clock.now


def _retransmit(net, neigh: Neighbour) -> None:
    """neigh_timer_handler() for INCOMPLETE/PROBE entries."""
    if neigh.state not in (NUD_INCOMPLETE, NUD_PROBE):
        return
    limit = MCAST_PROBES if neigh.state == NUD_INCOMPLETE else UCAST_PROBES
    if neigh.probes >= limit:
        return _neigh_failed(net, neigh)
    _solicit(net, neigh, neigh.queue[-1] if neigh.queue else None)
    net.clock.add_timer(RETRANS_TIME, lambda: _retransmit(net, neigh))


def _delay_expired(net, neigh: Neighbour) -> None:
    if neigh.state != NUD_DELAY:
        return
    if net.clock.now - neigh.updated < DELAY_PROBE_TIME:
        return
    _set_state(net, neigh, NUD_PROBE)
    neigh.probes = 0
    _retransmit(net, neigh)


def _neigh_failed(net, neigh: Neighbour) -> None:
    """neigh_invalidate(): queued packets fail (ipv4_link_failure sends ICMP)."""
    _set_state(net, neigh, NUD_FAILED)
    queued, neigh.queue = neigh.queue, []
    for skb in queued:
        net.tracer.hop(skb, Stage.NEIGH, "neigh_invalidate", "FAILED")
        net.icmp_send(skb, ICMP_DEST_UNREACH, ICMP_HOST_UNREACH)
        kfree_skb(skb, DropReason.NEIGH_FAILED, Stage.NEIGH, "neigh_invalidate")


def _solicit(net, neigh: Neighbour, skb: SkBuff | None) -> None:
    """arp_solicit(): a broadcast request while INCOMPLETE, unicast when PROBE.
    The sender address is the packet's source if it is local (arp_announce=0),
    else one chosen for the target."""
    dev = net.devices[neigh.ifindex]
    neigh.probes += 1
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
    """arp_create() + arp_xmit()."""
    body = wire_arp.build(op, dev.mac, sip, tha, tip)
    skb = alloc_skb(eth_dst + dev.mac + ETH_P_ARP.to_bytes(2, "big") + body)
    skb.net, skb.dev = net, dev
    net.tracer.start(skb, f"{why}: ARP {'request' if op == 1 else 'reply'} "
                          f"{socket.inet_ntoa(tip)} tell {socket.inet_ntoa(sip)}")
    dev_queue_xmit(skb)


def arp_rcv(skb: SkBuff) -> None:
    """arp_rcv() + arp_process()."""
    net, dev = skb.net, skb.dev
    if skb.pkt_type == PACKET_OTHERHOST:
        net.tracer.hop(skb, Stage.NEIGH, "arp_rcv", "CONSUMED", "otherhost")
        return
    try:
        arph = wire_arp.ArpPacket(skb.buf, skb.data).check_len(skb.tail)
    except Truncated:  # pskb_may_pull_reason(skb, arp_hdr_len(dev)), 6.17+
        return kfree_skb(skb, DropReason.PKT_TOO_SMALL, Stage.NEIGH, "arp_rcv")
    except WireError:
        return kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.NEIGH, "arp_rcv")
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
        neigh_event_ns(net, dev, sip, sha)
        arp_send(net, dev, wire_arp.ARPOP_REPLY, sha, sip_b, sha, tip_b, "arp_process reply")
        net.tracer.hop(skb, Stage.NEIGH, "arp_process", "REPLIED")
        return
    neigh = net.neighbours.get((dev.ifindex, sip))
    if neigh is not None:
        state = NUD_REACHABLE if op == wire_arp.ARPOP_REPLY and skb.pkt_type == PACKET_HOST else NUD_STALE
        override = net.clock.now > neigh.updated + LOCKTIME or neigh.state & (NUD_INCOMPLETE | NUD_FAILED)
        neigh_update(net, neigh, sha, state, bool(override))
    net.tracer.hop(skb, Stage.NEIGH, "arp_process", "CONSUMED", "updated" if neigh else "no entry")


def arp_init(net) -> None:
    neigh_table_init(net, neigh_output)
    dev_add_pack(ETH_P_ARP, arp_rcv)


def neigh_event_ns(net, dev, ip: int, lladdr: bytes) -> None:
    """A request for us: create or refresh the sender's entry as STALE."""
    neigh = net.neighbours.get((dev.ifindex, ip))
    if neigh is None:
        neigh = net.neighbours[(dev.ifindex, ip)] = Neighbour(ip, dev.ifindex, None, 0, net.clock.now)
    neigh_update(net, neigh, lladdr, NUD_STALE, override=False)


def neigh_update(net, neigh: Neighbour, lladdr: bytes, state: int, override: bool) -> None:
    """neigh_update(): PERMANENT/NOARP entries are not changed by the network;
    a different address is taken only with override; a now-valid entry sends its queue."""
    if neigh.state & (NUD_PERMANENT | NUD_NOARP):
        return
    if neigh.lladdr is not None and lladdr != neigh.lladdr and not override and neigh.state & NUD_VALID:
        if neigh.state & NUD_CONNECTED:
            _set_state(net, neigh, NUD_STALE)
        return
    if neigh.state & NUD_CONNECTED and state == NUD_STALE and lladdr == neigh.lladdr:
        return
    neigh.lladdr = lladdr
    _set_state(net, neigh, state)
    if state == NUD_REACHABLE:
        reachable = BASE_REACHABLE_TIME * (0.5 + net.random.random())
        net.clock.add_timer(reachable, lambda: _reachable_expired(net, neigh))
    queued, neigh.queue = neigh.queue, []
    for skb in queued:
        neigh_output(net, neigh, skb)


def _reachable_expired(net, neigh: Neighbour) -> None:
    if neigh.state == NUD_REACHABLE:
        _set_state(net, neigh, NUD_STALE)
