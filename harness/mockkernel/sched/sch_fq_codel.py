"""Fair queuing with CoDel (net/sched/sch_fq_codel.c, include/net/codel_impl.h).

Packets hash to one of `flows` queues (skb->hash, else a hash of the IPv4
addresses, protocol and ports; reciprocal_scale()). A queue that becomes active
joins new_flows with a deficit of `quantum`; fq_codel_dequeue() serves new_flows
before old_flows, moving a flow whose deficit ran out to the tail of old_flows with
a fresh quantum. Each flow runs CoDel on dequeue: a packet whose sojourn time stayed
above `target` for an `interval` (and the backlog above one MTU) is dropped, then
drops follow at interval / sqrt(count) (codel_control_law(), Newton's step for
1/sqrt) until the sojourn time falls below target: those are QDISC_CONGESTED. Past
`limit` packets (or `memory_limit` bytes of truesize) fq_codel_drop() drops from the
head of the fattest flow, up to half its backlog and at most drop_batch packets:
QDISC_OVERLIMIT. CoDel keeps time in 1024 ns units, as the kernel does.
Not built into the lab's kernel: mock-only. Dequeue gives one packet at a time (CoDel
decides per packet). Left out: ECN marking (ECT packets are dropped like others),
ce_threshold, classes.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.core.skbuff import kfree_skb, skb_clone
from harness.mockkernel.sched.sch_fifo import psched_mtu
from harness.mockkernel.sched.sch_generic import Qdisc, now_ns, register_qdisc
from harness.mockkernel.wire.ipv4 import Ipv4Packet
from harness.mockkernel.wire.udp import PORTS

CODEL_SHIFT = 10  # codel_time_t: ns >> 10
REC_INV_SQRT_SHIFT = 16
ETH_P_IP = 0x0800
U32 = 0xFFFFFFFF


@dataclass
class FqCodelOpt:
    """The TCA_FQ_CODEL_* attributes tc sends (None: not given, the kernel's default)."""

    limit: int | None = None
    flows: int | None = None
    quantum: int | None = None
    target_us: int | None = None
    interval_us: int | None = None
    memory_limit: int | None = None
    ecn: bool | None = None
    drop_batch: int | None = None


class Flow:
    """struct fq_codel_flow with its codel_vars."""

    __slots__ = ("queue", "backlog", "deficit", "active", "count", "lastcount", "dropping", "rec_inv_sqrt",
                 "first_above_time", "drop_next", "ldelay")

    def __init__(self) -> None:
        self.queue: deque[list] = deque()  # [skb, count, enqueue time (codel units)]
        self.backlog = self.deficit = 0
        self.active = False
        self.count = self.lastcount = self.rec_inv_sqrt = self.first_above_time = self.drop_next = 0
        self.ldelay = 0
        self.dropping = False


def codel_time(now: float) -> int:
    return (now_ns(now) >> CODEL_SHIFT) & U32


def _after(a: int, b: int) -> bool:
    """codel_time_after(): (s32)(a - b) > 0"""
    return 0 < ((a - b) & U32) < 0x80000000


def newton_step(flow: Flow) -> None:
    """codel_Newton_step(): one step towards 1/sqrt(count)."""
    invsqrt = flow.rec_inv_sqrt << REC_INV_SQRT_SHIFT
    invsqrt2 = (invsqrt * invsqrt) >> 32
    val = ((3 << 32) - flow.count * invsqrt2) & 0xFFFFFFFFFFFFFFFF
    val >>= 2
    val = (val * invsqrt) >> (32 - 2 + 1)
    flow.rec_inv_sqrt = (val >> REC_INV_SQRT_SHIFT) & 0xFFFF


def control_law(t: int, interval: int, rec_inv_sqrt: int) -> int:
    """codel_control_law(): t + interval / sqrt(count)."""
    return (t + ((interval * (rec_inv_sqrt << REC_INV_SQRT_SHIFT)) >> 32)) & U32


@register_qdisc
class FqCodel(Qdisc):
    kind = "fq_codel"

    def __init__(self, dev, handle: int, parent: int, opt: FqCodelOpt | None) -> None:
        super().__init__(dev, handle, parent)
        self.limit, self.flows_cnt, self.quantum = 10 * 1024, 1024, psched_mtu(dev)
        self.target, self.interval = 5000, 100_000  # microseconds, as dumped
        self.memory_limit, self.ecn, self.drop_batch_size = 32 << 20, True, 64
        self.mtu = psched_mtu(dev)
        self.maxpacket = self.drop_overlimit = self.drop_overmemory = self.new_flow_count = 0
        self.memory_usage = 0
        self.change(opt or FqCodelOpt())
        self.flows = [Flow() for _ in range(self.flows_cnt)]
        self.new_flows: deque[Flow] = deque()
        self.old_flows: deque[Flow] = deque()

    def change(self, opt: FqCodelOpt) -> None:
        """fq_codel_change(): the attributes given replace the current ones (flows only at init)."""
        for name in ("limit", "quantum", "memory_limit", "ecn"):
            if getattr(opt, name) is not None:
                setattr(self, name, getattr(opt, name))
        self.quantum = max(self.quantum, 256)
        if opt.flows is not None and not hasattr(self, "flows"):
            self.flows_cnt = opt.flows
        if opt.target_us is not None:
            self.target = opt.target_us
        if opt.interval_us is not None:
            self.interval = opt.interval_us
        if opt.drop_batch is not None:
            self.drop_batch_size = max(1, opt.drop_batch)

    # codel parameters in codel time units
    @property
    def codel_target(self) -> int:
        return (self.target * 1000) >> CODEL_SHIFT

    @property
    def codel_interval(self) -> int:
        return (self.interval * 1000) >> CODEL_SHIFT

    def classify(self, skb) -> Flow:
        """fq_codel_classify() -> fq_codel_hash(): reciprocal_scale(skb_get_hash())."""
        flow_hash = skb.hash or self.flow_hash(skb)
        return self.flows[((flow_hash & U32) * self.flows_cnt) >> 32]

    @staticmethod
    def flow_hash(skb) -> int:
        """A stand-in for the flow dissector's jhash: the IPv4 5-tuple, hashed."""
        if skb.protocol != ETH_P_IP:
            return hash(skb.protocol) & U32
        ip = Ipv4Packet(skb.buf, skb.network_header)
        ports = PORTS.unpack_from(skb.buf, ip.payload_offset) if ip.protocol in (6, 17) else (0, 0)
        return hash((ip.saddr, ip.daddr, ip.protocol, *ports)) & U32

    def enqueue(self, skb, count: int, now: float) -> int:
        """fq_codel_enqueue()"""
        flow = self.classify(skb)
        flow.queue.append([skb, count, codel_time(now)])
        flow.backlog += skb.len * count
        self.backlog += skb.len * count
        if not flow.active:
            flow.active = True
            self.new_flows.append(flow)
            self.new_flow_count += 1
            flow.deficit = self.quantum
        self.memory_usage += skb.truesize * count
        self.qlen += count
        memory_limited = self.memory_usage > self.memory_limit
        if self.qlen <= self.limit and not memory_limited:
            return count
        before = self.qlen
        dropped_here = 0
        while self.qlen > self.limit or self.memory_usage > self.memory_limit:
            fat, dropped = self.fq_codel_drop()
            if not dropped:
                break
            if fat is flow:
                dropped_here += dropped
        dropped = before - self.qlen
        self.drop_overlimit += dropped
        if memory_limited:
            self.drop_overmemory += dropped
        self.drop_reason = DropReason.QDISC_OVERLIMIT
        return max(count - dropped_here, 0)

    def fq_codel_drop(self) -> tuple[Flow, int]:
        """Drop from the head of the fattest flow: half its backlog, at most drop_batch."""
        fat = max(self.flows, key=lambda f: f.backlog)
        threshold = fat.backlog >> 1
        length = dropped = 0
        while fat.queue and dropped < self.drop_batch_size and length < threshold:
            single = fat.queue[0][1] == 1  # a train's packets are counted, not traced one by one
            skb = self._dequeue_head(fat)
            length += skb.len
            dropped += 1
            self.drops += 1
            if single:
                kfree_skb(skb, DropReason.QDISC_OVERLIMIT, Stage.QDISC, "__dev_queue_xmit")
        return fat, dropped

    def _dequeue_head(self, flow: Flow):
        """dequeue_func(): one packet off the flow's head."""
        head = flow.queue[0]
        skb, count, _ = head
        if count == 1:
            flow.queue.popleft()
        else:
            head[1] = count - 1
            skb = skb_clone(skb)  # one packet of the train goes
        flow.backlog -= skb.len
        self.backlog -= skb.len
        self.memory_usage -= skb.truesize
        self.qlen -= 1
        return skb

    def _should_drop(self, flow: Flow, enqueued: int | None, length: int, now: int) -> bool:
        """codel_should_drop()"""
        if enqueued is None:
            flow.first_above_time = 0
            return False
        flow.ldelay = (now - enqueued) & U32
        self.maxpacket = max(self.maxpacket, length)
        if not _after(flow.ldelay, self.codel_target - 1) or self.backlog <= self.mtu:
            flow.first_above_time = 0
            return False
        if flow.first_above_time == 0:
            flow.first_above_time = (now + self.codel_interval) & U32 or 1
            return False
        return _after(now, flow.first_above_time)

    def _codel_pop(self, flow: Flow):
        """dequeue_func() with the sojourn time of what it took."""
        if not flow.queue:
            return None, None
        enqueued = flow.queue[0][2]
        return self._dequeue_head(flow), enqueued

    def _drop_congested(self, skb) -> None:
        """drop_func(): QDISC_CONGESTED."""
        self.drops += 1
        kfree_skb(skb, DropReason.QDISC_CONGESTED, Stage.QDISC, "fq_codel_dequeue")

    def codel_dequeue(self, flow: Flow, now: int):
        """codel_dequeue() (ECN marking left out)."""
        skb, enqueued = self._codel_pop(flow)
        if skb is None:
            flow.dropping = False
            return None
        drop = self._should_drop(flow, enqueued, skb.len, now)
        if flow.dropping:
            if not drop:
                flow.dropping = False
            elif not _after(flow.drop_next, now):
                while flow.dropping and not _after(flow.drop_next, now):
                    flow.count = (flow.count + 1) & U32
                    newton_step(flow)
                    self._drop_congested(skb)
                    skb, enqueued = self._codel_pop(flow)
                    if not self._should_drop(flow, enqueued, skb.len if skb else 0, now):
                        flow.dropping = False
                    else:
                        flow.drop_next = control_law(flow.drop_next, self.codel_interval, flow.rec_inv_sqrt)
        elif drop:
            self._drop_congested(skb)
            skb, enqueued = self._codel_pop(flow)
            self._should_drop(flow, enqueued, skb.len if skb else 0, now)
            flow.dropping = True
            delta = (flow.count - flow.lastcount) & U32
            if delta > 1 and ((now - flow.drop_next) & U32) < 16 * self.codel_interval:
                flow.count = delta
                newton_step(flow)
            else:
                flow.count = 1
                flow.rec_inv_sqrt = U32 >> REC_INV_SQRT_SHIFT
            flow.lastcount = flow.count
            flow.drop_next = control_law(now, self.codel_interval, flow.rec_inv_sqrt)
        return skb

    def peek(self, now: float):
        flow = next((f for f in (*self.new_flows, *self.old_flows) if f.queue), None)
        return (flow.queue[0][0], 1) if flow is not None else None

    def dequeue(self, now: float, most: int = 1 << 62):
        """fq_codel_dequeue(): DRR over new then old flows, CoDel within each."""
        t = codel_time(now)
        while True:
            head = self.new_flows if self.new_flows else self.old_flows
            if not head:
                return None
            flow = head[0]
            if flow.deficit <= 0:
                flow.deficit += self.quantum
                head.popleft()
                self.old_flows.append(flow)
                continue
            skb = self.codel_dequeue(flow, t)
            if skb is None:
                head.popleft()
                if head is self.new_flows and self.old_flows:
                    self.old_flows.append(flow)
                else:
                    flow.active = False
                continue
            self.bstats_update(skb, 1)
            flow.deficit -= skb.len
            return skb, 1

    def reset(self) -> None:
        for flow in self.flows:
            flow.queue.clear()
            flow.backlog = 0
            flow.active = False
        self.new_flows.clear()
        self.old_flows.clear()
        self.memory_usage = 0
        super().reset()

