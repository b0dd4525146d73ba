"""The FIFOs (net/sched/sch_fifo.c): pfifo counts packets, bfifo bytes.

__fifo_init(): without options the limit is the device's tx_queue_len (pfifo) or
that many MTU-sized frames, tx_queue_len * psched_mtu() (bfifo); pfifo_enqueue()
takes a packet while qlen < limit, bfifo_enqueue() while backlog + its length
<= limit; any other is dropped (qdisc_drop(), QDISC_DROP). fifo_create_dflt()
makes the default child of tbf (a bfifo of tbf's limit) and of htb's classes (a
pfifo): such a child is invisible to `tc qdisc show`.
Left out: pfifo_head_drop, the bypass flag (no visible difference).
"""
from __future__ import annotations

from harness.mockkernel.sched.sch_generic import FifoQueue, register_qdisc
from harness.mockkernel.wire.ethernet import ETH_HLEN


def psched_mtu(dev) -> int:
    """The largest frame: MTU + the link-layer header (hard_header_len)."""
    return dev.mtu + ETH_HLEN


@register_qdisc
class Pfifo(FifoQueue):
    kind = "pfifo"

    def __init__(self, dev, handle: int, parent: int, limit: int | None = None) -> None:
        super().__init__(dev, handle, parent)
        self.limit = self.default_limit(dev) if limit is None else limit
        self.explicit = limit is not None

    @staticmethod
    def default_limit(dev) -> int:
        return dev.tx_queue_len

    def change(self, limit: int | None) -> None:
        self.limit = self.default_limit(self.dev) if limit is None else limit

    def enqueue(self, skb, count: int, now: float) -> int:
        """pfifo_enqueue(): whole packets while qlen < limit."""
        return self.enqueue_within(skb, count, self.limit - self.qlen)

    def enqueue_within(self, skb, count: int, room: int) -> int:
        """The first `room` packets of the train join the tail, the rest are dropped."""
        if count <= room:
            return self.enqueue_tail(skb, count)
        accepted = max(room, 0)
        if accepted:
            self.enqueue_tail(skb, accepted)
        self.drop(skb, count - accepted)
        return accepted


@register_qdisc
class Bfifo(Pfifo):
    kind = "bfifo"

    @staticmethod
    def default_limit(dev) -> int:
        return dev.tx_queue_len * psched_mtu(dev)

    def enqueue(self, skb, count: int, now: float) -> int:
        """bfifo_enqueue(): packets while the backlog stays within limit bytes."""
        length = skb.len
        return self.enqueue_within(skb, count, (self.limit - self.backlog) // length if length else count)


def fifo_create_dflt(kind: type[Pfifo], dev, parent: int, limit: int | None) -> Pfifo:
    """qdisc_create_dflt(): a FIFO with handle 0 as the default child of the class
    `parent`, left out of `tc qdisc show` (qdisc_hash_add(child, true))."""
    child = kind(dev, 0, parent, limit)
    child.invisible = True
    return child
