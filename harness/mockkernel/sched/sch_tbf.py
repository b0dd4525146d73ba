"""The token bucket filter (net/sched/sch_tbf.c).

Tokens are nanoseconds of transmission at `rate`, up to `buffer` (the burst's
time); a packet of length L costs psched_l2t_ns(rate, L). tbf_dequeue() looks at the
child's head: tokens = min(min(now - t_c, buffer) + tokens, buffer) - cost, and sends
it if that is not negative (the same with `peakrate` and its bucket of `mtu`), else
counts an overlimit and sets the watchdog for when the tokens will suffice. For a
train of identical packets the same arithmetic at one `now` lets k = tokens // cost
of them go at once, which is what k dequeues in a row at that instant give.
tbf_enqueue() drops a packet longer than max_size (the largest the bucket can ever
send) and hands the rest to the child, a bfifo of `limit` bytes unless one was grafted
on class 1:1; the child's drops count on tbf too.
Left out: GSO segmentation, offload.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass

from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.sched.sch_fifo import Bfifo, Pfifo, fifo_create_dflt
from harness.mockkernel.sched.sch_generic import (NSEC_PER_SEC, PschedRatecfg, Qdisc, now_ns, register_qdisc,
                                                   tc_h_maj)

PSCHED_SHIFT = 6  # PSCHED_TICKS2NS(): a tick is 64 ns


@dataclass
class TbfQopt:
    """struct tc_tbf_qopt and the attributes tc sends with it (TCA_TBF_BURST,
    TCA_TBF_PBURST, the 64-bit rates in the rate fields)."""

    limit: int
    rate: int  # bytes/s
    burst: int  # bytes (TCA_TBF_BURST)
    peakrate: int = 0
    pburst: int = 0  # bytes (TCA_TBF_PBURST)
    overhead: int = 0
    mpu: int = 0
    cell_log: int = 3
    pcell_log: int = 3


@register_qdisc
class Tbf(Qdisc):
    kind = "tbf"
    classful = True

    def __init__(self, dev, handle: int, parent: int, qopt: TbfQopt | None) -> None:
        if qopt is None:  # tbf_init() without options
            raise RtnlError(errno.EINVAL)
        super().__init__(dev, handle, parent)
        self.child: Qdisc | None = None  # noop_qdisc until tbf_change() makes the bfifo
        self.t_c = 0
        self.change(qopt)

    def change(self, qopt: TbfQopt) -> None:
        """tbf_change()"""
        rate = PschedRatecfg(qopt.rate, qopt.overhead, qopt.mpu)
        buffer = rate.l2t_ns(qopt.burst)
        max_size = qopt.burst
        peak, mtu = None, 0
        if qopt.peakrate:
            peak = PschedRatecfg(qopt.peakrate, qopt.overhead, qopt.mpu)
            if peak.rate_bytes_ps <= rate.rate_bytes_ps:
                raise RtnlError(errno.EINVAL)  # "sch_tbf: peakrate %llu is lower than or equals to rate"
            max_size = min(max_size, qopt.pburst)
            mtu = peak.l2t_ns(qopt.pburst)
        if not max_size:
            raise RtnlError(errno.EINVAL)
        if self.child is not None:
            if isinstance(self.child, Pfifo):
                self.child.change(qopt.limit)  # fifo_set_limit()
        elif qopt.limit > 0:
            self.child = fifo_create_dflt(Bfifo, self.dev, tc_h_maj(self.handle) | 1, qopt.limit)
        self.qopt = qopt
        self.limit, self.max_size, self.buffer, self.mtu = qopt.limit, max_size, buffer, mtu
        self.rate, self.peak = rate, peak
        self.tokens, self.ptokens = buffer, mtu

    # classes: the one class 1:1 whose leaf is the child ---------------------------------
    def children(self) -> list[Qdisc]:
        return [self.child] if self.child is not None else []

    def has_class(self, classid: int) -> bool:
        return True  # tbf_find(): any minor is the one class

    def class_leaf(self, classid: int) -> Qdisc | None:
        return self.child

    def graft(self, classid: int, new: Qdisc) -> Qdisc | None:
        old, self.child = self.child, new
        return old

    # the datapath ---------------------------------------------------------------------
    def enqueue(self, skb, count: int, now: float) -> int:
        """tbf_enqueue()"""
        if skb.len > self.max_size:
            return self.drop(skb, count)
        child = self.child
        if child is None:  # noop_qdisc: a tbf with limit 0 and no child drops everything
            return self.drop(skb, count)
        accepted = child.enqueue(skb, count, now)
        if accepted < count:
            self.drops += count - accepted
            self.drop_reason = child.drop_reason
        self.qlen += accepted
        self.backlog += skb.len * accepted
        return accepted

    def _sendable(self, skb, now: int) -> tuple[int, int, int]:
        """(how many packets like `skb` the buckets let go at `now`, toks, ptoks) with
        toks and ptoks the buckets before paying for them."""
        length = skb.len
        elapsed = min(now - self.t_c, self.buffer)
        toks = min(elapsed + self.tokens, self.buffer)
        cost = self.rate.l2t_ns(length)
        can = toks // cost if cost else 1 << 62
        ptoks = 0
        if self.peak is not None:
            ptoks = min(elapsed + self.ptokens, self.mtu)
            pcost = self.peak.l2t_ns(length)
            can = min(can, ptoks // pcost if pcost else 1 << 62)
        return can, toks, ptoks

    def peek(self, now: float):
        head = self.child.peek(now) if self.child is not None else None
        if head is None:
            return None
        skb, count = head
        can = self._sendable(skb, now_ns(now))[0]
        return (skb, min(count, can)) if can > 0 else None

    def dequeue(self, now: float, most: int = 1 << 62):
        """tbf_dequeue()"""
        head = self.child.peek(now) if self.child is not None else None
        if head is None:
            return None
        skb, count = head
        t = now_ns(now)
        can, toks, ptoks = self._sendable(skb, t)
        if can <= 0:
            self.overlimits += 1
            return None
        skb, count = self.child.dequeue(now, min(count, can, most))
        self.t_c = t
        self.tokens = toks - count * self.rate.l2t_ns(skb.len)
        if self.peak is not None:
            self.ptokens = ptoks - count * self.peak.l2t_ns(skb.len)
        self.qlen -= count
        self.backlog -= skb.len * count
        self.bstats_update(skb, count)
        return skb, count

    def next_event(self, now: float) -> float | None:
        """When the head packet's tokens suffice: the watchdog's expiry."""
        head = self.child.peek(now) if self.child is not None else None
        if head is None:
            return None
        skb = head[0]
        t = now_ns(now)
        can, toks, ptoks = self._sendable(skb, t)
        if can > 0:
            return now
        wait = self.rate.l2t_ns(skb.len) - toks
        if self.peak is not None:
            wait = max(wait, self.peak.l2t_ns(skb.len) - ptoks)
        return (t + wait) / NSEC_PER_SEC

    def reset(self) -> None:
        """tbf_reset(): the child emptied, the buckets full."""
        if self.child is not None:
            self.child.reset()
        super().reset()
        self.tokens, self.ptokens = self.buffer, self.mtu
        self.watchdog_expires = None
