"""A loaded eBPF program (kernel/bpf/core.c, include/linux/filter.h): struct
bpf_prog, translated once, and its run entry points (bpf_prog_run,
bpf_prog_run_xdp, tail calls).

A hook runs a program with `prog.run(ctx)`; the verdict comes back as the
kernel sees it (u32 for XDP, int for TC) and the context carries the packet
changes. The runtime it belongs to (syscall.py) owns the address space, maps
and helpers it runs with.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.mockkernel.bpf.context import XdpMd
from harness.mockkernel.bpf.insn import LD_IMM64, disasm
from harness.mockkernel.bpf.verifier import Verifier
from harness.mockkernel.bpf.vm import (
    CTX_ADDR,
    FAULTS,
    BpfFault,
    BpfLoadError,
    CallReloc,
    CodeSection,
    MapReloc,
    PacketLoadAbort,
    TailCall,
    Translator,
    explain_fault,
)
from harness.mockkernel.core.xdp import XDP_ABORTED

if TYPE_CHECKING:
    from harness.mockkernel.bpf.syscall import BpfRuntime

PROG_TYPES = ("xdp", "sched_cls", "raw")


class _RawMemory:
    """The context of a "raw" program (the conformance plugin's convention):
    r1 points to a memory buffer, r2 is its length; nothing to map or read back."""

    prog_type = "raw"

    def attach(self, regions: dict) -> None:
        pass

    def detach(self, regions: dict) -> None:
        pass

    @staticmethod
    def verdict(r0: int) -> int:
        return r0


_RAW_MEMORY = _RawMemory()


class BpfProgram:
    """struct bpf_prog: a loaded program, translated once. `section` is the
    ELF section it came from, `run_cnt` counts runs as bpf_stats does (always
    on in the mock), `loaded_at` is the virtual time of the load."""

    def __init__(self, runtime: BpfRuntime, name: str, prog_type: str, sections: dict[str, CodeSection],
                 section: str, entry: int, license: str = "GPL", whole_section: bool = False) -> None:
        if prog_type not in PROG_TYPES:
            raise BpfLoadError(f"program {name}: type {prog_type!r} is not modelled (have {', '.join(PROG_TYPES)})")
        self.runtime = runtime
        self.name, self.type, self.section, self.license = name, prog_type, section, license
        self._sections, self._entry = sections, entry
        Verifier(sections, prog_type, set(runtime.helpers.table(prog_type)), runtime.map_by_fd).verify(
            section, entry, whole_section=whole_section)
        self._fn, self._info = self._translate(count_insns=False)
        self._counting: tuple | None = None
        self._regions = runtime.mem.regions
        self.run_cnt = 0
        self.btf_id = 0  # the object's BTF, set by the ELF loader
        self.loaded_at = runtime.clock.now  # virtual seconds since the mock booted
        self.id = self.fd = runtime._add_program(self)

    def _translate(self, count_insns: bool) -> tuple:
        rt = self.runtime
        ld_abs = rt.helpers.ld_abs if self.type == "sched_cls" else None
        translator = Translator(self._sections, rt.helpers.table(self.type), rt.map_by_fd, rt.mem, ld_abs,
                                count_insns, rt.insn_counter, rt.run_budget)
        return translator.compile(self.section, self._entry, self.name)

    def __repr__(self) -> str:
        return f"<BpfProgram {self.name} ({self.type}, section {self.section}, id {self.id})>"

    def run(self, ctx: Any) -> int:
        """Run on a context (XdpMd for xdp, SkBuffCtx for sched_cls); returns
        r0 as the hook sees it. A fault raises BpfFault."""
        return self._execute(ctx, False, CTX_ADDR, 0)

    def run_xdp(self, frame: bytes, ingress_ifindex: int, why: str) -> tuple[XdpMd, int, str]:
        """bpf_prog_run_xdp() on `frame` as received on `ingress_ifindex`: the
        context after the run, the verdict, and `why` for the hop (a fault's
        message: the program ABORTED)."""
        ctx = XdpMd.from_frame(frame, ingress_ifindex=ingress_ifindex)
        try:
            return ctx, self.run(ctx), why
        except BpfFault as fault:
            return ctx, XDP_ABORTED, str(fault)

    def run_raw(self, memory: bytearray) -> int:
        """Run a "raw" program with r1 = memory and r2 = its length; returns r0 (u64)."""
        mem = self.runtime.mem
        addr = mem.map(memory, "memory")
        try:
            return self._execute(_RAW_MEMORY, False, addr, len(memory))
        finally:
            mem.unmap(addr)

    def count_instructions(self, ctx: Any) -> tuple[int, int]:
        """Run once counting executed instructions: (verdict, instructions)."""
        counter = self.runtime.insn_counter
        counter[0] = 0
        verdict = self._execute(ctx, True, CTX_ADDR, 0)
        return verdict, counter[0]

    def _function(self, counting: bool):
        if not counting:
            return self._fn
        if self._counting is None:
            self._counting = self._translate(count_insns=True)
        return self._counting[0]

    def _execute(self, ctx: Any, counting: bool, r1: int, r2: int) -> int:
        if ctx.prog_type != self.type:
            raise TypeError(f"{self!r} runs on a {self.type} context, not {type(ctx).__name__}")
        rt = self.runtime
        regions = self._regions
        ctx.attach(regions)
        rt.ctx = ctx
        rt.tail_calls = 0
        rt.run_budget[0] = rt.max_run_insns
        self.run_cnt += 1
        try:
            r0 = (self._function(True) if counting else self._fn)(r1, r2)
        except TailCall as call:
            r0 = self._tail_calls(call, counting, r1, r2)
        except PacketLoadAbort:
            r0 = 0
        except FAULTS as exc:
            fault = explain_fault(exc, rt.mem)
            if fault is None:
                raise
            raise fault from None
        finally:
            ctx.detach(regions)
            rt.ctx = None
            if rt._deferred:
                rt._release_deferred()
        return ctx.verdict(r0)

    def _tail_calls(self, call: TailCall, counting: bool, r1: int, r2: int) -> int:
        """Run the chain of programs bpf_tail_call() jumps to; the last one's r0 is the verdict."""
        while True:
            prog = call.prog
            if prog.type != self.type:
                raise TypeError(f"tail call from {self!r} into {prog!r}")
            try:
                return prog._function(counting)(r1, r2)
            except TailCall as next_call:
                call = next_call

    def dump(self) -> str:
        """The instructions of every section this program reaches, kernel syntax
        (like `bpftool prog dump xlated`, per section rather than linked)."""
        helper_names = {k: v[0] for k, v in self._info.helpers.items()}
        lines = []
        reached = sorted(self._info.reachable, key=lambda name: name != self.section)
        for section in (self._sections[name] for name in reached):
            lines.append(f"{section.name}:")
            insns = section.insns
            for pc, insn in enumerate(insns):
                if pc and insns[pc - 1].code == LD_IMM64:
                    continue
                reloc = section.relocs.get(pc)
                if isinstance(reloc, MapReloc):
                    value = "" if reloc.value_off is None else f"[0]+{reloc.value_off}"
                    text = f"r{insn.dst} = map[id:{reloc.map.fd}]{value}  ; {reloc.map.name}"
                elif isinstance(reloc, CallReloc):
                    text = f"call {reloc.section}+{reloc.target}"
                else:
                    next_imm = insns[pc + 1].imm if pc + 1 < len(insns) else 0
                    text = disasm(insn, next_imm, helper_names)
                lines.append(f"{pc:5}: {text}")
        return "\n".join(lines)
