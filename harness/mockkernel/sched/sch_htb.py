"""Hierarchical token bucket (net/sched/sch_htb.c).

Classes form a tree under the qdisc; leaves hold a qdisc (a pfifo of tx_queue_len
packets by default, invisible to `tc qdisc show`). Each class has two buckets of
nanoseconds: `tokens` at `rate` up to `buffer`, `ctokens` at `ceil` up to `cbuffer`.
Its mode at time t (htb_class_mode(), hysteresis off): CANT_SEND while
ctokens < 0, CAN_SEND while tokens >= 0, else MAY_BORROW. A leaf with packets sends
at the level of its first ancestor-or-self in CAN_SEND reached through classes in
MAY_BORROW (none through a CANT_SEND one): level 0 is sending within its own rate,
higher levels are borrowing from that ancestor. htb_dequeue() serves level 0 first,
then 1, ..., and within a level priority 0 first, round-robin among equals with a
deficit of `quantum` bytes (rate / r2q, 1000..200000 unless given) per turn.
htb_charge_class() then charges the path: the lender and above pay rate tokens
(the lender counts a lend), the classes below it count a borrow; every class pays
ceil tokens; a class entering CANT_SEND counts an overlimit (on it and the qdisc).
When nothing may send, the watchdog wakes at the earliest mode change of a class on
an active leaf's path (the wait queue's events).

htb_classify(): skb->priority naming the qdisc (X:0) goes to the direct queue,
naming a leaf class to that class; otherwise the filters attached to the qdisc
(`tc filter add dev X parent 1: ... flowid 1:10`), then the default class
(`default N`: X:N), and with no such leaf the direct queue (direct_qlen packets,
sent first, unshaped; direct_packets_stat counts them). Classes are listed in the
order of the class hash (qdisc_class_hash: 4 buckets, doubled past 3/4 full).
Trains: a leaf's head train leaves as far as its tokens, its ceil and its DRR turn
allow at one instant, which is what as many single dequeues would send.
Left out: offload, hysteresis (off by default), the 5 s watchdog cap (no visible
effect), inner-class filters.
"""
from __future__ import annotations

import errno
from collections import deque
from dataclasses import dataclass

from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.sched.sch_fifo import Pfifo, fifo_create_dflt
from harness.mockkernel.sched.sch_generic import (NSEC_PER_SEC, PschedRatecfg, Qdisc, now_ns, register_qdisc, take_head,
                                                   tc_h_maj)

HTB_CANT_SEND, HTB_MAY_BORROW, HTB_CAN_SEND = 0, 1, 2
TC_HTB_MAXDEPTH = 8
TC_HTB_NUMPRIO = 8
PSCHED_SHIFT = 6
MBUFFER = 60 * NSEC_PER_SEC
HTB_DIRECT = object()  # htb_classify()'s "direct queue"
MANY = 1 << 62


@dataclass
class HtbGlob:
    """struct tc_htb_glob and TCA_HTB_DIRECT_QLEN, as tc sends them."""

    rate2quantum: int = 10
    defcls: int = 0
    direct_qlen: int | None = None


@dataclass
class HtbOpt:
    """struct tc_htb_opt (+ the 64-bit rates): a class's parameters as tc sends them."""

    rate: int  # bytes/s
    ceil: int
    buffer: int  # ticks
    cbuffer: int
    quantum: int = 0
    prio: int = 0
    overhead: int = 0
    mpu: int = 0
    cell_log: int = 3
    ccell_log: int = 3


class HtbClass:
    """struct htb_class"""

    def __init__(self, sch: Htb, classid: int, parent: HtbClass | None, opt: HtbOpt, now: int) -> None:
        self.sch, self.classid, self.parent = sch, classid, parent
        self.level = 0
        self.children: list[HtbClass] = []
        self.leaf: Qdisc | None = fifo_create_dflt(Pfifo, sch.dev, classid, None)
        self.bytes = self.packets = self.drops = self.overlimits = 0
        self.lends = self.borrows = self.giants = 0
        self.deficit = [0] * TC_HTB_MAXDEPTH
        self.t_c = now
        self.cmode = HTB_CAN_SEND
        self.set_params(opt)
        self.tokens, self.ctokens = self.buffer, self.cbuffer

    def set_params(self, opt: HtbOpt) -> None:
        self.opt = opt
        self.rate = PschedRatecfg(opt.rate, opt.overhead, opt.mpu)
        self.ceil = PschedRatecfg(opt.ceil, opt.overhead, opt.mpu)
        self.buffer = opt.buffer << PSCHED_SHIFT
        self.cbuffer = opt.cbuffer << PSCHED_SHIFT
        if self.level == 0:
            quantum = min(self.rate.rate_bytes_ps // self.sch.rate2quantum, 0x7FFFFFFF)
            if not opt.quantum:
                quantum = min(max(quantum, 1000), 200000)  # "HTB: quantum of class is small/big"
            self.quantum = opt.quantum or quantum
            self.prio = min(opt.prio, TC_HTB_NUMPRIO - 1)

    def mode(self, now: int) -> int:
        """htb_class_mode() at `now`, from the buckets as last charged."""
        diff = min(now - self.t_c, MBUFFER)
        if self.ctokens + diff < 0:
            return HTB_CANT_SEND
        if self.tokens + diff >= 0:
            return HTB_CAN_SEND
        return HTB_MAY_BORROW

    def wake_time(self, now: int) -> int | None:
        """When this class's mode changes next (its wait-queue event), if it waits."""
        diff = min(now - self.t_c, MBUFFER)
        if self.ctokens + diff < 0:
            return self.t_c - self.ctokens
        if self.tokens + diff < 0:
            return self.t_c - self.tokens
        return None

    def path(self) -> list[HtbClass]:
        out, cl = [], self
        while cl is not None:
            out.append(cl)
            cl = cl.parent
        return out


@register_qdisc
class Htb(Qdisc):
    kind = "htb"
    classful = True

    def __init__(self, dev, handle: int, parent: int, glob: HtbGlob | None) -> None:
        super().__init__(dev, handle, parent)
        glob = glob or HtbGlob()
        self.rate2quantum = max(glob.rate2quantum, 1)
        self.defcls = glob.defcls
        self.direct_qlen = dev.tx_queue_len if glob.direct_qlen is None else glob.direct_qlen
        self.direct_queue: deque[list] = deque()
        self.direct_pkts = 0
        self.clhash: list[list[HtbClass]] = [[] for _ in range(4)]  # qdisc_class_hash_init(): 4 buckets
        self.rr: dict[tuple[int, int], int] = {}  # (level, prio): the classid whose turn it is
        self.filters: list = []  # tcf_proto chain of the qdisc (cls_api.py)

    def change(self, glob: HtbGlob | None) -> None:
        """htb_change_qdisc()"""
        glob = glob or HtbGlob()
        self.rate2quantum = max(glob.rate2quantum, 1)
        self.defcls = glob.defcls
        if glob.direct_qlen is not None:
            self.direct_qlen = glob.direct_qlen

    # classes ---------------------------------------------------------------------
    def classes(self) -> list[HtbClass]:
        """In the class hash's order, as htb_walk() gives them."""
        return [cl for bucket in self.clhash for cl in bucket]

    def find(self, classid: int) -> HtbClass | None:
        mask = len(self.clhash) - 1
        return next((cl for cl in self.clhash[class_hash(classid, mask)] if cl.classid == classid), None)

    def has_class(self, classid: int) -> bool:
        return self.find(classid) is not None

    def class_leaf(self, classid: int) -> Qdisc | None:
        cl = self.find(classid)
        return cl.leaf if cl is not None else None

    def children(self) -> list[Qdisc]:
        return [cl.leaf for cl in self.classes() if cl.level == 0 and cl.leaf is not None]

    def graft(self, classid: int, new: Qdisc | None) -> Qdisc | None:
        """htb_graft(): a removed leaf qdisc is replaced by a default pfifo."""
        cl = self.find(classid)
        if cl.level:
            raise RtnlError(errno.EINVAL)
        old = cl.leaf
        cl.leaf = new if new is not None else fifo_create_dflt(Pfifo, self.dev, classid, None)
        return old

    def change_class(self, classid: int, parentid: int, opt: HtbOpt | None, now: float) -> None:
        """htb_change_class(): a new class, or new parameters for an existing one."""
        if opt is None or not opt.rate or not opt.ceil:
            raise RtnlError(errno.EINVAL)
        cl = self.find(classid)
        if cl is not None:
            cl.set_params(opt)
            return
        parent = self.find(parentid) if parentid != 0xFFFFFFFF else None
        if not classid or tc_h_maj(classid ^ self.handle):
            raise RtnlError(errno.EINVAL)
        if parent is not None and parent.parent is not None and parent.parent.level < 2:
            raise RtnlError(errno.EINVAL, "sch_htb: tree is too deep")
        if parent is not None and parent.level == 0:  # the leaf becomes an inner class; its queue goes
            held = parent.leaf.qlen
            self.qlen -= held
            self.backlog -= parent.leaf.backlog
            self.drops += held
            parent.leaf.reset()
            parent.leaf = None
            parent.level = (parent.parent.level if parent.parent is not None else TC_HTB_MAXDEPTH) - 1
        cl = HtbClass(self, classid, parent, opt, now_ns(now))
        if parent is not None:
            parent.children.append(cl)
        self._hash_insert(cl)

    def delete_class(self, classid: int) -> None:
        """htb_delete(): only a class without children and filters pointing at it."""
        cl = self.find(classid)
        if cl.children:
            raise RtnlError(errno.EBUSY, "HTB class in use")
        if cl.leaf is not None:
            self.qlen -= cl.leaf.qlen
            self.backlog -= cl.leaf.backlog
            cl.leaf.reset()
        for bucket in self.clhash:
            if cl in bucket:
                bucket.remove(cl)
        if cl.parent is not None:
            cl.parent.children.remove(cl)
            if not cl.parent.children:  # htb_parent_to_leaf(): a fresh pfifo, full buckets
                parent = cl.parent
                parent.level = 0
                parent.leaf = fifo_create_dflt(Pfifo, self.dev, parent.classid, None)
                parent.leaf.hashed = False
                parent.tokens, parent.ctokens = parent.buffer, parent.cbuffer
                parent.set_params(parent.opt)

    def _hash_insert(self, cl: HtbClass) -> None:
        """qdisc_class_hash_insert() (newest first in a bucket), then _grow()."""
        mask = len(self.clhash) - 1
        self.clhash[class_hash(cl.classid, mask)].insert(0, cl)
        count = sum(map(len, self.clhash))
        if count * 4 > len(self.clhash) * 3:
            size = len(self.clhash) * 2
            grown: list[list[HtbClass]] = [[] for _ in range(size)]
            for bucket in self.clhash:
                for each in bucket:
                    grown[class_hash(each.classid, size - 1)].insert(0, each)
            self.clhash = grown

    # classification and the datapath -------------------------------------------------
    def classify(self, skb):
        """htb_classify()"""
        if skb.priority == self.handle:
            return HTB_DIRECT
        cl = self.find(skb.priority)
        if cl is not None and cl.level == 0:
            return cl
        if cl is None and self.filters:
            classid = self.run_filters(skb)
            if classid is not None:
                if classid == self.handle:
                    return HTB_DIRECT
                found = self.find(classid)
                if found is not None and found.level == 0:
                    return found
        default = self.find(tc_h_maj(self.handle) | self.defcls)
        if default is None or default.level:
            return HTB_DIRECT
        return default

    def run_filters(self, skb) -> int | None:
        """The class id the qdisc's filters pick (tcf_classify() with res.classid), or None."""
        for tp in self.filters:
            classid = tp.classify_classid(skb)
            if classid is not None:
                return classid
        return None

    def enqueue(self, skb, count: int, now: float) -> int:
        """htb_enqueue()"""
        cl = self.classify(skb)
        length = skb.len
        if cl is HTB_DIRECT:
            room = self.direct_qlen - sum(c for _, c in self.direct_queue)
            accepted = min(count, max(room, 0))
            if accepted:
                self.direct_queue.append([skb, accepted])
                self.direct_pkts += accepted
            if accepted < count:
                self.drop(skb, count - accepted)
        else:
            accepted = cl.leaf.enqueue(skb, count, now)
            if accepted < count:
                self.drops += count - accepted
                cl.drops += count - accepted
                self.drop_reason = cl.leaf.drop_reason
        self.qlen += accepted
        self.backlog += length * accepted
        return accepted

    def _lender(self, leaf: HtbClass, now: int) -> HtbClass | None:
        """The class a leaf would send through at `now`: itself or the first ancestor in
        CAN_SEND above a chain of MAY_BORROW (htb_activate_prios()' feeds)."""
        cl = leaf
        while cl is not None:
            mode = cl.mode(now)
            if mode == HTB_CAN_SEND:
                return cl
            if mode == HTB_CANT_SEND:
                return None
            cl = cl.parent
        return None

    def _candidates(self, now: float, t: int) -> list[tuple[int, int, int, HtbClass, HtbClass]]:
        """(level, prio, classid, leaf, lender) of every leaf that may send now."""
        out = []
        for cl in self.classes():
            if cl.level or cl.leaf is None or not cl.leaf.qlen or cl.leaf.peek(now) is None:
                continue
            lender = self._lender(cl, t)
            if lender is not None:
                out.append((lender.level, cl.prio, cl.classid, cl, lender))
        out.sort(key=lambda c: c[:3])
        return out

    def peek(self, now: float):
        if self.direct_queue:
            return tuple(self.direct_queue[0])
        candidates = self._candidates(now, now_ns(now))
        return candidates[0][3].leaf.peek(now) if candidates else None

    def dequeue(self, now: float, most: int = MANY):
        """htb_dequeue(): the direct queue first, then the lowest level, the best
        priority, and the leaf whose DRR turn it is."""
        if self.direct_queue:
            return self._sent(*take_head(self.direct_queue, most))
        if not self.qlen:
            return None
        t = now_ns(now)
        candidates = self._candidates(now, t)
        if not candidates:
            return None
        level, prio = candidates[0][:2]
        same = [c for c in candidates if c[:2] == (level, prio)]
        turn = self.rr.get((level, prio), 0)
        _, _, classid, leaf, lender = next((c for c in same if c[2] >= turn), same[0])
        skb, count = leaf.leaf.peek(now)
        length = skb.len
        count = min(count, most, self._train_room(leaf, lender, level, length, t))
        skb, count = leaf.leaf.dequeue(now, count)
        leaf.deficit[level] -= length * count
        if leaf.deficit[level] < 0:
            leaf.deficit[level] += leaf.quantum
            later = [c[2] for c in same if c[2] > classid]
            self.rr[(level, prio)] = later[0] if later else 0
        else:
            self.rr[(level, prio)] = classid
        self._charge(leaf, level, length, count, t)
        return self._sent(skb, count)

    def _train_room(self, leaf: HtbClass, lender: HtbClass, level: int, length: int, t: int) -> int:
        """How many packets of `length` may follow each other now: the DRR turn, the
        lender's rate bucket, and the ceil bucket of every class up to the lender."""
        deficit = leaf.deficit[level]
        room = deficit // length + 1 if deficit >= 0 else 1
        for cl in leaf.path():
            diff = min(t - cl.t_c, MBUFFER)
            cost = cl.ceil.l2t_ns(length)
            if cost:
                room = min(room, min(cl.ctokens + diff, cl.cbuffer) // cost + 1)
            if cl is lender:
                cost = cl.rate.l2t_ns(length)
                if cost:
                    room = min(room, min(cl.tokens + diff, cl.buffer) // cost + 1)
                break
        return max(room, 1)

    def _charge(self, leaf: HtbClass, level: int, length: int, count: int, t: int) -> None:
        """htb_charge_class() for `count` packets of `length` sent at `level`."""
        for cl in leaf.path():
            old_mode = cl.mode(t)
            diff = min(t - cl.t_c, MBUFFER)
            if cl.level >= level:
                if cl.level == level:
                    cl.lends += count
                cl.tokens = _bucket(cl.tokens, diff, cl.buffer, count * cl.rate.l2t_ns(length))
            else:
                cl.borrows += count
                cl.tokens += diff
            cl.ctokens = _bucket(cl.ctokens, diff, cl.cbuffer, count * cl.ceil.l2t_ns(length))
            cl.t_c = t
            cl.cmode = cl.mode(t)
            if cl.cmode == HTB_CANT_SEND and old_mode != HTB_CANT_SEND:
                cl.overlimits += 1
                self.overlimits += 1
            cl.bytes += length * count
            cl.packets += count

    def _sent(self, skb, count: int):
        self.qlen -= count
        self.backlog -= skb.len * count
        self.bstats_update(skb, count)
        return skb, count

    def next_event(self, now: float) -> float | None:
        """Now if something may leave, else the earliest wait-queue event on the path
        of a leaf with packets (qdisc_watchdog_schedule_ns(next_event))."""
        if self.direct_queue:
            return now
        if not self.qlen:
            return None
        t = now_ns(now)
        if self._candidates(now, t):
            return now
        wakes = []
        for cl in self.classes():
            if cl.level == 0 and cl.leaf is not None and cl.leaf.qlen:
                wakes += [w for c in cl.path() if (w := c.wake_time(t)) is not None]
                inner = cl.leaf.next_event(now)
                if inner is not None and inner > now:
                    wakes.append(now_ns(inner))
        return min(wakes) / NSEC_PER_SEC if wakes else None

    def reset(self) -> None:
        for cl in self.classes():
            if cl.leaf is not None:
                cl.leaf.reset()
        self.direct_queue.clear()
        super().reset()


def _bucket(tokens: int, diff: int, cap: int, cost: int) -> int:
    """htb_accnt_tokens(): refill by `diff` up to `cap`, pay `cost`, floor at -mbuffer."""
    toks = min(tokens + diff, cap) - cost
    return 1 - MBUFFER if toks <= -MBUFFER else toks


def class_hash(classid: int, mask: int) -> int:
    """qdisc_class_hash()"""
    classid ^= classid >> 8
    classid ^= classid >> 4
    return classid & mask
