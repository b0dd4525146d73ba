"""eBPF instruction encoding (RFC 9669, include/uapi/linux/bpf.h) and a disassembler.

An instruction is 8 bytes: opcode, dst/src registers (4 bits each), a signed
16-bit offset and a signed 32-bit immediate; LD_IMM64 takes a second slot for
the upper 32 bits. `disasm()` prints one instruction the way the kernel's
verifier log and `bpftool prog dump xlated` do (kernel/bpf/disasm.c), so
faults and load errors read like the kernel's own messages.
"""
from __future__ import annotations

import struct
from typing import NamedTuple

# instruction classes
BPF_LD, BPF_LDX, BPF_ST, BPF_STX, BPF_ALU, BPF_JMP, BPF_JMP32, BPF_ALU64 = range(8)
# source operand
BPF_K, BPF_X = 0x00, 0x08
# ALU operations (opcode & 0xf0)
(BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH, BPF_RSH, BPF_NEG, BPF_MOD, BPF_XOR,
 BPF_MOV, BPF_ARSH, BPF_END) = (i << 4 for i in range(14))
BPF_TO_LE, BPF_TO_BE = 0x00, 0x08
# jump operations (opcode & 0xf0)
(BPF_JA, BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET, BPF_JNE, BPF_JSGT, BPF_JSGE, BPF_CALL, BPF_EXIT,
 BPF_JLT, BPF_JLE, BPF_JSLT, BPF_JSLE) = (i << 4 for i in range(14))
# load/store size (opcode & 0x18) and mode (opcode & 0xe0)
BPF_W, BPF_H, BPF_B, BPF_DW = 0x00, 0x08, 0x10, 0x18
BPF_IMM, BPF_ABS, BPF_IND, BPF_MEM, BPF_MEMSX, BPF_ATOMIC = 0x00, 0x20, 0x40, 0x60, 0x80, 0xC0
SIZE_BYTES = {BPF_W: 4, BPF_H: 2, BPF_B: 1, BPF_DW: 8}
# atomic operations (imm)
BPF_FETCH = 0x01
BPF_XCHG = 0xE0 | BPF_FETCH
BPF_CMPXCHG = 0xF0 | BPF_FETCH
# LD_IMM64 and CALL pseudo sources
BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE = 1, 2
BPF_PSEUDO_CALL, BPF_PSEUDO_KFUNC_CALL = 1, 2
LD_IMM64 = BPF_LD | BPF_IMM | BPF_DW

_INSN = struct.Struct("<BBhi")


class Insn(NamedTuple):
    code: int
    dst: int
    src: int
    off: int
    imm: int

    @property
    def cls(self) -> int:
        return self.code & 0x07


def decode(data: bytes) -> list[Insn]:
    """Instructions from raw little-endian bytecode (length a multiple of 8)."""
    if len(data) % 8:
        raise ValueError(f"bytecode length {len(data)} is not a multiple of 8")
    return [Insn(code, regs & 0x0F, regs >> 4, off, imm) for code, regs, off, imm in _INSN.iter_unpack(data)]


def encode(insns: list[Insn]) -> bytes:
    return b"".join(_INSN.pack(i.code, (i.src << 4) | i.dst, i.off, i.imm) for i in insns)


_ALU_SYMBOLS = {BPF_ADD: "+=", BPF_SUB: "-=", BPF_MUL: "*=", BPF_DIV: "/=", BPF_OR: "|=", BPF_AND: "&=",
                BPF_LSH: "<<=", BPF_RSH: ">>=", BPF_MOD: "%=", BPF_XOR: "^=", BPF_MOV: "=", BPF_ARSH: "s>>="}
_JMP_SYMBOLS = {BPF_JEQ: "==", BPF_JGT: ">", BPF_JGE: ">=", BPF_JSET: "&", BPF_JNE: "!=", BPF_JSGT: "s>",
                BPF_JSGE: "s>=", BPF_JLT: "<", BPF_JLE: "<=", BPF_JSLT: "s<", BPF_JSLE: "s<="}
_SIZE_NAMES = {BPF_W: "u32", BPF_H: "u16", BPF_B: "u8", BPF_DW: "u64"}
_ATOMIC_NAMES = {BPF_ADD: "add", BPF_OR: "or", BPF_AND: "and", BPF_XOR: "xor"}


def _mem(size: int, reg: int, off: int, signed: bool = False) -> str:
    kind = _SIZE_NAMES[size].replace("u", "s") if signed else _SIZE_NAMES[size]
    return f"*({kind} *)(r{reg} {off:+d})"


def disasm(insn: Insn, next_imm: int = 0, helper_names: dict[int, str] | None = None) -> str:
    """One instruction in the kernel's verifier-log syntax."""
    code, cls = insn.code, insn.cls
    op = code & 0xF0
    if cls in (BPF_ALU, BPF_ALU64):
        reg = "r" if cls == BPF_ALU64 else "w"
        dst = f"{reg}{insn.dst}"
        src = f"{reg}{insn.src}" if code & BPF_X else str(insn.imm)
        if op == BPF_NEG:
            return f"{dst} = -{dst}"
        if op == BPF_END:
            kind = "bswap" if cls == BPF_ALU64 else ("be" if code & BPF_TO_BE else "le")
            return f"r{insn.dst} = {kind}{insn.imm} r{insn.dst}"
        if op == BPF_MOV and insn.off:
            return f"{dst} = (s{insn.off}){reg}{insn.src}"
        symbol = _ALU_SYMBOLS.get(op, "?=")
        if insn.off == 1 and op in (BPF_DIV, BPF_MOD):
            symbol = "s" + symbol
        return f"{dst} {symbol} {src}"
    if cls in (BPF_JMP, BPF_JMP32):
        if op == BPF_EXIT:
            return "exit"
        if op == BPF_CALL:
            if insn.src == BPF_PSEUDO_CALL:
                return f"call pc{insn.imm:+d}"
            name = (helper_names or {}).get(insn.imm, "unknown")
            return f"call {name}#{insn.imm}"
        if op == BPF_JA:
            return f"gotol pc{insn.imm:+d}" if cls == BPF_JMP32 else f"goto pc{insn.off:+d}"
        reg = "r" if cls == BPF_JMP else "w"
        src = f"{reg}{insn.src}" if code & BPF_X else str(insn.imm)
        return f"if {reg}{insn.dst} {_JMP_SYMBOLS.get(op, '?')} {src} goto pc{insn.off:+d}"
    size, mode = code & 0x18, code & 0xE0
    if cls == BPF_LDX:
        return f"r{insn.dst} = {_mem(size, insn.src, insn.off, mode == BPF_MEMSX)}"
    if cls == BPF_ST:
        return f"{_mem(size, insn.dst, insn.off)} = {insn.imm}"
    if cls == BPF_STX and mode == BPF_ATOMIC:
        reg = "r" if size == BPF_DW else "w"
        ptr = f"({_SIZE_NAMES[size]} *)(r{insn.dst} {insn.off:+d})"
        if insn.imm == BPF_XCHG:
            return f"{reg}{insn.src} = atomic_xchg({ptr}, {reg}{insn.src})"
        if insn.imm == BPF_CMPXCHG:
            return f"{reg}0 = atomic_cmpxchg({ptr}, {reg}0, {reg}{insn.src})"
        name = _ATOMIC_NAMES.get(insn.imm & ~BPF_FETCH, "?")
        if insn.imm & BPF_FETCH:
            return f"{reg}{insn.src} = atomic_fetch_{name}({ptr}, {reg}{insn.src})"
        return f"lock *{ptr} {_ALU_SYMBOLS.get(insn.imm, '?=')} {reg}{insn.src}"
    if cls == BPF_STX:
        return f"{_mem(size, insn.dst, insn.off)} = r{insn.src}"
    if code == LD_IMM64:
        value = (insn.imm & 0xFFFFFFFF) | (next_imm << 32)
        if insn.src == BPF_PSEUDO_MAP_FD:
            return f"r{insn.dst} = map[fd:{insn.imm}]"
        if insn.src == BPF_PSEUDO_MAP_VALUE:
            return f"r{insn.dst} = map[fd:{insn.imm}][0]+{next_imm}"
        return f"r{insn.dst} = {value:#x} ll"
    if mode == BPF_ABS:
        return f"r0 = *({_SIZE_NAMES[size]} *)skb[{insn.imm}]"
    if mode == BPF_IND:
        return f"r0 = *({_SIZE_NAMES[size]} *)skb[r{insn.src} + {insn.imm}]"
    return f"(bad opcode {code:#04x})"
