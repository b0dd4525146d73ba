"""A program's tag, as `tc filter show`, `ip link` and bpftool print it
(kernel/bpf/core.c bpf_prog_calc_tag()).

The kernel hashes the instructions it was given, before verification, with
the map references of LD_IMM64 (BPF_PSEUDO_MAP_FD / BPF_PSEUDO_MAP_VALUE)
zeroed, since their fds change from load to load; the tag is the first 8
bytes of the digest. This kernel (6.18) uses SHA-256 (checked on the lab:
the tags of programs/*.o match; earlier kernels used SHA-1). The instructions
are the ones libbpf loads (tools/lib/bpf/libbpf.c bpf_object__reloc_code()):
the program's function, then each `.text` subprogram it calls appended in
the order the calls are met (depth first), calls patched to relative
offsets. A function ends where the next program or call target in its
section starts.
"""
from __future__ import annotations

import hashlib

from harness.mockkernel.bpf.insn import BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE, Insn, encode
from harness.mockkernel.bpf.vm import CallReloc, MapReloc

TAG_SIZE = 8  # BPF_TAG_SIZE


def bpf_prog_calc_tag(prog) -> str:
    """The tag of a loaded BpfProgram, in hex."""
    return hashlib.sha256(encode(loaded_insns(prog))).digest()[:TAG_SIZE].hex()


def loaded_insns(prog) -> list[Insn]:
    """The program as libbpf hands it to BPF_PROG_LOAD, map references zeroed."""
    sections = prog._sections
    starts = _function_starts(prog)
    out: list[Insn] = []
    placed: dict[tuple[str, int], int] = {}

    def append(section: str, entry: int) -> None:
        placed[(section, entry)] = base = len(out)
        code = sections[section]
        end = min((s for s in starts.get(section, ()) if s > entry), default=len(code.insns))
        out.extend(code.insns[entry:end])
        for pc in range(entry, end):
            reloc = code.relocs.get(pc)
            at = base + pc - entry
            if isinstance(reloc, MapReloc):
                src = BPF_PSEUDO_MAP_FD if reloc.value_off is None else BPF_PSEUDO_MAP_VALUE
                out[at] = out[at]._replace(src=src, imm=0)
                out[at + 1] = out[at + 1]._replace(imm=0)
            elif isinstance(reloc, CallReloc):
                key = (reloc.section, reloc.target)
                if key not in placed:
                    append(*key)
                out[at] = out[at]._replace(imm=placed[key] - at - 1)

    append(prog.section, prog._entry)
    return out


def _function_starts(prog) -> dict[str, set[int]]:
    """Where functions start, per section: the programs of the object and every call target."""
    starts: dict[str, set[int]] = {}
    for other in prog.runtime.progs.values():
        if other._sections is prog._sections:
            starts.setdefault(other.section, set()).add(other._entry)
    for code in prog._sections.values():
        for reloc in code.relocs.values():
            if isinstance(reloc, CallReloc):
                starts.setdefault(reloc.section, set()).add(reloc.target)
    return starts
