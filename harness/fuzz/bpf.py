"""Hypothesis strategies for hostile eBPF: mutated ELF objects and bytecode.

ELF cases start from the clang-built objects of programs/ and corrupt them where
a loader reads: the ELF header (e_shoff, e_shnum, e_shstrndx), the section
headers (sh_offset, sh_size, sh_link, sh_type), and anywhere else; or cut them
short. Bytecode cases are instruction sequences drawn mostly from the opcodes
the kernel's instruction table has (verifier.VALID_OPCODES), with registers,
offsets and immediates at their edges, often ending in `exit`, sometimes with a
prologue that makes a packet access reachable; loaded as XDP, TC or raw programs.
"""
from __future__ import annotations

import struct

from hypothesis import strategies as st

from harness.mockkernel.bpf.insn import Insn, encode
from harness.mockkernel.bpf.verifier import VALID_OPCODES

ELF_PROGRAMS = ("xdp_blocklist", "xdp_counters", "xdp_adjust", "xdp_tailcall", "xdp_global_data", "tc_nat", "tc_mark",
                "xdp_events", "tc_ipv6_exthdr")
EXIT, MOV64_IMM, LDXW = 0x95, 0xB7, 0x61
OPCODES = sorted(VALID_OPCODES)
IMMS = st.one_of(st.sampled_from([0, 1, -1, 2, 7, 8, 14, 31, 32, 63, 64, 0x7FFFFFFF, -0x80000000, 1 << 20, 4096]),
                 st.integers(-2**31, 2**31 - 1))
OFFS = st.one_of(st.sampled_from([0, 1, -1, 2, -2, 4, -8, 8, 12, 14, -512, 512, 0x7FFF, -0x8000]), st.integers(-0x8000, 0x7FFF))
PROG_TYPES = ("xdp", "sched_cls", "raw")


@st.composite
def elf_mutation(draw, size: int, shoff: int, shnum: int) -> list[tuple[int, bytes]]:
    """(offset, bytes) patches to an object of `size` bytes whose section headers
    (64 bytes each) start at `shoff`."""
    patches = []
    for _ in range(draw(st.integers(1, 6))):
        where = draw(st.sampled_from(["ehdr", "shdr", "shdr", "anywhere"]))
        if where == "ehdr":
            field = draw(st.sampled_from([(0x10, 2), (0x12, 2), (0x28, 8), (0x3A, 2), (0x3C, 2), (0x3E, 2), (4, 1), (5, 1)]))
        elif where == "shdr":
            index = draw(st.integers(0, max(0, shnum - 1)))
            field = (shoff + 64 * index + draw(st.sampled_from([0, 4, 8, 0x18, 0x20, 0x28, 0x2C, 0x30, 0x38])),
                     draw(st.sampled_from([4, 8])))
        else:
            field = (draw(st.integers(0, max(0, size - 1))), draw(st.integers(1, 8)))
        offset, width = field
        value = draw(st.one_of(st.sampled_from([0, 1, 0xFF, 0xFFFF, 0xFFFFFFFF, 2**63, size, size + 1, 64, 0x7FFF]),
                               st.integers(0, 2**(8 * width) - 1)))
        patches.append((offset, (value % 2**(8 * width)).to_bytes(width, "little")))
    return patches


def apply_patches(data: bytes, patches: list[tuple[int, bytes]], cut: int | None) -> bytes:
    out = bytearray(data)
    for offset, value in patches:
        out[offset:offset + len(value)] = value
    return bytes(out[:cut] if cut is not None else out)


def elf_cases(objects: dict[str, bytes]):
    """(program name, patches, cut) over the given objects' bytes."""
    @st.composite
    def case(draw):
        name = draw(st.sampled_from(sorted(objects)))
        data = objects[name]
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shnum, = struct.unpack_from("<H", data, 0x3C)
        patches = draw(st.one_of(st.just([]), elf_mutation(len(data), shoff, shnum)))
        cut = draw(st.one_of(st.none(), st.none(), st.integers(0, len(data))))
        return name, patches, cut
    return case()


@st.composite
def insn(draw) -> Insn:
    code = draw(st.one_of(st.sampled_from(OPCODES), st.sampled_from(OPCODES), st.integers(0, 255)))
    return Insn(code, draw(st.one_of(st.integers(0, 10), st.integers(0, 15))),
                draw(st.one_of(st.integers(0, 10), st.sampled_from([0, 1, 2, 3, 4, 5]), st.integers(0, 15))),
                draw(OFFS), draw(IMMS))


@st.composite
def bytecode_cases(draw) -> tuple[str, bytes]:
    """(program type, bytecode): a prologue (r0 set; for packet programs the
    packet's data and data_end loaded) then drawn instructions, usually an exit."""
    prog_type = draw(st.sampled_from(PROG_TYPES))
    insns = []
    if draw(st.booleans()):
        insns.append(Insn(MOV64_IMM, 0, 0, 0, draw(st.integers(0, 4))))
    if prog_type != "raw" and draw(st.booleans()):
        data_off, end_off = (0, 4) if prog_type == "xdp" else (76, 80)
        insns += [Insn(LDXW, 2, 1, data_off, 0), Insn(LDXW, 3, 1, end_off, 0)]
    insns += draw(st.lists(insn(), max_size=24))
    if draw(st.integers(0, 9)):
        insns.append(Insn(EXIT, 0, 0, 0, 0))
    return prog_type, encode(insns)
