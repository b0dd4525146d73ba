"""Native XDP in the driver (net/core/dev.c dev_xdp_attach, bpf_prog_run_xdp).

`ip link set dev X xdp|xdpdrv obj F sec S` loads the object's program and
attaches it to the port; `xdp off` detaches it. The NIC's NAPI poll runs it on
the raw frame before any sk_buff exists: XDP_PASS continues (with the frame as
the program left it: adjust_head/tail/meta), XDP_DROP and XDP_ABORTED end the
packet there (no skb is allocated, so nothing later sees it), XDP_TX sends the
frame back out of the same port, XDP_REDIRECT out of the port the program
named. A program fault (BpfFault) counts as XDP_ABORTED. The ports are veths
on the lab, whose XDP drops free the skb veth already had with
NOT_SPECIFIED at veth_xdp_rcv_skb; the journey uses that reason and location.
Left out: generic (skb) mode as a separate path, XDP frags, cpumap/xskmap targets.
"""
from __future__ import annotations

from harness.journey import Drop, Hop
from harness.mockkernel.bpf import XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX, BpfFault, XdpMd
from harness.mockkernel.wire import FrameSummary

VERDICT_NAMES = {XDP_ABORTED: "ABORTED", XDP_DROP: "DROP", XDP_PASS: "PASS", XDP_TX: "TX", XDP_REDIRECT: "REDIRECT"}


def bpf_runtime(net):
    """The namespace's eBPF runtime, created on first use."""
    if net.bpf is None:
        from harness.mockkernel.bpf import BpfRuntime
        net.bpf = BpfRuntime(net=net)
    return net.bpf


def dev_xdp_attach(net, dev, path: str | None, section: str | None) -> None:
    """Attach the program in section `section` of object `path`; None detaches."""
    if path is None:
        dev.xdp_prog = None
        return
    obj = bpf_runtime(net).load_object(path)
    dev.xdp_prog = obj.program(section) if section else obj.program()


def do_xdp(net, nic, frame: bytes) -> bytes | None:
    """Run the port's program on a frame; the frame to build an skb from, or None."""
    dev = nic.dev
    ctx = XdpMd.from_frame(frame, ingress_ifindex=dev.ifindex)
    try:
        verdict = dev.xdp_prog.run(ctx)
    except BpfFault as fault:
        verdict, why = XDP_ABORTED, str(fault)
    else:
        why = ""
    out = bytes(ctx.buf[ctx.data:ctx.data_end])
    name = VERDICT_NAMES.get(verdict, f"invalid action {verdict}")
    hops = [Hop("NIC_RX", dev.name, "DMA"), Hop("NAPI", f"{dev.name} poll"), Hop("XDP", dev.name, name, why)]
    if verdict == XDP_PASS:
        return out
    journey = net.tracer.start_frame(FrameSummary(bytearray(frame), 0), hops)
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
