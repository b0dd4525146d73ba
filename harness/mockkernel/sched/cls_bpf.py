"""The bpf classifier (net/sched/cls_bpf.c).

One classifier instance (a tcf_proto of kind "bpf") holds programs by
handle, newest first as cls_bpf_change() adds them (list_add_rcu).
cls_bpf_classify() runs them in that order on the skb, seen from its MAC
header through __sk_buff. In direct-action mode (`da`) the program's return
is the action, through cls_bpf_exec_opcode(): OK, SHOT, STOLEN, TRAP and
REDIRECT end classification, anything else (UNSPEC, PIPE, RECLASSIFY, ...)
becomes UNSPEC and the next program or filter runs (seen on the lab: PIPE,
RECLASSIFY, QUEUED, REPEAT and unknown codes all let the packet through).
Without `da` the return is a classid: 0 is no match (next program), any
other value a match, and with no actions attached tcf_exts_exec() answers
TC_ACT_OK.

Faults: the verifier checks a TC program completely at load, so in the
kernel a loaded program can never fault at run time. A BpfFault here means
the mock ran a program the kernel would have refused at `tc filter add`: it
is raised (with the filter named), never turned into a verdict the kernel
could not produce.
Left out: actions (`action ...`), classid results for qdisc classes,
skip_sw/skip_hw offload, pinned programs.
"""
from __future__ import annotations

from dataclasses import dataclass

from harness.mockkernel.bpf import (TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT, TC_ACT_STOLEN, TC_ACT_UNSPEC,
                                    BpfFault, SkBuffCtx)

TC_ACT_TRAP = 8
# the verdict names of hops: TC_ACT_* without the prefix
TC_ACT_NAMES = {-1: "UNSPEC", 0: "OK", 1: "RECLASSIFY", 2: "SHOT", 3: "PIPE", 4: "STOLEN", 5: "QUEUED",
                6: "REPEAT", 7: "REDIRECT", 8: "TRAP"}


@dataclass
class ClsBpfProg:
    """struct cls_bpf_prog: one program of a bpf classifier. `bpf_name` is
    what tc names it by ("obj.o:[sec]"); `exts_integrated` is direct-action."""

    handle: int
    prog: object  # BpfProgram
    bpf_name: str
    exts_integrated: bool


def cls_bpf_exec_opcode(code: int) -> int:
    if code in (TC_ACT_OK, TC_ACT_SHOT, TC_ACT_STOLEN, TC_ACT_TRAP, TC_ACT_REDIRECT, TC_ACT_UNSPEC):
        return code
    return TC_ACT_UNSPEC


def cls_bpf_classify(skb, tp, stage: str) -> int:
    """Run the classifier's programs; the action, or TC_ACT_UNSPEC for none."""
    for filt in tp.filters:
        ctx = _skb_ctx(skb)
        try:
            filter_res = filt.prog.run(ctx)
        except BpfFault as fault:
            raise BpfFault(f"{stage} filter pref {tp.prio} handle {filt.handle:#x} on {skb.dev.name}: {fault} "
                           "(the kernel's verifier refuses such a program when it is loaded)") from None
        _write_back(skb, ctx)
        if filt.exts_integrated:
            ret = cls_bpf_exec_opcode(filter_res)
            verdict = TC_ACT_NAMES.get(filter_res, f"action {filter_res}")
        else:
            ret = TC_ACT_UNSPEC if filter_res == 0 else TC_ACT_OK
            verdict = "no match" if filter_res == 0 else f"classid {filter_res & 0xFFFFFFFF:#x}"
        if skb.journey is not None:
            skb.net.tracer.hop(skb, stage, skb.dev.name, verdict,
                               f"bpf pref {tp.prio} handle {filt.handle:#x} {filt.prog.name}")
        if ret == TC_ACT_REDIRECT:
            skb.cb = skb.cb or {}
            skb.cb["bpf_redirect"] = ctx.redirect
        if ret != TC_ACT_UNSPEC:
            return ret
    return TC_ACT_UNSPEC


def _skb_ctx(skb) -> SkBuffCtx:
    """__sk_buff over the skb from its MAC header (pushed back at ingress, as
    sch_handle_ingress() does)."""
    return SkBuffCtx(skb.buf, skb.mac_header, skb.tail, protocol=skb.protocol, pkt_type=skb.pkt_type,
                     mark=skb.mark, priority=skb.priority, ingress_ifindex=skb.skb_iif,
                     ifindex=skb.dev.ifindex, tc_index=skb.tc_index, hash=skb.hash,
                     vlan_tci=skb.vlan_tci if skb.vlan_proto else None, vlan_proto=skb.vlan_proto)


def _write_back(skb, ctx: SkBuffCtx) -> None:
    """What a TC program may change stays on the skb: the writable fields and the bytes."""
    skb.mark, skb.priority, skb.tc_index = ctx.mark, ctx.priority, ctx.tc_index
    skb.tail = ctx.tail  # the TC helpers modelled write in place; none moves skb->data
