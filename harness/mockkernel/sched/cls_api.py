"""Filter chains and their netlink side (net/sched/cls_api.c).

A clsact direction holds chain 0: tcf_protos sorted by priority (`pref`),
each with a protocol (ETH_P_ALL or one EtherType) and, here, the bpf
classifier. tcf_classify() runs the ones whose protocol matches the skb's
in priority order until one returns an action other than TC_ACT_UNSPEC.

tc_new_tfilter() and tc_del_tfilter() apply `tc filter add|replace|del` with
the kernel's extack messages (read on the lab): no clsact is "Parent Qdisc
doesn't exists", a priority in use with another protocol "Protocol mismatch
for filter with specified priority", an existing handle on add "Filter
already exists", deleting a missing priority "Filter with specified
priority/protocol not found". Without a priority a new filter gets
tcf_auto_prio(): 0xC000 (49152) for an empty chain, else one below the
first (lowest) priority. Without a handle cls_bpf takes the next one after
the last it gave (cls_bpf_grab_new_handle()).
Left out: chains other than 0, goto_chain, shared blocks, other classifiers.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass, field

from harness.mockkernel.bpf import TC_ACT_UNSPEC
from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.sched.cls_bpf import ClsBpfProg, cls_bpf_classify

ETH_P_ALL = 0x0003
TC_AUTO_PRIO = 0xC000


@dataclass
class TcfProto:
    """struct tcf_proto of kind "bpf" (its cls_bpf_head: programs, newest first)."""

    prio: int
    protocol: int
    filters: list[ClsBpfProg] = field(default_factory=list)
    hgen: int = 0

    def find(self, handle: int) -> ClsBpfProg | None:
        return next((f for f in self.filters if f.handle == handle), None)


def tcf_classify(skb, chain: list[TcfProto], stage: str) -> int:
    """__tcf_classify(): the filters whose protocol is skb_protocol(skb, false), the
    802.1Q/802.1ad of a tag held out of band, else skb->protocol."""
    protocol = skb.vlan_proto or skb.protocol
    for tp in chain:
        if tp.protocol != ETH_P_ALL and tp.protocol != protocol:
            continue
        ret = cls_bpf_classify(skb, tp, stage)
        if ret != TC_ACT_UNSPEC:
            return ret
    return TC_ACT_UNSPEC


def tc_new_tfilter(chain: list[TcfProto], prio: int | None, protocol: int, handle: int | None,
                   make: callable, replace: bool) -> None:
    """Add (or with `replace` change) a bpf filter; `make(handle)` loads its
    program into a ClsBpfProg (raising the loader's error)."""
    tp = next((t for t in chain if t.prio == prio), None) if prio is not None else None
    if tp is not None and tp.protocol != protocol:
        raise RtnlError(errno.EINVAL, "Protocol mismatch for filter with specified priority")
    if tp is not None and handle is not None and tp.find(handle) is not None and not replace:
        raise RtnlError(errno.EEXIST, "Filter already exists")
    if tp is None:
        if prio is None:
            prio = chain[0].prio - 1 if chain else TC_AUTO_PRIO
        tp = TcfProto(prio, protocol)
        new_tp = True
    else:
        new_tp = False
    if handle is None:
        handle = _grab_new_handle(tp)
    filt = make(handle)
    old = tp.find(handle)
    if old is not None:
        tp.filters[tp.filters.index(old)] = filt
    else:
        tp.filters.insert(0, filt)
    if new_tp:
        chain.append(tp)
        chain.sort(key=lambda t: t.prio)


def _grab_new_handle(tp: TcfProto) -> int:
    handle = tp.hgen + 1
    while tp.find(handle) is not None:
        handle += 1
    tp.hgen = handle
    return handle


def tc_del_tfilter(chain: list[TcfProto], prio: int | None, protocol: int | None, handle: int | None) -> None:
    """Without a priority the whole chain goes; with one, that filter (or
    only the program `handle`)."""
    if prio is None:
        chain.clear()
        return
    tp = next((t for t in chain if t.prio == prio and (protocol is None or t.protocol == protocol)), None)
    if tp is None:
        raise RtnlError(errno.ENOENT, "Filter with specified priority/protocol not found")
    if handle is not None:
        filt = tp.find(handle)
        if filt is None:
            raise RtnlError(errno.ENOENT, "Specified filter handle not found")
        tp.filters.remove(filt)
        if tp.filters:
            return
    chain.remove(tp)
