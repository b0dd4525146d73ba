"""The bpf() system call's objects: the runtime of one namespace, maps, programs.

Models kernel/bpf/syscall.c (map_create, bpf_prog_load, the fd and id
tables) and the run entry points of include/linux/filter.h (bpf_prog_run,
bpf_prog_run_xdp, tail calls). `BpfRuntime` is the BPF side of one mock
kernel: its address space, maps and programs, the virtual clock
bpf_ktime_get_ns reads, a seeded PRNG, the trace pipe, and the `net` whose
routes bpf_fib_lookup consults. A hook runs a program with
`prog.run(ctx)`; the verdict comes back as the kernel sees it (u32 for XDP,
int for TC) and the context carries the packet changes.
"""
from __future__ import annotations

import itertools
import os
import random
from typing import TYPE_CHECKING, Any

from harness.mockkernel.bpf.context import XdpMd
from harness.mockkernel.bpf.helpers import Helpers
from harness.mockkernel.bpf.insn import LD_IMM64, decode, disasm
from harness.mockkernel.bpf.maps import EINVAL, MAP_CLASSES, MAP_TYPE_NAMES, BpfMap, MapError
from harness.mockkernel.bpf.vm import (
    CTX_ADDR,
    FAULTS,
    AddressSpace,
    BpfLoadError,
    CallReloc,
    CodeSection,
    MapReloc,
    PacketLoadAbort,
    TailCall,
    Translator,
    explain_fault,
)
from harness.mockkernel.clock import Clock
from harness.mockkernel.core.xdp import XDP_ABORTED

if TYPE_CHECKING:
    from harness.mockkernel.bpf.elf import BpfObject

PROG_TYPES = ("xdp", "sched_cls", "raw")
# The mock's possible CPUs: per-CPU maps hold one value per CPU and bpftool
# prints each; programs run on CPU 0. A constant (the CI machine has 2), so the
# mock is the same everywhere; suites sum per-CPU values and never depend on it.
NR_CPUS = 2


class BpfRuntime:
    """The BPF state of one mock network namespace. `ncpus` is the number of
    possible CPUs (per-CPU maps hold that many values) and `cpu` the one the
    next program runs on."""

    def __init__(self, clock: Clock | None = None, net: Any = None, seed: int = 0, ncpus: int = 1) -> None:
        self.net = net
        self.clock = clock or (net.clock if net is not None else Clock())
        self.random = random.Random(seed)
        self.ncpus, self.cpu = ncpus, 0
        self.mem = AddressSpace()
        self.trace_pipe: list[str] = []
        self.maps: dict[int, BpfMap] = {}
        self.progs: dict[int, BpfProgram] = {}
        self.ringbuf_records: dict[int, Any] = {}
        self.insn_counter = [0]
        self.ctx: Any = None  # the context of the program running now
        self.tail_calls = 0
        self._deferred: list[int] = []
        self._ids = itertools.count(1)
        self._btf_ids = itertools.count(1)
        self.helpers = Helpers(self)

    # maps

    def create_map(self, map_type: int, key_size: int, value_size: int, max_entries: int, map_flags: int = 0,
                   name: str = "") -> BpfMap:
        """BPF_MAP_CREATE."""
        cls = MAP_CLASSES.get(map_type)
        if cls is None:
            raise MapError(EINVAL, f"map {name}: map type {map_type} is not modelled "
                               f"(have {', '.join(sorted(MAP_TYPE_NAMES.values()))})")
        bpf_map = cls(self, name, key_size, value_size, max_entries, map_flags)
        bpf_map.fd = next(self._ids)
        self.maps[bpf_map.fd] = bpf_map
        return bpf_map

    def new_btf_id(self) -> int:
        """BPF_BTF_LOAD: the id of a newly loaded BTF object."""
        return next(self._btf_ids)

    def map_by_fd(self, fd: int) -> BpfMap | None:
        return self.maps.get(fd)

    def map_by_name(self, name: str) -> BpfMap:
        """Like `bpftool map ... name NAME`: the first map of that name."""
        for bpf_map in self.maps.values():
            if bpf_map.name == name:
                return bpf_map
        raise KeyError(f"no BPF map named {name!r}")

    def release(self, addr: int) -> None:
        """Unmap a value region; while a program runs, only after it returns
        (RCU keeps a deleted element readable until then)."""
        if self.ctx is not None:
            self._deferred.append(addr)
        else:
            self.mem.unmap(addr)

    # programs

    def load_program(self, bytecode: bytes, prog_type: str = "xdp", name: str = "prog") -> BpfProgram:
        """BPF_PROG_LOAD of raw bytecode; map loads use BPF_PSEUDO_MAP_FD with map fds.
        As the verifier does, every instruction must be reachable."""
        try:
            section = CodeSection(name, decode(bytecode), {})
        except ValueError as exc:
            raise BpfLoadError(f"{name}: {exc}") from None
        prog = BpfProgram(self, name, prog_type, {name: section}, name, 0)
        unreachable = prog._info.unreachable(name)
        if unreachable:
            del self.progs[prog.id]
            raise BpfLoadError(f"{name}: unreachable insn {unreachable[0]}")
        return prog

    def load_object(self, path: str | os.PathLike | bytes, name: str | None = None) -> BpfObject:
        """Open and load a clang-built ELF object, as libbpf's bpf_object__open + load."""
        from harness.mockkernel.bpf.elf import load_object  # elf.py builds on this module
        return load_object(self, path, name)

    def _add_program(self, prog: BpfProgram) -> int:
        prog_id = next(self._ids)
        self.progs[prog_id] = prog
        return prog_id

    def _release_deferred(self) -> None:
        for addr in self._deferred:
            self.mem.unmap(addr)
        self._deferred.clear()


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
                 section: str, entry: int, license: str = "GPL") -> None:
        if prog_type not in PROG_TYPES:
            raise BpfLoadError(f"program {name}: type {prog_type!r} is not modelled (have {', '.join(PROG_TYPES)})")
        self.runtime = runtime
        self.name, self.type, self.section, self.license = name, prog_type, section, license
        self._sections, self._entry = sections, entry
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
                                count_insns, rt.insn_counter)
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


def bpf_runtime(net) -> BpfRuntime:
    """The namespace's eBPF runtime, created by its first program or map."""
    if net.bpf is None:
        net.bpf = BpfRuntime(net=net, ncpus=NR_CPUS)
    return net.bpf
