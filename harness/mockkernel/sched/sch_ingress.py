"""The clsact qdisc (net/sched/sch_ingress.c) and the TC hooks of the
datapath (net/core/dev.c sch_handle_ingress(), sch_handle_egress(), tc_run()).

`tc qdisc add dev X clsact` gives a device two filter chains, ingress
(parent ffff:fff2) and egress (ffff:fff3); both count into the qdisc's one
set of statistics (the miniq pair shares the qdisc's counters), and only
while a direction has filters (its miniq is NULL otherwise). Ingress counts
qdisc_pkt_len() as set before the MAC header is pushed back (the L3 length),
egress the whole frame; a SHOT counts a drop (seen on the lab).

sch_handle_ingress() runs from __netif_receive_skb_core() after generic XDP
and before the netdev ingress hook; the program sees the frame from the MAC
header. sch_handle_egress() runs from __dev_queue_xmit() before the qdisc.
Actions, as the kernel's switch after tc_run(): SHOT frees the skb with
TC_INGRESS / TC_EGRESS (the lab reports them at __netif_receive_skb_core and
__dev_queue_xmit, where the helpers are inlined); STOLEN, QUEUED and TRAP
consume it (no drop is reported); REDIRECT hands it to skb_do_redirect();
anything else continues. tcx (bpf_mprog links) is left out: only clsact.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass, field

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.bpf import TC_ACT_REDIRECT, TC_ACT_SHOT, TC_ACT_STOLEN
from harness.mockkernel.core import dev as core_dev
from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.core.skbuff import kfree_skb
from harness.mockkernel.netfilter.core import NF_SKIP_EGRESS
from harness.mockkernel.sched.cls_api import TcfProto, tcf_classify
from harness.mockkernel.sched.cls_bpf import TC_ACT_TRAP
from harness.mockkernel.wire.ethernet import ETH_HLEN

TC_ACT_QUEUED = 5
CONSUMED = (TC_ACT_STOLEN, TC_ACT_QUEUED, TC_ACT_TRAP)
TC_H_CLSACT = 0xFFFFFFF1
TC_INGRESS_STAGE, TC_EGRESS_STAGE = Stage.TC_INGRESS, Stage.TC_EGRESS  # bound once (per packet: see Stage)
TC_H_MIN_INGRESS, TC_H_MIN_EGRESS = 0xFFF2, 0xFFF3
XMIT_RECURSION_LIMIT = 8  # include/linux/netdevice.h
_xmit_recursion = 0  # softnet_data.xmit.recursion: the mock is one CPU


@dataclass
class Clsact:
    """struct clsact_sched_data: the two chains, and the qdisc's counters; the
    device's receive and transmit paths call its sch_handle_ingress() and
    sch_handle_egress() (dev->miniq_ingress / miniq_egress)."""

    ingress: list[TcfProto] = field(default_factory=list)
    egress: list[TcfProto] = field(default_factory=list)
    bytes: int = 0
    packets: int = 0
    drops: int = 0

    def chain(self, direction: str) -> list[TcfProto]:
        return self.ingress if direction == "ingress" else self.egress

    def sch_handle_ingress(self, skb) -> bool:
        """True if the packet goes on to the netdev hook and the protocol handler."""
        if not self.ingress:
            return True
        ret = tc_run(self, skb, self.ingress, TC_INGRESS_STAGE)
        skb.data = skb.mac_header + ETH_HLEN
        if ret == TC_ACT_SHOT:
            kfree_skb(skb, DropReason.TC_INGRESS, Stage.TC_INGRESS, "__netif_receive_skb_core")
            return False
        if ret in CONSUMED:
            return False
        if ret == TC_ACT_REDIRECT:
            skb.data = skb.mac_header  # __skb_push(skb, skb->mac_len)
            skb_do_redirect(skb, Stage.TC_INGRESS)
            return False
        return True

    def sch_handle_egress(self, skb) -> bool:
        """True if the packet goes on to the qdisc and the driver."""
        if not self.egress:
            return True
        ret = tc_run(self, skb, self.egress, TC_EGRESS_STAGE)
        if ret == TC_ACT_SHOT:
            kfree_skb(skb, DropReason.TC_EGRESS, Stage.TC_EGRESS, "__dev_queue_xmit")
            return False
        if ret in CONSUMED:
            return False
        if ret == TC_ACT_REDIRECT:
            skb_do_redirect(skb, Stage.TC_EGRESS)
            return False
        return True


def qdisc_create_clsact(dev, replace: bool) -> None:
    """tc_modify_qdisc() for clsact: a second one is refused unless replacing (a no-op then)."""
    if dev.clsact is not None:
        if replace:
            return
        raise RtnlError(errno.EEXIST, "Exclusivity flag on, cannot modify")
    dev.clsact = Clsact()


def qdisc_destroy_clsact(dev) -> None:
    """tc_get_qdisc(RTM_DELQDISC): the filters go with the qdisc."""
    if dev.clsact is None:
        raise RtnlError(errno.ENOENT, "Cannot find specified qdisc on specified device")
    dev.clsact = None


def filter_chain(dev, direction: str) -> list[TcfProto]:
    """The chain a `tc filter add|del dev X ingress|egress` works on."""
    if dev.clsact is None:
        raise RtnlError(errno.EINVAL, "Parent Qdisc doesn't exists")
    return dev.clsact.chain(direction)


def tc_run(q, skb, chain: list[TcfProto], stage: str) -> int:
    """net/core/dev.c tc_run(): classify, counting the packet on the clsact qdisc
    (one set of counters for both directions) and a SHOT as its drop."""
    q.packets += 1
    q.bytes += skb.len
    ret = tcf_classify(skb, chain, stage)
    if ret == TC_ACT_SHOT:
        q.drops += 1
    return ret


def skb_do_redirect(skb, stage: Stage) -> None:
    """net/core/filter.c: where bpf_redirect() pointed, out of that device
    (dev_queue_xmit) or into it (BPF_F_INGRESS: dev_forward_skb, received
    anew). No target (the program returned TC_ACT_REDIRECT without calling
    bpf_redirect, or the ifindex is gone) frees it, NOT_SPECIFIED (lab). A target
    that is down is no concern here: the transmit or the receive path drops it."""
    ri = skb.cb.pop("bpf_redirect", None) if skb.cb else None
    target = None
    if ri is not None and ri.kind == "dev":
        target = next((d for d in skb.net.devices.values() if d.ifindex == ri.target), None)
    if target is None:
        kfree_skb(skb, DropReason.NOT_SPECIFIED, stage, "skb_do_redirect")
        return
    skb.dev = target
    if ri.ingress:
        core_dev.dev_forward_skb(skb)
    else:
        __bpf_tx_skb(skb, stage)


def __bpf_tx_skb(skb, stage: str) -> None:
    """net/core/filter.c: dev_queue_xmit() one nesting level deeper. Past
    XMIT_RECURSION_LIMIT levels (dev_xmit_recursion(): a program redirecting out
    of its own device) the skb is freed: seen on the lab, an egress program
    redirecting to its own port ran 10 times, then NOT_SPECIFIED in
    __bpf_redirect (where this is inlined)."""
    global _xmit_recursion
    if _xmit_recursion > XMIT_RECURSION_LIMIT:
        kfree_skb(skb, DropReason.NOT_SPECIFIED, stage, "__bpf_redirect")
        return
    _xmit_recursion += 1
    skb.cb = skb.cb or {}
    skb.cb[NF_SKIP_EGRESS] = True  # nf_skip_egress(skb, true) around tc: the target's nft egress is skipped
    try:
        core_dev.dev_queue_xmit(skb)
    finally:
        _xmit_recursion -= 1
