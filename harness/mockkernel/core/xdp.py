"""Native XDP in the driver (net/core/dev.c dev_xdp_attach, bpf_prog_run_xdp).

`ip link set dev X xdp|xdpdrv obj F sec S` loads the object's program and
attaches it to the port; `xdp off` detaches it. The NIC's NAPI poll runs it on
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
do_xdp_generic() runs it from __netif_receive_skb_core() on the skb's frame
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

from harness.journey import Drop, Hop
from harness.mockkernel.bpf import XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX, BpfFault, XdpMd
from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.core.skbuff import kfree_skb
from harness.mockkernel.wire import FrameSummary

# The mock's possible CPUs: per-CPU maps hold one value per CPU and bpftool
# prints each; programs run on CPU 0. A constant (the CI machine has 2), so the
# mock is the same everywhere; suites sum per-CPU values and never depend on it.
NR_CPUS = 2

VERDICT_NAMES = {XDP_ABORTED: "ABORTED", XDP_DROP: "DROP", XDP_PASS: "PASS", XDP_TX: "TX", XDP_REDIRECT: "REDIRECT"}


def bpf_runtime(net):
    """The namespace's eBPF runtime, created on first use."""
    if net.bpf is None:
        from harness.mockkernel.bpf import BpfRuntime
        net.bpf = BpfRuntime(net=net, ncpus=NR_CPUS)
    return net.bpf


def dev_xdp_attach(net, dev, path: str | None, section: str | None, generic: bool = False) -> None:
    """Attach the program in section `section` of object `path` in native
    (driver) or generic mode; a None path detaches that mode's program."""
    attr = "xdp_generic_prog" if generic else "xdp_prog"
    if path is None:
        setattr(dev, attr, None)
        return
    if getattr(dev, "xdp_prog" if generic else "xdp_generic_prog") is not None:
        raise RtnlError(errno.EEXIST, "Native and generic XDP can't be active at the same time")
    if getattr(dev, attr) is not None:
        raise RtnlError(errno.EBUSY, "XDP program already attached")
    obj = bpf_runtime(net).load_object(path)
    setattr(dev, attr, obj.program(section) if section else obj.program())


def bpf_prog_run_xdp(prog, frame: bytes, dev, why: str) -> tuple[XdpMd, int, str]:
    """Run `prog` on `frame` as received on `dev`: the context after the run, the
    verdict, and `why` for the hop (a fault's message: the program ABORTED)."""
    ctx = XdpMd.from_frame(frame, ingress_ifindex=dev.ifindex)
    try:
        return ctx, prog.run(ctx), why
    except BpfFault as fault:
        return ctx, XDP_ABORTED, str(fault)


def do_xdp(net, nic, frame: bytes, lead: tuple[Hop, ...]) -> tuple[bytes, Hop] | None:
    """Run the port's program on a frame that crossed the `lead` hops (NIC_RX,
    NAPI): for XDP_PASS the frame to build an skb from and the XDP hop for its
    journey; None when XDP consumed it (its journey ends here)."""
    dev = nic.dev
    ctx, verdict, why = bpf_prog_run_xdp(dev.xdp_prog, frame, dev, "")
    out = bytes(ctx.buf[ctx.data:ctx.data_end])
    name = VERDICT_NAMES.get(verdict, f"invalid action {verdict}")
    hop = Hop("XDP", dev.name, name, why)
    if verdict == XDP_PASS:
        return out, hop
    if verdict == XDP_REDIRECT and ctx.redirect is not None and ctx.redirect.kind == "cpu":
        return out, Hop("XDP", dev.name, name, f"cpumap cpu {ctx.redirect.target}")
    journey = net.tracer.start_frame(FrameSummary(bytearray(frame), 0), [*lead, hop])
    if verdict == XDP_TX:
        nic.start_xmit(out)
        journey.hops.append(nic.tx_hop)
    elif verdict == XDP_REDIRECT and ctx.redirect is not None and ctx.redirect.kind == "dev":
        target = next((n for n in net.nics.values() if n.dev.ifindex == ctx.redirect.target), None)
        if target is not None:
            target.start_xmit(out)
            journey.hops.append(target.tx_hop)
            return None
        net.tracer.end(journey, Drop("NOT_SPECIFIED", "XDP", "xdp_do_redirect", str(journey.packet)))
    else:
        net.tracer.end(journey, Drop("NOT_SPECIFIED", "XDP", "veth_xdp_rcv_skb", str(journey.packet)))
    return None


def do_xdp_generic(skb) -> bool:
    """Run dev->xdp_prog on an skb; True if it goes on up the stack (XDP_PASS)."""
    dev, net = skb.dev, skb.net
    frame = bytes(skb.buf[skb.mac_header:skb.tail])
    ctx, verdict, why = bpf_prog_run_xdp(dev.xdp_generic_prog, frame, dev, "generic")
    net.tracer.hop(skb, "XDP", dev.name, VERDICT_NAMES.get(verdict, f"invalid action {verdict}"), why)
    out = ctx.packet()
    if verdict == XDP_PASS:
        if out != frame:
            _replace_frame(skb, out)
        return True
    if verdict == XDP_TX:
        generic_xdp_tx(skb, dev, out)
    elif verdict == XDP_REDIRECT and ctx.redirect is not None and ctx.redirect.kind == "dev":
        target = next((d for d in net.devices.values() if d.ifindex == ctx.redirect.target), None)
        if target is None or target.name not in net.nics:
            kfree_skb(skb, "XDP", "XDP", "do_xdp_generic")
        else:
            generic_xdp_tx(skb, target, out)
    elif verdict == XDP_REDIRECT:
        kfree_skb(skb, "XDP", "XDP", "do_xdp_generic")
    else:
        kfree_skb(skb, "NOT_SPECIFIED", "XDP", "do_xdp_generic")
    return False


def generic_xdp_tx(skb, dev, frame: bytes) -> None:
    """The frame straight to the device's ndo_start_xmit (no qdisc, no TC egress)."""
    nic = skb.net.nics[dev.name]
    skb.net.tracer.add(skb, nic.tx_hop)
    nic.start_xmit(frame)


def _replace_frame(skb, frame: bytes) -> None:
    """The program moved the head or tail: the skb now holds its frame, and
    the stack classifies it again (netif_receive_generic_xdp's eth_type_trans)."""
    from harness.mockkernel.core.dev import eth_type_trans
    headroom = skb.mac_header
    skb.buf = bytearray(headroom) + frame
    skb.data, skb.tail = headroom, len(skb.buf)
    eth_type_trans(skb)
