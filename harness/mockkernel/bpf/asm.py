"""An assembler for the text syntax of the bpf_conformance tests, and their file format.

The public eBPF conformance suite (github.com/Alan-Jowett/bpf_conformance)
writes each test as a `.data` file: `-- asm` (or `-- raw` 64-bit words),
optional `-- mem` hex bytes, and `-- result` (r0) or `-- error`. The syntax
is ubpf's: `mov %r0, 1`, `ldxw %r1, [%r2+4]`, `jne %r1, 5, label`,
`lock fetch add [%r10-8], %r1`, `call local f`; the `%` is optional. This
module assembles that syntax (plus the RFC 9669 additions: sdiv/smod,
movsx, bswap, sign-extending loads as `ldxs{b,h,w}`, `gotol`, and
`lddw %r1, map_by_fd(N)` for a map fd) so tests can state programs readably
and replay the public test files against the VM.
"""
from __future__ import annotations

from dataclasses import dataclass

from harness.mockkernel.bpf.insn import (
    BPF_ADD,
    BPF_ALU,
    BPF_ALU64,
    BPF_AND,
    BPF_ARSH,
    BPF_ATOMIC,
    BPF_B,
    BPF_CALL,
    BPF_CMPXCHG,
    BPF_DIV,
    BPF_DW,
    BPF_END,
    BPF_EXIT,
    BPF_FETCH,
    BPF_H,
    BPF_JA,
    BPF_JEQ,
    BPF_JGE,
    BPF_JGT,
    BPF_JLE,
    BPF_JLT,
    BPF_JMP,
    BPF_JMP32,
    BPF_JNE,
    BPF_JSET,
    BPF_JSGE,
    BPF_JSGT,
    BPF_JSLE,
    BPF_JSLT,
    BPF_K,
    BPF_LDX,
    BPF_LSH,
    BPF_MEM,
    BPF_MEMSX,
    BPF_MOD,
    BPF_MOV,
    BPF_MUL,
    BPF_NEG,
    BPF_OR,
    BPF_PSEUDO_CALL,
    BPF_PSEUDO_MAP_FD,
    BPF_RSH,
    BPF_ST,
    BPF_STX,
    BPF_SUB,
    BPF_TO_BE,
    BPF_TO_LE,
    BPF_W,
    BPF_X,
    BPF_XCHG,
    BPF_XOR,
    LD_IMM64,
    Insn,
    encode,
)

_ALU = {"add": BPF_ADD, "sub": BPF_SUB, "mul": BPF_MUL, "div": BPF_DIV, "sdiv": BPF_DIV, "or": BPF_OR,
        "and": BPF_AND, "lsh": BPF_LSH, "rsh": BPF_RSH, "neg": BPF_NEG, "mod": BPF_MOD, "smod": BPF_MOD,
        "xor": BPF_XOR, "mov": BPF_MOV, "arsh": BPF_ARSH}
_JMP = {"jeq": BPF_JEQ, "jgt": BPF_JGT, "jge": BPF_JGE, "jset": BPF_JSET, "jne": BPF_JNE, "jsgt": BPF_JSGT,
        "jsge": BPF_JSGE, "jlt": BPF_JLT, "jle": BPF_JLE, "jslt": BPF_JSLT, "jsle": BPF_JSLE}
_SIZES = {"b": BPF_B, "h": BPF_H, "w": BPF_W, "dw": BPF_DW}
_ATOMIC = {"add": BPF_ADD, "or": BPF_OR, "and": BPF_AND, "xor": BPF_XOR}


class AsmError(ValueError):
    pass


def _reg(text: str) -> int:
    name = text.lstrip("%")
    if not name.startswith("r") or not name[1:].isdigit() or int(name[1:]) > 10:
        raise AsmError(f"invalid register {text!r}")
    return int(name[1:])


def _imm(text: str, bits: int = 32) -> int:
    """An immediate as the conformance assembler reads it (stoull, then truncated), signed."""
    value = int(text, 0) & ((1 << bits) - 1)
    return value - (1 << bits) if value >> (bits - 1) else value


def _mem(text: str) -> tuple[int, int]:
    """`[%r1+4]` -> (1, 4)."""
    if not (text.startswith("[") and text.endswith("]")):
        raise AsmError(f"invalid memory operand {text!r}")
    inner = text[1:-1]
    for sign in "+-":
        if sign in inner[1:]:
            reg, off = inner.split(sign, 1)
            return _reg(reg), _imm(sign + off, 16)
    return _reg(inner), 0


class _Assembler:
    def __init__(self) -> None:
        self.insns: list[Insn] = []
        self.labels: dict[str, int] = {}
        self.fixups: list[tuple[int, str, bool]] = []  # (index, label, patch imm instead of off)

    def target(self, text: str, use_imm: bool = False) -> int:
        if text[0] in "+-":
            return _imm(text, 32 if use_imm else 16)
        self.fixups.append((len(self.insns), text, use_imm))
        return 0

    def line(self, line: str) -> None:
        line = line.split("#", 1)[0].strip()
        if not line:
            return
        if line.endswith(":"):
            self.labels[line[:-1]] = len(self.insns)
            return
        mnemonic, _, rest = line.partition(" ")
        ops = [o.strip() for o in rest.split(",")] if rest.strip() else []
        if mnemonic == "lock":
            self.atomic(ops)
        else:
            self.insn(mnemonic, ops)

    def insn(self, m: str, ops: list[str]) -> None:
        add = self.insns.append
        base = m[:-2] if m.endswith("32") and m[:-2] in {**_ALU, **_JMP} else m
        is32 = base != m
        if m == "exit":
            self.labels.setdefault("exit", len(self.insns))
            add(Insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0))
        elif m == "ja":
            add(Insn(BPF_JMP | BPF_JA, 0, 0, self.target(ops[0]), 0))
        elif m == "gotol":  # JMP32 | JA: the offset is the 32-bit immediate
            add(Insn(BPF_JMP32 | BPF_JA, 0, 0, 0, self.target(ops[0], use_imm=True)))
        elif m == "call":
            words = ops[0].split()
            mode, target = words if len(words) == 2 else ("helper", words[0])
            if mode == "local":
                add(Insn(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_CALL, 0, self.target(target, use_imm=True)))
            else:
                add(Insn(BPF_JMP | BPF_CALL, 0, 0, 0, _imm(target)))
        elif base in _JMP:
            cls = BPF_JMP32 if is32 else BPF_JMP
            dst = _reg(ops[0])
            if ops[1].startswith(("%", "r")):
                add(Insn(cls | _JMP[base] | BPF_X, dst, _reg(ops[1]), self.target(ops[2]), 0))
            else:
                add(Insn(cls | _JMP[base] | BPF_K, dst, 0, self.target(ops[2]), _imm(ops[1])))
        elif m == "lddw" and ops[1].startswith("map_by_fd("):  # BPF_PSEUDO_MAP_FD of a numeric fd
            add(Insn(LD_IMM64, _reg(ops[0]), BPF_PSEUDO_MAP_FD, 0, int(ops[1][10:-1], 0)))
            add(Insn(0, 0, 0, 0, 0))
        elif m == "lddw":
            value = int(ops[1], 0) & ((1 << 64) - 1)
            add(Insn(LD_IMM64, _reg(ops[0]), 0, 0, _imm(str(value & 0xFFFFFFFF))))
            add(Insn(0, 0, 0, 0, _imm(str(value >> 32))))
        elif m.startswith("ldx"):
            signed = m.startswith("ldxs") and m[4:] in _SIZES and m[4:] != "dw"
            size = _SIZES[m[4:] if signed else m[3:]]
            src, off = _mem(ops[1])
            add(Insn(BPF_LDX | (BPF_MEMSX if signed else BPF_MEM) | size, _reg(ops[0]), src, off, 0))
        elif m.startswith("stx"):
            dst, off = _mem(ops[0])
            add(Insn(BPF_STX | BPF_MEM | _SIZES[m[3:]], dst, _reg(ops[1]), off, 0))
        elif m.startswith("st") and m[2:] in _SIZES:
            dst, off = _mem(ops[0])
            add(Insn(BPF_ST | BPF_MEM | _SIZES[m[2:]], dst, 0, off, _imm(ops[1])))
        elif m[:2] in ("le", "be") and m[2:] in ("16", "32", "64"):
            add(Insn(BPF_ALU | BPF_END | (BPF_TO_BE if m[:2] == "be" else BPF_TO_LE), _reg(ops[0]), 0, 0,
                     int(m[2:])))
        elif m.removeprefix("b").removeprefix("swap") in ("16", "32", "64") and m.startswith(("bswap", "swap")):
            add(Insn(BPF_ALU64 | BPF_END, _reg(ops[0]), 0, 0, int(m.removeprefix("b").removeprefix("swap"))))
        elif m.startswith("movsx"):
            bits, width = m[5:-2], m[-2:]
            add(Insn((BPF_ALU if width == "32" else BPF_ALU64) | BPF_MOV | BPF_X, _reg(ops[0]), _reg(ops[1]),
                     int(bits), 0))
        elif base in _ALU:
            cls = BPF_ALU if is32 else BPF_ALU64
            off = 1 if base in ("sdiv", "smod") else 0
            dst = _reg(ops[0])
            if base == "neg":
                add(Insn(cls | BPF_NEG, dst, 0, 0, 0))
            elif ops[1].startswith(("%", "r")):
                add(Insn(cls | _ALU[base] | BPF_X, dst, _reg(ops[1]), off, 0))
            else:
                add(Insn(cls | _ALU[base] | BPF_K, dst, 0, off, _imm(ops[1])))
        else:
            raise AsmError(f"invalid mnemonic {m!r}")

    def atomic(self, ops: list[str]) -> None:
        words = ops[0].split()
        fetch = words[0] == "fetch"
        name = words[1] if fetch else words[0]
        is32 = name.endswith("32")
        name = name[:-2] if is32 else name
        dst, off = _mem(words[-1])
        if name == "xchg":
            imm = BPF_XCHG
        elif name == "cmpxchg":
            imm = BPF_CMPXCHG
        else:
            imm = _ATOMIC[name] | (BPF_FETCH if fetch else 0)
        size = BPF_W if is32 else BPF_DW
        self.insns.append(Insn(BPF_STX | BPF_ATOMIC | size, dst, _reg(ops[1]), off, imm))

    def finish(self) -> bytes:
        for index, label, use_imm in self.fixups:
            if label not in self.labels:
                raise AsmError(f"invalid label {label!r}")
            rel = self.labels[label] - index - 1
            self.insns[index] = self.insns[index]._replace(**({"imm": rel} if use_imm else {"off": rel}))
        return encode(self.insns)


def assemble(text: str) -> bytes:
    """Bytecode for a program in the conformance assembler syntax."""
    assembler = _Assembler()
    for line in text.splitlines():
        assembler.line(line)
    return assembler.finish()


@dataclass
class ConformanceTest:
    name: str
    program: bytes
    memory: bytes
    result: int | None
    error: str | None


def parse_test(name: str, text: str) -> ConformanceTest:
    """A bpf_conformance `.data` file (src/bpf_test_parser.cc's sections)."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("--"):
            current = line[2:].strip()
            sections.setdefault(current, [])
        elif current is not None:
            sections[current].append(line)
    if "raw" in sections:
        words = [int(w, 0) for w in " ".join(sections["raw"]).split()]
        program = b"".join(w.to_bytes(8, "little") for w in words)
    else:
        program = assemble("\n".join(sections.get("asm", [])))
    memory = bytes(int(b, 16) for b in " ".join(sections.get("mem", [])).split())
    result_lines = [line.strip() for line in sections.get("result", []) if line.strip()]
    error_lines = [line.strip() for line in sections.get("error", []) if line.strip()]
    return ConformanceTest(name, program, memory, int(result_lines[0], 0) if result_lines else None,
                           error_lines[0] if error_lines else None)
