"""Classifiers that pick a class of a classful qdisc (net/sched/cls_fw.c,
cls_matchall.c): the filters `tc filter add dev X parent 1: ... flowid 1:10`
attaches to a qdisc such as htb, which runs them in htb_classify().

fw_classify() matches skb->mark & mask against the filter's handle; matchall
matches every packet. Each gives its `classid` (res.classid); a protocol other
than all must be the packet's. The chain is kept in priority order; without a
priority a filter gets tcf_auto_prio() (cls_api.py).
Left out: fw without a classid (the mark as the class id), actions, indev.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass

from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.sched.cls_api import ETH_P_ALL, TC_AUTO_PRIO


@dataclass
class ClassidFilter:
    """A tcf_proto of kind fw or matchall with its one filter."""

    kind: str
    prio: int
    protocol: int
    classid: int
    handle: int = 0
    mask: int = 0xFFFFFFFF

    def classify_classid(self, skb) -> int | None:
        if self.protocol != ETH_P_ALL and self.protocol != (skb.vlan_proto or skb.protocol):  # skb_protocol()
            return None
        if self.kind == "fw" and (skb.mark & self.mask) != self.handle:
            return None
        return self.classid


def tc_new_classid_filter(q, filt: ClassidFilter | None, prio: int | None) -> None:
    """tc_new_tfilter() on a classful qdisc's chain."""
    if not getattr(q, "classful", False) or not hasattr(q, "filters"):
        raise RtnlError(errno.EOPNOTSUPP, "Class doesn't support blocks")
    chain = q.filters
    if prio is None:
        prio = chain[0].prio - 1 if chain else TC_AUTO_PRIO
    if any(t.prio == prio and (t.kind != filt.kind or t.protocol != filt.protocol) for t in chain):
        raise RtnlError(errno.EINVAL, "Protocol mismatch for filter with specified priority")
    filt.prio = prio
    chain.append(filt)
    chain.sort(key=lambda t: t.prio)


def tc_del_classid_filters(q, prio: int | None) -> None:
    """Without a priority the whole chain goes; with one, the filters of that priority."""
    chain = getattr(q, "filters", [])
    if prio is None:
        chain.clear()
        return
    kept = [t for t in chain if t.prio != prio]
    if len(kept) == len(chain):
        raise RtnlError(errno.ENOENT, "Filter with specified priority/protocol not found")
    chain[:] = kept
