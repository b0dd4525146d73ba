"""A NIC port and its driver: RX ring, interrupt -> NAPI poll, TX ring.

Models what drivers/net/* NICs share (and veth's NAPI mode): frames DMA'd into a
ring of `ethtool -G rx` descriptors, an interrupt that schedules NAPI, a poll that
builds skbs up to its weight, and net_rx_action()'s softirq budget
(net/core/dev.c: netdev_budget packets per round). A frame that finds the ring
full never gets an skb: it is counted in rx_missed_errors, as hardware does.
With receive hashing on (`ethtool -K pN rxhash on`) the driver puts the frame's
Toeplitz RSS hash (core/rss.py) into skb->hash; off (the default, as on the lab's
veth) skb->hash stays 0 until something computes one.
The skb is the one the lab's veth delivers, which packet_snd() allocated on the
tester's end (net/packet/af_packet.c): a head asked for LL_RESERVED_SPACE(veth)
and the frame, the frame copied from offset 2 (skb_reserve() of the reserved
space, then back by the Ethernet header for SOCK_RAW); its truesize and tailroom
follow from that head's slab size (core/skbuff.py). Left out there: a frame of a
page or more, which packet_alloc_skb() puts in page frags after a 14-byte head,
and the page_pool copy a veth makes for its XDP program (veth_xdp_rcv_skb()).
Time does not pass while polling: rounds are counted, not timed.
"""
from __future__ import annotations

from dataclasses import dataclass

from harness.journey import Hop, Stage
from harness.mockkernel.core.ethtool import rss_defaults
from harness.mockkernel.core.rss import rx_queue_of
from harness.mockkernel.core.skbuff import alloc_skb
from harness.mockkernel.core.xdp import do_xdp
from harness.mockkernel.net import NetDevice
from harness.mockkernel.wire.ethernet import ETH_HLEN

NAPI_POLL_WEIGHT = 64
LL_RESERVED_SPACE = 16  # a veth's: (hard_header_len 14 & ~(HH_DATA_MOD - 1)) + HH_DATA_MOD
PACKET_SND_HEADROOM = LL_RESERVED_SPACE - ETH_HLEN  # packet_snd() reserves the Ethernet header back
HOP_NAPI_ALLOC_SKB = Hop(Stage.SKB, "napi_alloc_skb")


@dataclass
class RxQueueStats:
    """One RX queue's driver counters, as `ethtool -S` names them per queue
    (rx_queue_N_packets/bytes/drops); the line-rate model counts them."""

    packets: int = 0
    bytes: int = 0
    drops: int = 0  # frames that found the queue's ring full (also in rx_missed_errors)


class Nic:
    def __init__(self, dev: NetDevice):
        self.dev = dev
        self.rx_ring: list[bytes] = []  # a poll takes a slice off its front: no call per frame
        self.wire: list[bytes] = []  # frames the port put on the wire, for the tester
        self.tx_hop = Hop(Stage.NIC_TX, dev.name, "XMIT")
        self.rx_queues: list[RxQueueStats] = []

    def rx_queue(self, index: int) -> RxQueueStats:
        """Queue `index`'s counters (kept when `ethtool -L` shrinks the channels,
        as drivers keep their ring stats)."""
        while len(self.rx_queues) <= index:
            self.rx_queues.append(RxQueueStats())
        return self.rx_queues[index]

    def dma_rx(self, frame: bytes) -> bool:
        """A frame arrives from the wire; False when no descriptor is free."""
        return not self.dma_rx_burst((frame,))

    def dma_rx_burst(self, frames: list[bytes] | tuple[bytes, ...]) -> list[bytes] | tuple[bytes, ...]:
        """Frames arrive from the wire, in order, into the free descriptors;
        returns the ones that found none (counted in rx_missed_errors)."""
        ring = self.rx_ring
        free = max(self.dev.rx_ring - len(ring), 0)
        if len(frames) <= free:
            ring.extend(frames)
            return ()
        ring.extend(frames[:free])
        missed = frames[free:]
        self.dev.stats.rx_missed_errors += len(missed)
        return missed

    def napi_poll(self, net, budget: int, rx_hop: Hop, napi_hop: Hop) -> list:
        """The driver's poll: up to `budget` frames from the ring, in order, each
        through the port's XDP program if one is attached, then built into skbs
        of the namespace. Returns (skb, the journey's hops so far) pairs: the
        `rx_hop` (NIC_RX) and `napi_hop`, XDP's hop if a program ran, the skb's
        allocation; the frames XDP consumed end their journeys here."""
        ring, dev, stats = self.rx_ring, self.dev, self.dev.stats
        skbs = []
        frames = ring[:budget]
        del ring[:budget]
        stats.rx_packets += len(frames)  # per poll: the totals are the same, the cost is not per frame
        stats.rx_bytes += sum(map(len, frames))
        hashing = dev.features["receive-hashing"]  # NETIF_F_RXHASH: the descriptor carries the RSS hash
        if hashing:
            rss_defaults(net, dev)
        for frame in frames:
            rx_hash = rx_queue_of(dev, frame)[0] if hashing else 0  # of the frame as it came off the wire
            if dev.xdp_prog is None:
                hops = [rx_hop, napi_hop, HOP_NAPI_ALLOC_SKB]
            else:
                passed = do_xdp(net, self, frame, (rx_hop, napi_hop))
                if passed is None:
                    continue
                frame, xdp_hop = passed
                hops = [rx_hop, napi_hop, xdp_hop, HOP_NAPI_ALLOC_SKB]
            skb = alloc_skb(frame, PACKET_SND_HEADROOM, LL_RESERVED_SPACE + len(frame))
            skb.dev, skb.net = dev, net
            skb.hash = rx_hash  # skb_set_hash() in the driver's receive
            skbs.append((skb, hops))
        return skbs

    def start_xmit(self, frame: bytes) -> None:
        """ndo_start_xmit(): onto the TX ring and, in the model, straight onto the wire."""
        self.dev.stats.tx_packets += 1
        self.dev.stats.tx_bytes += len(frame)
        self.wire.append(frame)
