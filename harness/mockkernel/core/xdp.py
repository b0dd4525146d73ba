"""Native XDP in the driver (net/core/dev.c dev_xdp_attach), and the XDP
verdicts (include/uapi/linux/bpf.h enum xdp_action).

`ip link set dev X xdp|xdpdrv obj F sec S` loads the object's program and
attaches it to the port; `xdp off` detaches it. The program is an object with
a run method (BpfProgram.run_xdp(), bpf_prog_run_xdp()), so the datapath
imports nothing of bpf/. The NIC's NAPI poll runs it on
the raw frame before any sk_buff exists: XDP_PASS continues (with the frame as
the program left it: adjust_head/tail/meta), XDP_DROP and XDP_ABORTED end the
packet there (no skb is allocated, so nothing later sees it), XDP_TX sends the
frame back out of the same port, XDP_REDIRECT out of the port the program
named, or into a cpumap (kernel/bpf/cpumap.c): cpu_map_enqueue() hands the
frame to that CPU's kthread, whose cpu_map_kthread_run() builds an skb and
passes it up the stack (netif_receive_skb_list), so the frame goes on as for
XDP_PASS, its XDP hop saying `cpumap cpu N`. A redirect into an empty cpumap
slot never happens: bpf_redirect_map() returns the flags' action instead
(XDP_ABORTED for 0, a drop). A program fault (BpfFault) counts as
XDP_ABORTED. The ports are veths on the lab, whose XDP drops free the skb
veth already had with NOT_SPECIFIED at veth_xdp_rcv_skb; the journey uses
that reason and location.

Generic (skb) XDP, `ip link set dev X xdpgeneric obj F sec S`, is dev->xdp_prog:
do_xdp_generic() (core/dev.py) runs it from __netif_receive_skb_core() on the skb's frame
(from the MAC header) before taps and TC. PASS continues with the frame as the
program left it (eth_type_trans() again), TX sends it back out of the port
through generic_xdp_tx() (the driver's xmit, no qdisc or TC egress), REDIRECT
to a device goes out of that device the same way; DROP and ABORTED free the
skb without a reason (NOT_SPECIFIED at do_xdp_generic, seen on the lab), a
failed redirect with XDP. As on the lab, one mode at a time: attaching in the
other mode fails ("Native and generic XDP can't be active at the same time"),
and iproute2's XDP_FLAGS_UPDATE_IF_NOEXIST refuses a second program in the
same mode; `off` in the other mode is a no-op.
Left out: XDP frags, xskmap targets, cpumap redirects from generic XDP (they
drop), the cpumap value's second XDP program (refused when the slot is
filled), its queue size (the kthread keeps up) and its timing: the skb goes
up the stack within the NAPI poll, not after it from the kthread.
"""
from __future__ import annotations

import errno
from collections.abc import Callable

from harness.dropreason import DropReason
from harness.journey import Drop, Hop, Stage
from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.core.skbuff import alloc_skb
from harness.mockkernel.wire import FrameSummary

XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)  # include/uapi/linux/bpf.h xdp_action
XDP_STAGE = Stage.XDP  # bound once (per packet: see Stage)
VERDICT_NAMES = {XDP_ABORTED: "ABORTED", XDP_DROP: "DROP", XDP_PASS: "PASS", XDP_TX: "TX", XDP_REDIRECT: "REDIRECT"}


def dev_xdp_attach(dev, load: Callable[[], object] | None, generic: bool = False) -> None:
    """Attach the program `load()` loads in native (driver) or generic mode,
    loading it only once the device can take it; a None `load` detaches that
    mode's program."""
    attr = "xdp_generic_prog" if generic else "xdp_prog"
    if load is None:
        setattr(dev, attr, None)
        return
    if getattr(dev, "xdp_prog" if generic else "xdp_generic_prog") is not None:
        raise RtnlError(errno.EEXIST, "Native and generic XDP can't be active at the same time")
    if getattr(dev, attr) is not None:
        raise RtnlError(errno.EBUSY, "XDP program already attached")
    setattr(dev, attr, load())


def do_xdp(net, nic, frame: bytes, lead: tuple[Hop, ...]) -> tuple[bytes, Hop] | None:
    """Run the port's program on a frame that crossed the `lead` hops (NIC_RX,
    NAPI): for XDP_PASS the frame to build an skb from and the XDP hop for its
    journey; None when XDP consumed it (its journey ends here)."""
    dev = nic.dev
    ctx, verdict, why = dev.xdp_prog.run_xdp(frame, dev.ifindex, "")
    out = bytes(ctx.buf[ctx.data:ctx.data_end])
    name = VERDICT_NAMES.get(verdict, f"invalid action {verdict}")
    hop = Hop(XDP_STAGE, dev.name, name, why)
    if verdict == XDP_PASS:
        return out, hop
    if verdict == XDP_REDIRECT and ctx.redirect is not None and ctx.redirect.kind == "cpu":
        return out, Hop(XDP_STAGE, dev.name, name, f"cpumap cpu {ctx.redirect.target}")
    journey = net.tracer.start_frame(FrameSummary(bytearray(frame), 0), [*lead, hop])
    if verdict == XDP_TX:
        xdp_xmit(net, nic, out, journey)
    elif verdict == XDP_REDIRECT and ctx.redirect is not None and ctx.redirect.kind == "dev":
        target = next((n for n in net.nics.values() if n.dev.ifindex == ctx.redirect.target), None)
        if target is not None:
            xdp_xmit(net, target, out, journey)
            return None
        net.tracer.end(journey, Drop(DropReason.NOT_SPECIFIED, Stage.XDP, "xdp_do_redirect", str(journey.packet)))
    else:
        net.tracer.end(journey, Drop(DropReason.NOT_SPECIFIED, Stage.XDP, "veth_xdp_rcv_skb", str(journey.packet)))
    return None


def xdp_xmit(net, nic, frame: bytes, journey) -> None:
    """ndo_xdp_xmit(): the frame onto the port's TX ring; with the line-rate engine
    attached (`net.xmit_hook`), to the engine as an skb carrying the frame's journey."""
    if net.xmit_hook is not None:
        skb = alloc_skb(frame, 0)
        skb.net, skb.dev, skb.journey = net, nic.dev, journey
        net.xmit_hook(nic.dev, skb)
        return
    nic.start_xmit(frame)
    journey.hops.append(nic.tx_hop)
