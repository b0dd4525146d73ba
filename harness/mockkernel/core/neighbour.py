"""The neighbour state machine (net/core/neighbour.c), shared by ARP and ND.

A `NeighTable` is struct neigh_table with its default neigh_parms: the
entries by (ifindex, address), the link-layer protocol its packets carry,
and the protocol's two operations: `solicit(net, neigh, skb)` (arp_solicit(),
ndisc_solicit()) and `error_report(net, skb)` (the ICMP error a packet that
failed resolution gets, and its freeing with the protocol's reason:
arp_error_report(), ndisc_error_report()).

Output: neigh_output() for the next hop's entry. A connected entry
(PERMANENT, NOARP, REACHABLE) sends at once (neigh_hh_output()); STALE
sends and moves to DELAY, then PROBE (unicast solicitations) after
delay_first_probe_time; a missing entry becomes INCOMPLETE, queues the
packet and sends up to mcast_solicit solicitations, retrans_time apart.
With no answer the entry FAILs: queued packets are dropped (NEIGH_FAILED)
and their senders get the table's error. Input: neigh_update() as the
protocols' receive functions call it, neigh_event_ns() for a solicitation's
sender. Timers run on the virtual clock.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from harness.dropreason import DropReason
from harness.journey import Hop, Stage
from harness.mockkernel.core.dev import dev_queue_xmit
from harness.mockkernel.core.skbuff import SkBuff, kfree_skb
from harness.mockkernel.net import (NUD_CONNECTED, NUD_DELAY, NUD_FAILED, NUD_INCOMPLETE, NUD_NAMES, NUD_NOARP,
                                    NUD_PERMANENT, NUD_PROBE, NUD_REACHABLE, NUD_STALE, NUD_VALID, Neighbour)
from harness.mockkernel.wire.ethernet import ETH_HLEN, ETH_P_IP
from harness.mockkernel.wire.ethernet import HEADER as ETH_HEADER

HH_OUTPUT_HOPS = {state: Hop(Stage.NEIGH, "neigh_hh_output", NUD_NAMES[state])
                  for state in (NUD_PERMANENT, NUD_NOARP, NUD_REACHABLE)}


@dataclass(eq=False)
class NeighTable:
    """struct neigh_table and its neigh_parms defaults (seconds)."""

    entries: dict
    protocol: int  # the ethertype of the packets it resolves for
    solicit: Callable
    error_report: Callable
    mcast_probes: int = 3
    ucast_probes: int = 3
    retrans_time: float = 1.0
    delay_probe_time: float = 5.0
    base_reachable_time: float = 30.0
    locktime: float = 1.0
    queue_len_bytes: int = 212992
    proxy_delay: float = 0.8  # the longest random delay of an answer for a proxied address
    # pneigh entries (`ip neigh add proxy`): (ifindex, addr) -> whether NTF_ROUTER is set
    proxies: dict = field(default_factory=dict)
    # fn(dev, addr) run as a proxy entry is made and as it goes (nd_tbl's join its solicited-node group)
    pconstructor: Callable | None = None
    pdestructor: Callable | None = None

    def create(self, net, ifindex: int, addr) -> Neighbour:
        """__neigh_create(): a new entry in no state."""
        neigh = self.entries[(ifindex, addr)] = Neighbour(addr, ifindex, None, 0, net.clock.now, tbl=self)
        return neigh

    def lookup_or_create(self, net, ifindex: int, addr) -> Neighbour:
        neigh = self.entries.get((ifindex, addr))
        return neigh if neigh is not None else self.create(net, ifindex, addr)


def neigh_output(net, neigh: Neighbour, skb: SkBuff) -> None:
    state = neigh.state
    if state & NUD_CONNECTED:
        journey = skb.journey
        if journey is not None:
            journey.hops.append(HH_OUTPUT_HOPS[state])
        return neigh_hh_output(skb, neigh.lladdr, neigh.tbl.protocol)
    if neigh.state & (NUD_STALE | NUD_DELAY | NUD_PROBE):
        if neigh.state == NUD_STALE:
            _set_state(net, neigh, NUD_DELAY)
            net.clock.add_timer(neigh.tbl.delay_probe_time, lambda: _delay_expired(net, neigh))
        net.tracer.hop(skb, Stage.NEIGH, "neigh_resolve_output", NUD_NAMES[neigh.state])
        return neigh_hh_output(skb, neigh.lladdr, neigh.tbl.protocol)
    # __neigh_event_send(): resolve, and queue the packet meanwhile
    if neigh.state in (0, NUD_FAILED):
        _set_state(net, neigh, NUD_INCOMPLETE)
        neigh.probes = 0
        _solicit(net, neigh, skb)
        net.clock.add_timer(neigh.tbl.retrans_time, lambda: _retransmit(net, neigh))
    net.tracer.hop(skb, Stage.NEIGH, "__neigh_event_send", "QUEUED", "INCOMPLETE")
    neigh.queue.append(skb)
    while sum(q.truesize for q in neigh.queue) > neigh.tbl.queue_len_bytes:
        kfree_skb(neigh.queue.pop(0), DropReason.NEIGH_QUEUEFULL, Stage.NEIGH, "__neigh_event_send")


# include/net/neighbour.h: the tables neigh_xmit() names
NEIGH_ARP_TABLE, NEIGH_ND_TABLE = 0, 1


def neigh_xmit(net, index: int, dev, addr, skb: SkBuff) -> None:
    """neigh_xmit(): send `skb` (its data at the network header) out of `dev`
    to the neighbour `addr` of table `index`, found or created there
    (__ipv4_neigh_lookup_noref() / __neigh_create()), through its output as
    the protocols' own output does (neigh_output()); nd_tbl's entries are made
    by ndisc's constructor (net.ipv6.neigh_output). A table this kernel has
    not got frees the packet (EAFNOSUPPORT)."""
    skb.dev = dev
    if index == NEIGH_ARP_TABLE and net.arp_tbl is not None:
        neigh_output(net, net.arp_tbl.lookup_or_create(net, dev.ifindex, addr), skb)
    elif index == NEIGH_ND_TABLE and net.ipv6 is not None and net.ipv6.neigh_output is not None:
        net.ipv6.neigh_output(skb, addr)
    else:
        kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.NEIGH, "neigh_xmit")


def neigh_hh_output(skb: SkBuff, lladdr: bytes, protocol: int = ETH_P_IP) -> None:
    """The neighbour's link-layer header copied in front, into headroom (the
    kernel copies its cached hh_data; one pack_into here), then out of the device.
    As the kernel's, it checks the headroom itself and pushes inline; only a
    packet without headroom pays skb_push()'s reallocation."""
    data = skb.data - ETH_HLEN
    if data < 0:
        data = skb.push(ETH_HLEN)
    else:
        skb.data = data
    ETH_HEADER.pack_into(skb.buf, data, lladdr, skb.dev.mac, protocol)
    skb.mac_header = data
    dev_queue_xmit(skb)


def _set_state(net, neigh: Neighbour, state: int) -> None:
    neigh.state = state
    neigh.updated = net.clock.now


def _solicit(net, neigh: Neighbour, skb: SkBuff | None) -> None:
    neigh.probes += 1
    neigh.tbl.solicit(net, neigh, skb)


def _retransmit(net, neigh: Neighbour) -> None:
    """neigh_timer_handler() for INCOMPLETE/PROBE entries."""
    if neigh.state not in (NUD_INCOMPLETE, NUD_PROBE):
        return
    limit = neigh.tbl.mcast_probes if neigh.state == NUD_INCOMPLETE else neigh.tbl.ucast_probes
    if neigh.probes >= limit:
        return _neigh_failed(net, neigh)
    _solicit(net, neigh, neigh.queue[-1] if neigh.queue else None)
    net.clock.add_timer(neigh.tbl.retrans_time, lambda: _retransmit(net, neigh))


def _delay_expired(net, neigh: Neighbour) -> None:
    if neigh.state != NUD_DELAY:
        return
    if net.clock.now - neigh.updated < neigh.tbl.delay_probe_time:
        return
    _set_state(net, neigh, NUD_PROBE)
    neigh.probes = 0
    _retransmit(net, neigh)


def _neigh_failed(net, neigh: Neighbour) -> None:
    """neigh_invalidate(): queued packets fail, each sender told (and the packet
    freed) by the table's error_report."""
    _set_state(net, neigh, NUD_FAILED)
    queued, neigh.queue = neigh.queue, []
    for skb in queued:
        net.tracer.hop(skb, Stage.NEIGH, "neigh_invalidate", "FAILED")
        neigh.tbl.error_report(net, skb)


def neigh_event_ns(net, tbl: NeighTable, dev, addr, lladdr: bytes) -> Neighbour:
    """A solicitation for us: create or refresh the sender's entry as STALE."""
    neigh = tbl.lookup_or_create(net, dev.ifindex, addr)
    neigh_update(net, neigh, lladdr, NUD_STALE, override=False)
    return neigh


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
        reachable = neigh.tbl.base_reachable_time * (0.5 + net.random.random())
        net.clock.add_timer(reachable, lambda: _reachable_expired(net, neigh))
    queued, neigh.queue = neigh.queue, []
    for skb in queued:
        neigh_output(net, neigh, skb)


def _reachable_expired(net, neigh: Neighbour) -> None:
    if neigh.state == NUD_REACHABLE:
        _set_state(net, neigh, NUD_STALE)
