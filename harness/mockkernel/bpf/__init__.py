"""The mock kernel's eBPF subsystem (kernel/bpf/, the BPF parts of net/core/filter.c).

Runs the same clang-built objects the DUT loads. A hook's view:

    rt = BpfRuntime(net=kernel)                    # one per namespace
    obj = rt.load_object(bpf_build.build("xdp_drop_udp"))
    prog = obj.program("xdp")                      # by section or function name
    ctx = XdpMd(buf, data, data_end, ingress_ifindex=dev.ifindex)
    verdict = prog.run(ctx)                        # XDP_DROP, XDP_PASS, ...
    ctx.data, ctx.data_end, ctx.redirect           # the packet after the program

TC programs run the same way on an `SkBuffCtx`; afterwards its mark,
priority, tc_index, tc_classid, cb and redirect carry the changes. Maps are
`obj.maps[name]` with bpftool-like lookup/update/delete/dump. A program that
touches memory it may not stops with `BpfFault`; one the verifier would
refuse fails to load with `BpfLoadError`.
"""
from harness.mockkernel.bpf.context import (
                                            TC_ACT_OK,
                                            TC_ACT_PIPE,
                                            TC_ACT_RECLASSIFY,
                                            TC_ACT_REDIRECT,
                                            TC_ACT_SHOT,
                                            TC_ACT_STOLEN,
                                            TC_ACT_UNSPEC,
                                            TC_ACTIONS,
                                            XDP_ACTIONS,
                                            Redirect,
                                            SkBuffCtx,
                                            XdpMd,
)
from harness.mockkernel.bpf.elf import BpfObject
from harness.mockkernel.bpf.maps import BpfMap, MapError
from harness.mockkernel.bpf.core import BpfProgram
from harness.mockkernel.bpf.syscall import BpfRuntime
from harness.mockkernel.bpf.vm import BpfFault, BpfLoadError
from harness.mockkernel.core.xdp import XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX

__all__ = [
                                            "TC_ACTIONS",
                                            "TC_ACT_OK",
                                            "TC_ACT_PIPE",
                                            "TC_ACT_RECLASSIFY",
                                            "TC_ACT_REDIRECT",
                                            "TC_ACT_SHOT",
                                            "TC_ACT_STOLEN",
                                            "TC_ACT_UNSPEC",
                                            "XDP_ABORTED",
                                            "XDP_ACTIONS",
                                            "XDP_DROP",
                                            "XDP_PASS",
                                            "XDP_REDIRECT",
                                            "XDP_TX",
                                            "BpfFault",
                                            "BpfLoadError",
                                            "BpfMap",
                                            "BpfObject",
                                            "BpfProgram",
                                            "BpfRuntime",
                                            "MapError",
                                            "Redirect",
                                            "SkBuffCtx",
                                            "XdpMd",
]
