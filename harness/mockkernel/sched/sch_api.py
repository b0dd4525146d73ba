"""The netlink side of qdiscs (net/sched/sch_api.c): tc_modify_qdisc() for
`tc qdisc add|replace|change|link`, tc_get_qdisc() for `del`, qdisc_graft(), and
the order tc_dump_qdisc() lists a device's qdiscs in.

A device's qdiscs other than the root sit in dev->qdisc_hash (16 buckets,
hash_32(handle, 4)), each bucket newest first; a dump gives the root, then the
hash bucket by bucket, leaving out the invisible ones (a classful qdisc's default
children), then the clsact qdisc. Refusals carry the kernel's extack text.
A qdisc taken out of the tree (deleted or replaced) is reset: the packets it
held are dropped, counted on its ancestors (qdisc_tree_reduce_backlog()) and
freed when the RTNL is released (NOT_SPECIFIED at __rtnl_unlock on the lab).
"""
from __future__ import annotations

import errno

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.core.errors import RtnlError, not_modelled
from harness.mockkernel.core.skbuff import kfree_skb
from harness.mockkernel.sched.sch_generic import (TC_H_ROOT, Qdisc, attach_default_qdisc, qdisc_base, tc_h_maj,
                                                   tc_h_min)

GOLDEN_RATIO_32 = 0x61C88647
QDISC_HASH_BITS = 4


def hash_32(value: int, bits: int) -> int:
    return ((value * GOLDEN_RATIO_32) & 0xFFFFFFFF) >> (32 - bits)


def qdisc_tree(dev) -> list[Qdisc]:
    """Every qdisc attached under the device's root, the root first."""
    return qdisc_subtree(dev.qdisc) if dev.qdisc is not None else []


def qdisc_subtree(root: Qdisc) -> list[Qdisc]:
    """`root` and every qdisc under it, breadth first."""
    out: list[Qdisc] = []
    pending = [root]
    while pending:
        q = pending.pop(0)
        out.append(q)
        pending.extend(q.children())
    return out


def qdisc_dump_order(dev, invisible: bool = False) -> list[Qdisc]:
    """tc_dump_qdisc_root(): the root, then the hashed qdiscs bucket by bucket (the
    invisible ones only when asked, TCA_DUMP_INVISIBLE)."""
    tree = qdisc_tree(dev)
    if not tree:
        return []
    hashed = [q for q in tree[1:] if q.hashed and (invisible or not q.invisible)]
    hashed.sort(key=lambda q: (hash_32(q.handle, QDISC_HASH_BITS), -q.hash_seq))
    return [tree[0]] + hashed


def qdisc_lookup(dev, handle: int) -> Qdisc | None:
    return next((q for q in qdisc_tree(dev) if q.handle == handle), None)


def qdisc_leaf(p: Qdisc, classid: int) -> Qdisc | None:
    if not p.classful:
        raise RtnlError(errno.EINVAL, "Parent qdisc is not classful")
    if not p.has_class(classid):
        raise RtnlError(errno.ENOENT, "Specified class not found")
    return p.class_leaf(classid)


def _qdisc_at(dev, parent: int, missing: str):
    """The parent qdisc (None at the root) and the qdisc grafted at `parent`; the
    parent's major not found is ENOENT with the caller's extack `missing`."""
    if parent == TC_H_ROOT:
        return None, dev.qdisc
    p = qdisc_lookup(dev, tc_h_maj(parent))
    if p is None:
        raise RtnlError(errno.ENOENT, missing)
    return p, qdisc_leaf(p, parent)


def tc_modify_qdisc(net, dev, parent: int, handle: int, kind: str | None, options, *, create: bool, replace: bool,
                    excl: bool) -> None:
    """RTM_NEWQDISC: create and graft, or change, the qdisc at `parent` (TC_H_ROOT or
    a class id; 0 finds it by `handle`). `options` are what the kind's parser sent."""
    p = None
    if parent:
        p, q = _qdisc_at(dev, parent, "Failed to find specified qdisc")
        if q is not None and q.handle == 0:  # it may be the default qdisc: ignore it
            q = None
        if q is None or not handle or q.handle != handle:
            if handle:
                if q is not None and not replace:
                    raise RtnlError(errno.EEXIST, "NLM_F_REPLACE needed to override")
                if tc_h_min(handle):
                    raise RtnlError(errno.EINVAL, "Invalid minor handle")
                q = qdisc_lookup(dev, handle)
                if q is None:
                    return _create_n_graft(net, dev, p, parent, handle, kind, options, create)
                if excl:
                    raise RtnlError(errno.EEXIST, "Exclusivity flag on, cannot override")
                if kind is not None and kind != q.kind:
                    raise RtnlError(errno.EINVAL, "Invalid qdisc name: must match existing qdisc")
                if q is p:
                    raise RtnlError(errno.ELOOP, "Qdisc parent/child loop detected")
                raise not_modelled(f"tc qdisc grafting the existing qdisc {handle >> 16:x}: elsewhere")
            if q is None:
                return _create_n_graft(net, dev, p, parent, handle, kind, options, create)
            if kind is not None and kind != q.kind:  # another kind takes its place, whatever the flags (lab)
                return _create_n_graft(net, dev, p, parent, handle, kind, options, True)
    else:
        if not handle:
            raise RtnlError(errno.EINVAL, "Handle cannot be zero")
        q = qdisc_lookup(dev, handle)
    if q is None:
        raise RtnlError(errno.ENOENT, "Specified qdisc not found")
    if excl:
        raise RtnlError(errno.EEXIST, "Exclusivity flag on, cannot modify")
    if kind is not None and kind != q.kind:
        raise RtnlError(errno.EINVAL, "Invalid qdisc name: must match existing qdisc")
    if options is None:  # qdisc_change() without TCA_OPTIONS: nothing to change
        return
    if not hasattr(q, "change"):
        raise RtnlError(errno.EINVAL, "Change operation not supported by specified qdisc")
    q.change(options)


def _create_n_graft(net, dev, p: Qdisc | None, parent: int, handle: int, kind: str | None, options,
                    create: bool) -> None:
    if not create:
        raise RtnlError(errno.ENOENT, "Qdisc not found. To create specify NLM_F_CREATE flag")
    cls = qdisc_base.get(kind or "")
    if cls is None:
        raise RtnlError(errno.ENOENT, "Specified qdisc kind is unknown")
    if not handle:
        handle = qdisc_alloc_handle(net, dev)
    q = cls(dev, handle, parent, options)
    qdisc_graft(net, dev, p, parent, q)


def qdisc_alloc_handle(net, dev) -> int:
    """The next free automatic handle: one counter from 8001: up, wrapping (the
    kernel's is global to the host, so the lab's numbers depend on its history)."""
    for _ in range(0x7FFF):
        net.qdisc_autohandle = net.qdisc_autohandle + 0x10000 if net.qdisc_autohandle < 0xFFFE0000 else 0x80010000
        if qdisc_lookup(dev, net.qdisc_autohandle) is None:
            return net.qdisc_autohandle
    raise RtnlError(errno.ENOSPC, "Maximum number of qdisc handles was exceeded")


def qdisc_graft(net, dev, p: Qdisc | None, classid: int, new: Qdisc | None) -> None:
    """Attach `new` at the root (p None) or on p's class; the old qdisc goes, its
    packets with it. A root of None gives the device its default again if it is up."""
    if p is None:
        old = dev.qdisc
        dev.qdisc = new
        if old is not None:
            qdisc_destroy(old, None)
        if new is None and dev.up:
            attach_default_qdisc(net, dev)
        return
    old = p.graft(classid, new)
    if old is not None:
        qdisc_purge_queue(dev, old)
        qdisc_destroy(old, p)


def qdisc_purge_queue(dev, old: Qdisc) -> None:
    """qdisc_tree_reduce_backlog() + qdisc_reset(): the ancestors lose the old
    qdisc's packets and count them as drops."""
    qlen, backlog = old.qlen, old.backlog
    parent = old.parent
    while parent and parent != TC_H_ROOT:
        ancestor = qdisc_lookup(dev, tc_h_maj(parent))
        if ancestor is None:
            break
        ancestor.qlen -= qlen
        ancestor.backlog -= backlog
        ancestor.drops += qlen
        ancestor.qlen_notify(parent, old)
        parent = ancestor.parent


def qdisc_destroy(q: Qdisc, parent: Qdisc | None) -> None:
    """The packets still queued are freed (after the RTNL is released, on the lab)."""
    for held in qdisc_tree_skbs(q):
        kfree_skb(held, DropReason.NOT_SPECIFIED, Stage.QDISC, "__rtnl_unlock")
    for each in qdisc_subtree(q):
        each.destroy()
        each.reset()


def qdisc_tree_skbs(q: Qdisc) -> list:
    """The single packets held anywhere under `q` (trains are the engine's to count)."""
    out = []
    for each in qdisc_subtree(q):
        out.extend(skb for skb, count in getattr(each, "queue", ()) if count == 1)
    return out


def tc_delete_qdisc(net, dev, parent: int, handle: int, kind: str | None) -> None:
    """tc_get_qdisc(RTM_DELQDISC)"""
    p = None
    if parent:
        p, q = _qdisc_at(dev, parent, "Failed to find qdisc with specified classid")
        if q is None:
            raise RtnlError(errno.ENOENT, "Cannot find specified qdisc on specified device")
        if handle and q.handle != handle:
            raise RtnlError(errno.EINVAL, "Invalid handle")
    else:
        q = qdisc_lookup(dev, handle)
        if q is None:
            raise RtnlError(errno.ENOENT, "Failed to find qdisc with specified handle")
    if kind is not None and kind != q.kind:
        raise RtnlError(errno.EINVAL, "Invalid qdisc name: must match existing qdisc")
    if not parent:
        raise RtnlError(errno.EINVAL, "Classid cannot be zero")
    if q.handle == 0:
        raise RtnlError(errno.ENOENT, "Cannot delete qdisc with handle of zero")
    qdisc_graft(net, dev, p, parent, None)


def tc_ctl_tclass(net, dev, verb: str, parent: int, classid: int, kind: str | None, options) -> None:
    """RTM_NEWTCLASS / RTM_DELTCLASS: find the qdisc from the class id or the parent
    (X:0, or the root's when neither names one), then the qdisc's own change/delete."""
    qid = tc_h_maj(classid)
    if parent != TC_H_ROOT:
        qid1 = tc_h_maj(parent)
        if qid and qid1 and qid != qid1:
            raise RtnlError(errno.EINVAL)
        if qid1:
            qid = qid1
        elif qid == 0:
            qid = dev.qdisc.handle if dev.qdisc is not None else 0
        if parent:
            parent = qid | tc_h_min(parent)
    elif qid == 0:
        qid = dev.qdisc.handle if dev.qdisc is not None else 0
    q = qdisc_lookup(dev, qid)
    if q is None:
        raise RtnlError(errno.ENOENT)
    if not q.classful:
        raise RtnlError(errno.EINVAL)
    if classid == 0:
        if parent == TC_H_ROOT:
            classid = qid
    else:
        classid = qid | tc_h_min(classid)
    exists = bool(classid) and q.has_class(classid)
    if not exists:
        if verb not in ("add", "replace"):
            raise RtnlError(errno.ENOENT)
    elif verb == "add":
        raise RtnlError(errno.EEXIST)
    elif verb == "delete":
        if not hasattr(q, "delete_class"):
            raise RtnlError(errno.EOPNOTSUPP)
        q.delete_class(classid)
        return
    if kind is not None and kind != q.kind:
        raise RtnlError(errno.EINVAL)  # another kind's options: htb_change_class() finds no TCA_HTB_PARMS
    if not hasattr(q, "change_class"):
        raise RtnlError(errno.EOPNOTSUPP)
    q.change_class(classid, parent, options, net.clock.now)
