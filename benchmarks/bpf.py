"""eBPF on the mock: instructions per second of the VM, packets per second of an XDP program.

mock.bpf_insns: the real objects from programs/, each on a frame that takes
its main path (maps filled so the lookups hit, a FIB for bpf_fib_lookup).
Every run gets a fresh context as a hook would build one; the contexts are
prepared in small batches outside the timed loop, so the time is prog.run()
alone: context mapping, the translated code, helpers. Instructions are
counted once per program with count_instructions(); a helper call counts as
one instruction, as in the kernel's own count. Per-program figures go to stderr.

mock.xdp_drop_udp: a whole packet through the run API with the real
xdp_drop_udp.o, as the XDP hook will do it: an xdp_md built from the frame
(XdpMd.from_frame: headroom, buffer) and prog.run(), both timed.
"""
from __future__ import annotations

import struct
import sys
import time

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from harness import bpf_build
from harness.mockkernel.bpf import BpfRuntime, SkBuffCtx, XdpMd
from harness.mockkernel.kernel import Kernel
from harness.mockkernel.target import sh

BATCH = 200
SECONDS_PER_PROGRAM = 0.3


def _frame(dst: str = "10.0.1.2", dport: int = 9) -> bytes:
    return bytes(Ether(src="02:00:00:00:01:01", dst="02:00:00:00:00:01") /
                 IP(src="10.1.2.3", dst=dst) / UDP(sport=1000, dport=dport) / (b"x" * 18))


def _runtime() -> BpfRuntime:
    """A runtime whose namespace routes 10.0.1.0/24 out of p1 to a known neighbour."""
    kernel = Kernel()
    for command in ("ip addr add 10.0.0.1/24 dev p0", "ip addr add 10.0.1.1/24 dev p1",
                    "ip neigh replace 10.0.1.2 lladdr 02:00:00:00:01:02 dev p1 nud permanent",
                    "sysctl -w net.ipv4.ip_forward=1"):
        sh(kernel, command.split())
    return BpfRuntime(net=kernel)


def _workload(rt: BpfRuntime) -> list[tuple[str, object, object]]:
    """(name, program, context factory) for every program on its main path."""
    objs = {name: rt.load_object(path) for name, path in bpf_build.build_all().items()}
    objs["xdp_blocklist"].map("blocklist").update_elem(struct.pack("<I", 16) + bytes([10, 1, 0, 0]), bytes(8))
    objs["tc_nat"].map("dnat").update_elem(bytes([10, 0, 1, 2]), bytes([10, 9, 9, 9]))
    objs["tc_mark"].map("port_policy").update_elem(struct.pack("<H", 9), struct.pack("<II", 1, 2))
    frame, dns_frame = _frame(), _frame(dport=53)

    def xdp(ingress_ifindex: int = 0):
        return lambda: XdpMd.from_frame(frame, ingress_ifindex)

    def tc():
        return lambda: SkBuffCtx(bytearray(frame), 0, len(frame))

    return [
        ("xdp_drop_udp", objs["xdp_drop_udp"].program(), xdp()),
        ("xdp_tx_reflector", objs["xdp_tx_reflector"].program(), xdp()),
        ("xdp_counters", objs["xdp_counters"].program(), xdp()),
        ("xdp_blocklist", objs["xdp_blocklist"].program(), xdp()),
        ("xdp_global_data", objs["xdp_global_data"].program(), lambda: XdpMd.from_frame(dns_frame)),
        ("xdp_fib_forward", objs["xdp_fib_forward"].program(), xdp(ingress_ifindex=2)),
        ("xdp_ipip_encap", objs["xdp_adjust"].program("xdp_ipip_encap"), xdp()),
        ("tc_dnat", objs["tc_nat"].program("tc_dnat"), tc()),
        ("tc_mark", objs["tc_mark"].program(), tc()),
    ]


def measure_insns() -> float:
    """Instructions per second over the workload; each program runs about as long."""
    total_insns = total_time = 0.0
    for name, prog, make_ctx in _workload(_runtime()):
        _, per_run = prog.count_instructions(make_ctx())
        runs, elapsed = 0, 0.0
        while elapsed < SECONDS_PER_PROGRAM:
            batch = [make_ctx() for _ in range(BATCH)]
            start = time.perf_counter()
            for ctx in batch:
                prog.run(ctx)
            elapsed += time.perf_counter() - start
            runs += BATCH
        prog.runtime.trace_pipe.clear()
        print(f"  {name}: {per_run} insns/run, {elapsed / runs * 1e6:.2f} us/run, "
              f"{per_run * runs / elapsed / 1e6:.1f} M insn/s", file=sys.stderr)
        total_insns += per_run * runs
        total_time += elapsed
    return total_insns / total_time


def measure_xdp_drop_udp(count: int = 100_000) -> float:
    """Packets per second: build the xdp_md from the frame and run the program, per packet."""
    prog = BpfRuntime().load_object(bpf_build.build("xdp_drop_udp")).program()
    frame = _frame()
    drops = 0
    start = time.perf_counter()
    for _ in range(count):
        drops += prog.run(XdpMd.from_frame(frame)) == 1
    elapsed = time.perf_counter() - start
    if drops != count:
        print(f"mock.xdp_drop_udp: only {drops} of {count} frames dropped", file=sys.stderr)
    return count / elapsed


def main() -> None:
    print(f"figure mock.bpf_insns {measure_insns():.0f} insn/s", flush=True)
    print(f"figure mock.xdp_drop_udp {measure_xdp_drop_udp():.0f} pps", flush=True)


if __name__ == "__main__":
    main()
