"""Loading a large eBPF program on the mock: time and memory per instruction.

The program: 100,000 instructions, a conditional jump every other one
(`if r2 ... goto +1; r0 += 1`, r2 a byte of the context): one jump in 8
compares r2 with 5, which forks the walk (the taken side is pruned at the
next checkpoint), the others test `r2 > 255`, which the bounds decide. The
kernel loads it (no more than 8,192 forks wait on one path, its
BPF_COMPLEXITY_LIMIT_JMP_SEQ), walking it in time linear in its size; so
must the mock's verifier and translator.

- `bpf.load_100k_insns`: seconds for BPF_PROG_LOAD (verify and translate), median of 3.
- `bpf.bytes_per_insn`: what the loaded program keeps (tracemalloc's growth
  across the load, after a collection), per instruction.
- `bpf.peak_bytes_per_insn`: tracemalloc's peak during the load (compiling the
  generated Python is the high point), per instruction.
"""
from __future__ import annotations

import gc
import statistics
import time
import tracemalloc

from harness.mockkernel.bpf import BpfRuntime
from harness.mockkernel.bpf.insn import (BPF_ADD, BPF_ALU64, BPF_AND, BPF_EXIT, BPF_JEQ, BPF_JGT, BPF_JMP, BPF_LDX,
                                         BPF_MEM, BPF_MOV, BPF_W, Insn, encode)

INSNS = 100_000
RUNS = 3


def program(size: int = INSNS) -> bytes:
    """r0 = 0; r2 = ctx->ingress_ifindex & 0xff; (if r2 == 5 / r2 > 255 goto +1; r0 += 1) ...; exit."""
    insns = [Insn(BPF_ALU64 | BPF_MOV, 0, 0, 0, 0), Insn(BPF_LDX | BPF_MEM | BPF_W, 2, 1, 12, 0),
             Insn(BPF_ALU64 | BPF_AND, 2, 0, 0, 0xFF)]
    while len(insns) < size - 1:
        jump = Insn(BPF_JMP | BPF_JEQ, 2, 0, 1, 5) if len(insns) % 16 == 3 else Insn(BPF_JMP | BPF_JGT, 2, 0, 1, 0xFF)
        insns += [jump, Insn(BPF_ALU64 | BPF_ADD, 0, 0, 0, 1)]
    insns.append(Insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0))
    return encode(insns)


def measure_load_seconds(bytecode: bytes) -> float:
    times = []
    for _ in range(RUNS):
        rt = BpfRuntime()
        start = time.perf_counter()
        rt.load_program(bytecode, "xdp")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_bytes(bytecode: bytes) -> tuple[float, float]:
    """(kept, peak) bytes per instruction of one load."""
    rt = BpfRuntime()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    prog = rt.load_program(bytecode, "xdp")
    gc.collect()
    kept, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    count = len(bytecode) // 8
    del prog
    return (kept - before) / count, (peak - before) / count


def main() -> None:
    bytecode = program()
    print(f"figure bpf.load_100k_insns {measure_load_seconds(bytecode):.2f} s", flush=True)
    kept, peak = measure_bytes(bytecode)
    print(f"figure bpf.bytes_per_insn {kept:.0f} B", flush=True)
    print(f"figure bpf.peak_bytes_per_insn {peak:.0f} B", flush=True)


if __name__ == "__main__":
    main()
