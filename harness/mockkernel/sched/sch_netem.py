"""The network emulator (net/sched/sch_netem.c): delay, jitter, loss, duplication,
reordering and a rate, with the kernel's random draws from the kernel's seeded
generator (`kernel.random`).

netem_enqueue(): a duplicate (probability `duplicate`) is a clone enqueued at the
root qdisc with duplication off; a loss (`loss`) drops the packet (QDISC_DROP);
a full queue (`limit` packets) drops it; otherwise it gets time_to_send = now +
tabledist(latency, jitter) (uniform in [latency - jitter, latency + jitter):
no distribution table), with `rate` counting from the last queued packet's
departure plus its own transmission time, and joins the time-ordered tfifo.
Reordering: with `gap` N, every packet after N - 1 delayed ones goes to the head
of the queue at once, sent before the delayed ones, with probability `reorder`
(and counts a requeue). get_crandom() correlates successive draws by rho.
netem_dequeue() gives the head-inserted packets first, then the tfifo's head
once its time has come; the watchdog waits for it.
Not built into the lab's kernel: mock-only. Left out: distribution tables,
corruption, ECN marking, the Gilbert-Elliott and 4-state loss models, slots, a
child qdisc.
"""
from __future__ import annotations

import bisect
import itertools
from collections import deque
from dataclasses import dataclass

from harness.mockkernel.core.skbuff import skb_clone
from harness.mockkernel.sched.sch_generic import NSEC_PER_SEC, Qdisc, now_ns, register_qdisc

PSCHED_SHIFT = 6
U32 = 0xFFFFFFFF


@dataclass
class NetemQopt:
    """struct tc_netem_qopt with TCA_NETEM_CORR, _REORDER and _RATE, as tc sends them:
    times in ticks, probabilities scaled to 2^32 - 1."""

    limit: int = 1000
    latency: int = 0
    jitter: int = 0
    loss: int = 0
    gap: int = 0
    duplicate: int = 0
    delay_corr: int = 0
    loss_corr: int = 0
    dup_corr: int = 0
    reorder: int = 0
    reorder_corr: int = 0
    rate: int = 0  # bytes/s
    packet_overhead: int = 0


class Crndstate:
    """struct crndstate: a correlated random source (get_crandom())."""

    __slots__ = ("rho", "last")

    def __init__(self, rho: int) -> None:
        self.rho, self.last = rho, 0

    def draw(self, rng) -> int:
        value = rng.getrandbits(32)
        if self.rho == 0:
            return value
        rho = self.rho + 1
        self.last = (value * ((1 << 32) - rho) + self.last * rho) >> 32
        return self.last


@register_qdisc
class Netem(Qdisc):
    kind = "netem"

    def __init__(self, dev, handle: int, parent: int, qopt: NetemQopt | None) -> None:
        super().__init__(dev, handle, parent)
        self.tfifo: list[tuple[int, int, object, int]] = []  # (time_to_send, seq, skb, count)
        self.head: deque[list] = deque()  # reordered packets: sch->q, sent first
        self.seq = itertools.count()
        self.change(qopt or NetemQopt())

    def change(self, qopt: NetemQopt) -> None:
        """netem_change()"""
        self.qopt = qopt
        self.limit, self.gap, self.counter = qopt.limit, qopt.gap, 0
        self.latency, self.jitter = qopt.latency << PSCHED_SHIFT, qopt.jitter << PSCHED_SHIFT
        self.loss, self.duplicate = qopt.loss, qopt.duplicate
        self.reorder = qopt.reorder if qopt.reorder or not qopt.gap else U32  # a gap alone: always
        self.delay_cor, self.loss_cor = Crndstate(qopt.delay_corr), Crndstate(qopt.loss_corr)
        self.dup_cor, self.reorder_cor = Crndstate(qopt.dup_corr), Crndstate(qopt.reorder_corr)

    def enqueue(self, skb, count: int, now: float) -> int:
        accepted = 0
        for _ in range(count):
            accepted += self._enqueue_one(skb if count == 1 else skb_clone(skb), now)
        return accepted

    def _enqueue_one(self, skb, now: float) -> int:
        """netem_enqueue() of one packet: 1 if it was queued."""
        rng = skb.net.random
        copies = 1
        if self.duplicate and self.duplicate >= self.dup_cor.draw(rng):
            copies += 1
        if self.loss and self.loss >= self.loss_cor.draw(rng):
            copies -= 1
        if copies == 0:
            self.drop(skb, 1)
            return 0
        if copies > 1:  # the clone goes through the root qdisc, not duplicated again
            clone = skb_clone(skb)
            skb.net.tracer.start(clone, skb.journey.packet if skb.journey else "", parent=skb, hops=[])
            root = self.dev.qdisc
            saved, self.duplicate = self.duplicate, 0
            root.enqueue(clone, 1, now)
            self.duplicate = saved
        if self.qlen >= self.limit:
            return self.drop(skb, 1)
        self.qlen += 1
        self.backlog += skb.len
        t = now_ns(now)
        if self.gap == 0 or self.counter < self.gap - 1 or self.reorder < self.reorder_cor.draw(rng):
            delay = self.tabledist(rng)
            if self.qopt.rate:
                last = self.last_time_to_send()
                if last is not None:
                    delay = max(delay - (last - t), 0)
                    t = last
                delay += (skb.len + self.qopt.packet_overhead) * NSEC_PER_SEC // self.qopt.rate
            self.counter += 1
            bisect.insort(self.tfifo, (t + delay, next(self.seq), skb, 1))
        else:
            self.counter = 0
            self.head.appendleft([skb, 1])
            self.requeues += 1
        return 1

    def tabledist(self, rng) -> int:
        """tabledist() without a table: uniform around the latency."""
        if self.jitter == 0:
            return self.latency
        rnd = self.delay_cor.draw(rng)
        return (rnd % (2 * self.jitter)) + self.latency - self.jitter

    def last_time_to_send(self) -> int | None:
        return self.tfifo[-1][0] if self.tfifo else None

    def peek(self, now: float):
        if self.head:
            return tuple(self.head[0])
        if self.tfifo and self.tfifo[0][0] <= now_ns(now):
            return self.tfifo[0][2], self.tfifo[0][3]
        return None

    def dequeue(self, now: float, most: int = 1 << 62):
        """netem_dequeue()"""
        if self.head:
            skb, count = self.head.popleft()
        elif self.tfifo and self.tfifo[0][0] <= now_ns(now):
            _, _, skb, count = self.tfifo.pop(0)
        else:
            return None
        self.qlen -= count
        self.backlog -= skb.len * count
        self.bstats_update(skb, count)
        return skb, count

    def next_event(self, now: float) -> float | None:
        if self.head:
            return now
        if self.tfifo:
            return max(self.tfifo[0][0] / NSEC_PER_SEC, now)
        return None

    def reset(self) -> None:
        self.tfifo.clear()
        self.head.clear()
        super().reset()
