"""Egress qdiscs: the Qdisc object, noqueue, and the run loop that feeds the driver
(net/sched/sch_generic.c, include/net/sch_generic.h, net/core/dev.c __dev_xmit_skb()).

A device's root qdisc is `dev.qdisc` (dev->qdisc; None is the noop qdisc of a device
never brought up). dev_activate() gives a device its default on the first NETDEV_UP:
noqueue for IFF_NO_QUEUE devices (veth, loopback, dummy: the mock's every kind), else
`net.core.default_qdisc`. __dev_queue_xmit() (core/dev.py) goes straight to the driver
when the qdisc has no enqueue (noqueue), else enqueues and runs the qdisc:
qdisc_run() dequeues until the qdisc gives nothing, each packet through
dev_hard_start_xmit(); a qdisc that holds packets back (tbf, htb, netem) tells when a
dequeue can succeed next and its watchdog (a clock timer) runs the qdisc then.

The contract with the line-rate engine: a qdisc queues TRAINS, a packet and a count of
identical copies. `enqueue(skb, count, now)` returns how many it accepted; the rest
were dropped and counted, a single packet's drop reported through the tracer
(kfree_skb), a train's reason left in `drop_reason`. `dequeue(now)` returns
(skb, count), as many identical packets as may leave at `now`, or None;
`next_event(now)` when a dequeue could succeed next (None: empty). Times are the
clock's seconds; token buckets count integer nanoseconds as the kernel does.
The skb of a train stands for each of its packets.
Left out: several TX queues (mq), bulk dequeue and BQL, requeues (veth never
refuses a packet), GSO segmentation, the TCQ_F_CAN_BYPASS shortcut (it sends the same
packets with the same counters).
"""
from __future__ import annotations

import errno
import itertools
from collections import deque

from harness.dropreason import DropReason
from harness.journey import Hop, Stage
from harness.mockkernel.core.dev import dev_hard_start_xmit
from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.core.rtnetlink import NETDEV_UP, register_netdevice_notifier
from harness.mockkernel.core.skbuff import kfree_skb
from harness.mockkernel.core.sysctl import CtlTable, ProcError

QDISC_STAGE = Stage.QDISC  # bound once: per packet
TC_H_ROOT = 0xFFFFFFFF
TC_H_UNSPEC = 0
NSEC_PER_SEC = 1_000_000_000
QDISC_DROP = DropReason.QDISC_DROP
_created = itertools.count(1)
DROP_LOCATION = "__dev_queue_xmit"  # __dev_xmit_skb() frees its to_free list there (inlined; lab)


def tc_h_maj(handle: int) -> int:
    return handle & 0xFFFF0000


def tc_h_min(handle: int) -> int:
    return handle & 0x0000FFFF


def now_ns(now: float) -> int:
    """ktime_get_ns() at the clock's `now` (seconds)."""
    return round(now * NSEC_PER_SEC)


def take_head(queue, most: int) -> tuple:
    """Up to `most` packets of the train at the head of `queue` (a deque of
    [skb, count]): the whole train leaves the queue, or `most` of it do."""
    head = queue[0]
    skb, count = head
    if count <= most:
        queue.popleft()
        return skb, count
    head[1] = count - most
    return skb, most


class Qdisc:
    """struct Qdisc with its Qdisc_ops: the statistics `tc -s` prints (gnet_stats_basic:
    bytes, packets; gnet_stats_queue: qlen, backlog, drops, requeues, overlimits) and
    the train-aware operations. Subclasses set `kind` (ops->id) and override
    enqueue/dequeue/peek/next_event; a classful one has `classful = True`."""

    kind = ""
    classful = False
    refcnt_root = 3  # tcm_info of a root qdisc on a one-queue device (lab)

    def __init__(self, dev, handle: int, parent: int) -> None:
        self.dev, self.handle, self.parent = dev, handle, parent
        self.bytes = self.packets = 0
        self.qlen = self.backlog = self.drops = self.requeues = self.overlimits = 0
        self.drop_reason: DropReason | None = None
        self.watchdog_expires: int | None = None  # ns of the pending watchdog timer
        self.invisible = False  # TCQ_F_INVISIBLE: a default child `tc qdisc show` leaves out
        self.hashed = True  # in dev->qdisc_hash, which dumps walk (htb_parent_to_leaf()'s pfifo is not)
        self.hash_seq = next(_created)  # when it joined dev->qdisc_hash: a dump lists a bucket newest first
        where = f"{dev.name} {self.kind} {handle >> 16:x}:"
        self.enqueue_hop, self.drop_hop = Hop(QDISC_STAGE, where, "ENQUEUE"), Hop(QDISC_STAGE, where, "DROP")

    # the operations every qdisc has ----------------------------------------------------
    def enqueue(self, skb, count: int, now: float) -> int:
        raise NotImplementedError

    def peek(self, now: float):
        """The train dequeue() would give at `now`, left in the queue."""
        raise NotImplementedError

    def dequeue(self, now: float, most: int = 1 << 62):
        """Up to `most` packets of the head train that may leave at `now`."""
        raise NotImplementedError

    def next_event(self, now: float) -> float | None:
        """Work-conserving: a queued packet may leave at once."""
        return now if self.qlen else None

    def reset(self) -> None:
        """qdisc_reset(): the queue is emptied, its packets freed."""
        self.qlen = self.backlog = 0

    def destroy(self) -> None:
        self.watchdog_expires = None

    def xmit(self, skb) -> None:
        """__dev_xmit_skb(): enqueue (a drop is freed with QDISC_DROP unless the qdisc
        names another reason), then run the qdisc."""
        net = skb.net
        journey = skb.journey
        if journey is not None:
            journey.hops.append(self.enqueue_hop)
        if not self.enqueue(skb, 1, net.clock.now) and journey is not None:
            journey.hops[-1] = self.drop_hop
        qdisc_run(self, net)

    # classes (Qdisc_class_ops) -----------------------------------------------------
    def children(self) -> list[Qdisc]:
        """The qdiscs attached to this one's classes."""
        return []

    def has_class(self, classid: int) -> bool:
        return False

    def qlen_notify(self, classid: int, child: Qdisc) -> None:
        """A child's packets were taken out (qlen_notify: a class may go idle)."""

    # the statistics helpers (include/net/sch_generic.h) -----------------------------
    def drop(self, skb, count: int, reason: DropReason = QDISC_DROP) -> int:
        """qdisc_drop(): `count` packets freed and counted; returns 0 accepted."""
        self.drops += count
        self.drop_reason = reason
        if count == 1:
            kfree_skb(skb, reason, QDISC_STAGE, DROP_LOCATION)
        return 0

    def bstats_update(self, skb, count: int) -> None:
        self.bytes += skb.len * count
        self.packets += count


class FifoQueue(Qdisc):
    """The sk_buff_head of the FIFOs: trains in arrival order."""

    def __init__(self, dev, handle: int, parent: int) -> None:
        super().__init__(dev, handle, parent)
        self.queue: deque[list] = deque()  # [skb, count]

    def enqueue_tail(self, skb, count: int) -> int:
        """qdisc_enqueue_tail()"""
        self.queue.append([skb, count])
        self.qlen += count
        self.backlog += skb.len * count
        return count

    def peek(self, now: float):
        return tuple(self.queue[0]) if self.queue else None

    def dequeue(self, now: float, most: int = 1 << 62):
        """qdisc_dequeue_head()"""
        if not self.queue:
            return None
        skb, count = take_head(self.queue, most)
        self.qlen -= count
        self.backlog -= skb.len * count
        self.bstats_update(skb, count)
        return skb, count

    def reset(self) -> None:
        self.queue.clear()
        super().reset()


class NoQueue(Qdisc):
    """noqueue_qdisc_ops: no enqueue at all (noqueue_init() clears it), so
    __dev_queue_xmit() hands the packet to the driver itself."""

    kind = "noqueue"
    enqueue = None
    refcnt_root = 2


class Noop(Qdisc):
    """noop_qdisc: drops everything (noop_enqueue(): tx_dropped, QDISC_DROP); a
    builtin that dumps leave out."""

    kind = "noop"
    refcnt_root = 2

    def __init__(self, dev, handle: int, parent: int) -> None:
        super().__init__(dev, handle, parent)
        self.hashed = False

    def enqueue(self, skb, count: int, now: float) -> int:
        self.dev.stats.tx_dropped += count
        return self.drop(skb, count)

    def dequeue(self, now: float, most: int = 1 << 62):
        return None


def qdisc_run(q: Qdisc, net) -> None:
    """__qdisc_run(): dequeue and transmit until the qdisc gives nothing; then, if it
    holds packets back, its watchdog (qdisc_watchdog_schedule_ns()) runs it again."""
    now = net.clock.now
    dev = q.dev
    while (got := q.dequeue(now)) is not None:
        skb, count = got
        for _ in range(count):
            dev_hard_start_xmit(skb, dev)
    wake = q.next_event(now)
    if wake is not None and wake > now:
        qdisc_watchdog_schedule(q, net, now_ns(wake))


def qdisc_watchdog_schedule(q: Qdisc, net, expires: int) -> None:
    """One timer per qdisc: a new expiry replaces the pending one (hrtimer_start)."""
    if q.watchdog_expires == expires:
        return
    q.watchdog_expires = expires

    def qdisc_watchdog() -> None:
        if q.watchdog_expires == expires and q.dev.qdisc is q:
            q.watchdog_expires = None
            qdisc_run(q, net)

    net.clock.add_timer(expires / NSEC_PER_SEC - net.clock.now, qdisc_watchdog)


# the qdisc kinds, by name (register_qdisc()) ---------------------------------------
qdisc_base: dict[str, type[Qdisc]] = {"noqueue": NoQueue}


def register_qdisc(cls: type[Qdisc]) -> type[Qdisc]:
    qdisc_base[cls.kind] = cls
    return cls


@register_qdisc
class PfifoFast(Qdisc):
    """pfifo_fast: three FIFOs, served band 0 first; skb->priority picks the band
    (prio2band[], so TOS low delay goes first, bulk last: ip_forward() sets the
    priority from the TOS), each band holds up to tx_queue_len packets."""

    kind = "pfifo_fast"
    PRIO2BAND = (1, 2, 2, 2, 1, 2, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)
    TC_PRIO_MAX = 15

    def __init__(self, dev, handle: int, parent: int, options=None) -> None:
        super().__init__(dev, handle, parent)
        self.bands: tuple[deque, ...] = (deque(), deque(), deque())
        self.band_qlen = [0, 0, 0]

    def enqueue(self, skb, count: int, now: float) -> int:
        """pfifo_fast_enqueue(): into the band's ring while it has room."""
        band = self.PRIO2BAND[skb.priority & self.TC_PRIO_MAX]
        accepted = min(count, max(self.dev.tx_queue_len - self.band_qlen[band], 0))
        if accepted:
            self.bands[band].append([skb, accepted])
            self.band_qlen[band] += accepted
            self.qlen += accepted
            self.backlog += skb.len * accepted
        if accepted < count:
            self.drop(skb, count - accepted)
        return accepted

    def peek(self, now: float):
        return next((tuple(band[0]) for band in self.bands if band), None)

    def dequeue(self, now: float, most: int = 1 << 62):
        """pfifo_fast_dequeue(): the first train of the best band with packets."""
        for i, band in enumerate(self.bands):
            if band:
                head = band[0]
                skb, count = head
                if count <= most:
                    band.popleft()
                else:
                    head[1] = count - most
                    count = most
                self.band_qlen[i] -= count
                self.qlen -= count
                self.backlog -= skb.len * count
                self.bstats_update(skb, count)
                return skb, count
        return None

    def reset(self) -> None:
        for band in self.bands:
            band.clear()
        self.band_qlen = [0, 0, 0]
        super().reset()


# IFF_NO_QUEUE: the device kinds that transmit without a queue of their own
NO_QUEUE_KINDS = frozenset({"veth", "loopback", "dummy", "bridge", "vlan", "macvlan"})


def attach_default_qdisc(net, dev) -> None:
    """attach_one_default_qdisc(): noqueue for IFF_NO_QUEUE devices (all the mock's
    ports: veth, and loopback), else the kind net.core.default_qdisc names."""
    if dev.kind in NO_QUEUE_KINDS:
        dev.qdisc = NoQueue(dev, TC_H_UNSPEC, TC_H_ROOT)
        return
    try:
        dev.qdisc = qdisc_base[net.sysctl.values["net.core.default_qdisc"]](dev, TC_H_UNSPEC, TC_H_ROOT, None)
    except RtnlError:  # a kind that needs options (tbf): "activation failed", the noop qdisc stays
        dev.qdisc = Noop(dev, TC_H_UNSPEC, TC_H_ROOT)


def proc_do_default_qdisc(sysctls, table, key: str, text: str) -> str:
    """qdisc_set_default(): any registered kind, else ENOENT."""
    name = text.strip()
    if name not in qdisc_base:
        raise ProcError(errno.ENOENT)
    return name


def _dev_activate(net, event: int, dev) -> None:
    """dev_activate() on the device's first up: a device without a qdisc gets its default."""
    if event == NETDEV_UP and dev.qdisc is None:
        attach_default_qdisc(net, dev)


def qdisc_init_net(net) -> None:
    """Attach default qdiscs as devices come up (dev_open() -> dev_activate()); the
    default's sysctl (net/core/sysctl_net_core.c, an init namespace's entry)."""
    net.sysctl.register({"net.core.default_qdisc": CtlTable("pfifo_fast", proc_do_default_qdisc)})
    register_netdevice_notifier(net, _dev_activate)


class PschedRatecfg:
    """struct psched_ratecfg: a rate in bytes/s and the multiply-shift that turns a
    length into nanoseconds (psched_ratecfg_precompute(), psched_l2t_ns())."""

    __slots__ = ("rate_bytes_ps", "mult", "shift", "overhead", "mpu")

    def __init__(self, rate_bytes_ps: int, overhead: int = 0, mpu: int = 0) -> None:
        self.rate_bytes_ps, self.overhead, self.mpu = rate_bytes_ps, overhead, mpu
        self.mult, self.shift = 1, 0
        if rate_bytes_ps > 0:
            factor = NSEC_PER_SEC
            while True:
                self.mult = (factor // rate_bytes_ps) & 0xFFFFFFFF
                if self.mult & (1 << 31) or factor & (1 << 63):
                    break
                factor <<= 1
                self.shift += 1

    def l2t_ns(self, length: int) -> int:
        """psched_l2t_ns(): the time `length` bytes take at this rate."""
        length += self.overhead
        if length < self.mpu:
            length = self.mpu
        return (length * self.mult) >> self.shift

    def t2l(self, ns: int) -> int:
        """psched_ns_t2l() (sch_tbf.c): the bytes `ns` nanoseconds carry."""
        length = ns * self.rate_bytes_ps // NSEC_PER_SEC
        return length - self.overhead if length > self.overhead else 0
