"""The bpf() system call's objects: the runtime of one namespace, maps, programs.

Models kernel/bpf/syscall.c (map_create, bpf_prog_load, the fd and id
tables); the programs themselves are core.py's. `BpfRuntime` is the BPF side
of one mock kernel: its address space, maps and programs, the virtual clock
bpf_ktime_get_ns reads, a seeded PRNG, the trace pipe, and the `net` whose
routes bpf_fib_lookup consults.
"""
from __future__ import annotations

import itertools
import os
import random
from pathlib import Path
from typing import Any

from harness.mockkernel.bpf.core import BpfProgram
from harness.mockkernel.bpf.elf import BpfObject, load_object
from harness.mockkernel.bpf.helpers import Helpers
from harness.mockkernel.bpf.host import PROG_TYPES as HOST_PROG_TYPES
from harness.mockkernel.bpf.host import HostVerifier
from harness.mockkernel.bpf.insn import decode
from harness.mockkernel.bpf.maps import EINVAL, MAP_CLASSES, MAP_TYPE_NAMES, BpfMap, MapError
from harness.mockkernel.bpf.vm import MAX_RUN_INSNS, AddressSpace, BpfLoadError, CodeSection
from harness.mockkernel.clock import Clock

# The mock's possible CPUs: per-CPU maps hold one value per CPU and bpftool
# prints each; programs run on CPU 0. A constant (the CI machine has 2), so the
# mock is the same everywhere; suites sum per-CPU values and never depend on it.
NR_CPUS = 2


class TracePipe(list):
    """The lines bpf_trace_printk() left in the trace buffer. The kernel's ring
    buffer (kernel/trace/ring_buffer.c, buffer_size_kb 1408 per CPU by
    default) overwrites its oldest events when full; so does this list, by
    the bytes its lines hold."""

    SIZE = 1408 * 1024  # TRACE_BUF_SIZE_DEFAULT

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def append(self, line: str) -> None:
        super().append(line)
        self.bytes += len(line) + 1
        if self.bytes > self.SIZE:
            overwritten = 0
            while self.bytes > self.SIZE * 3 // 4:  # a page at a time in the kernel: here a quarter
                self.bytes -= len(self[overwritten]) + 1
                overwritten += 1
            del self[:overwritten]

    def clear(self) -> None:
        super().clear()
        self.bytes = 0


class BpfRuntime:
    """The BPF state of one mock network namespace. `ncpus` is the number of
    possible CPUs (per-CPU maps hold that many values) and `cpu` the one the
    next program runs on; `host_verifier`, when given, also passes raw
    programs through the host kernel's verifier (host.py)."""

    def __init__(self, clock: Clock | None = None, net: Any = None, seed: int = 0, ncpus: int = 1,
                 host_verifier: HostVerifier | None = None) -> None:
        self.net = net
        self.host_verifier = host_verifier
        self.clock = clock or (net.clock if net is not None else Clock())
        self.random = random.Random(seed)
        self.ncpus, self.cpu = ncpus, 0
        self.mem = AddressSpace()
        self.trace_pipe = TracePipe()
        self.maps: dict[int, BpfMap] = {}
        self.progs: dict[int, BpfProgram] = {}
        self.ringbuf_records: dict[int, Any] = {}
        self.insn_counter = [0]
        self.max_run_insns = MAX_RUN_INSNS  # what one run may spend in loops (the VM's last guard)
        self.run_budget = [MAX_RUN_INSNS]
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
        try:
            prog = BpfProgram(self, name, prog_type, {name: section}, name, 0, whole_section=True)
        except BpfLoadError as refused:
            host_log = self._host_log(bytecode, prog_type)
            if host_log is not None:
                raise BpfLoadError(f"{refused}\nthe host kernel's verifier: {host_log or 'accepts it'}") from None
            raise
        host_log = self._host_log(bytecode, prog_type)
        if host_log:
            del self.progs[prog.id]
            raise BpfLoadError(f"{name}: the host kernel's verifier refuses it:\n{host_log}")
        return prog

    def _host_log(self, bytecode: bytes, prog_type: str) -> str | None:
        """The host verifier's log ("" when it accepts), or None without one to ask."""
        if self.host_verifier is None or prog_type not in HOST_PROG_TYPES:
            return None
        return self.host_verifier.verify(bytecode, prog_type, self.map_by_fd) or ""

    def load_object(self, path: str | os.PathLike | bytes, name: str | None = None) -> BpfObject:
        """Open and load a clang-built ELF object, as libbpf's bpf_object__open + load;
        with a host verifier, the host kernel loads it too and its refusal is the load's."""
        if self.host_verifier is None:
            return load_object(self, path, name)
        data = bytes(path) if isinstance(path, (bytes, bytearray)) else Path(path).read_bytes()
        try:
            obj = load_object(self, data, name or (None if isinstance(path, (bytes, bytearray))
                                                   else Path(path).name.split(".", 1)[0]))
        except BpfLoadError as refused:
            host_log = self.host_verifier.verify_object(data)
            if host_log is not None:
                raise BpfLoadError(f"{refused}\nthe host kernel's verifier: {host_log or 'accepts it'}") from None
            raise
        host_log = self.host_verifier.verify_object(data)
        if host_log:
            for prog in obj.programs.values():
                self.progs.pop(prog.id, None)
            for bpf_map in obj.maps.values():
                self.maps.pop(bpf_map.fd, None)
            raise BpfLoadError(f"{obj.name}: the host kernel's verifier refuses it:\n{host_log}")
        return obj

    def _add_program(self, prog: BpfProgram) -> int:
        prog_id = next(self._ids)
        self.progs[prog_id] = prog
        return prog_id

    def _release_deferred(self) -> None:
        for addr in self._deferred:
            self.mem.unmap(addr)
        self._deferred.clear()


def bpf_runtime(net) -> BpfRuntime:
    """The namespace's eBPF runtime, created by its first program or map."""
    if net.bpf is None:
        net.bpf = BpfRuntime(net=net, ncpus=NR_CPUS, host_verifier=HostVerifier.shared())
    return net.bpf
