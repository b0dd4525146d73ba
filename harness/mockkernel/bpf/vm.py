"""The eBPF execution engine: bytecode translated to Python once, at load.

Models kernel/bpf/core.c (___bpf_prog_run, the interpreter every JIT must
agree with) and the structural checks of kernel/bpf/verifier.c
(check_subprogs, check_cfg, resolving pseudo calls and map loads). Each BPF
function (the program and every subprogram it calls) becomes one Python
function with the eleven registers as locals: straight-line code per basic
block. A jump to a short exit block (`r0 = 2; exit`) becomes a copy of that
block (`if r3 > r2: return r0`). Other jumps set `pc`, and the blocks such a
jump skips over are guarded by `if pc <= start:` in a balanced tree, so
falling through costs one comparison and a forward jump skips whole
subtrees; blocks no jump skips run unguarded, so code whose only jumps are
early exits runs as straight Python. A function that jumps backwards gets a
`while` loop and every block guarded. Local calls are Python calls with a
fresh 512-byte stack frame (MAX_BPF_STACK) per call depth. A function of
more than CHUNK_INSNS instructions is cut into chunks of consecutive blocks,
each a Python function compiled on its own (compile() needs several KB per
line of source at its peak) and called by a driver with the registers in a
list; smaller ones, every real program, stay one function.

Memory is one flat 64-bit address space (`AddressSpace`): the upper bits of
an address select a region (the packet, the context, a stack frame, a map
value, global data), the low 24 bits are the offset inside it. Packet
addresses fit in 32 bits, so the context's `data`/`data_end` fields hold
them exactly as the kernel's rewritten context loads would (and packet and
stack addresses stay below 2**30, where CPython's integers are fastest).
Every access is bounds-checked by the region itself; an access outside
every region, a write to read-only memory (.rodata, xdp_md) or a helper
refusing its arguments stops the program with a `BpfFault` naming the
instruction: the mock's stand-in for a verifier rejection. Consecutive loads
(or stores) of 2, 4 or 8 bytes at adjacent offsets through one base register
are one struct call; should it fail, the accesses run again one by one, so
the fault names the instruction that is outside and memory holds what the
instructions in order leave. What the verifier proves statically and this
engine does not check: pointer provenance (an address computed from a
packet pointer that lands inside another valid region is not caught),
uninitialised registers and stack (both read as zero), the stack depth
summed over call frames, and the context's field-by-field rules (xdp_md is
read-only as a whole; a write to a read-only __sk_buff field faults when
the program returns, see context.py).

Within a basic block, and on into the next when that is entered only by
falling through (no jump goes there: past an inlined exit, for one), the
translator keeps a little of the verifier's value tracking (how many bits a
register can hold, which registers' regions are already looked up) to drop
masks, wrap-around tests and region lookups that cannot matter.
"""
from __future__ import annotations

import bisect
import itertools
import struct
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.mockkernel.bpf.insn import (
    BPF_ABS,
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
    BPF_IND,
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
    BPF_LD,
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
    BPF_PSEUDO_MAP_VALUE,
    BPF_RSH,
    BPF_ST,
    BPF_STX,
    BPF_SUB,
    BPF_TO_BE,
    BPF_W,
    BPF_X,
    BPF_XCHG,
    BPF_XOR,
    LD_IMM64,
    SIZE_BYTES,
    Insn,
    disasm,
)

if TYPE_CHECKING:
    from harness.mockkernel.bpf.core import BpfProgram

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1
SIGN64 = 1 << 63
SEG_SHIFT = 24  # regions of up to 16 MiB
OFF_MASK = (1 << SEG_SHIFT) - 1
SEG_PACKET, SEG_CTX, SEG_STACK = 1, 2, 3
PACKET_BASE = SEG_PACKET << SEG_SHIFT
CTX_ADDR = SEG_CTX << SEG_SHIFT
MAX_BPF_STACK = 512
MAX_CALL_FRAMES = 8  # include/linux/bpf_verifier.h
MAX_TAIL_CALL_CNT = 33  # include/linux/bpf.h
_FIRST_DYNAMIC_SEG = SEG_STACK + MAX_CALL_FRAMES
_LEAF_BLOCKS = 4  # blocks per innermost group of the dispatch tree
CHUNK_INSNS = 2048  # a function longer than this is translated in chunks of about this size
_REGISTERS = "r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10"
_INLINE_EXIT_INSNS = 3  # an exit block this short is copied to the jumps that go to it
_MAX_RUN = 8  # adjacent accesses one struct call may do
_FRAME_POINTER_BITS = (((SEG_STACK + MAX_CALL_FRAMES) << SEG_SHIFT) + MAX_BPF_STACK).bit_length()


class BpfLoadError(ValueError):
    """The program would not load: what the kernel's verifier or loader rejects
    before anything runs (bad opcode, jump out of range, unknown helper...).
    `verifier_message` is the kernel verifier's own text for the refusal."""

    verifier_message = ""


class BpfFault(RuntimeError):
    """The program stopped: an access outside every valid region, a write to
    read-only memory, a helper refusing its arguments. `insn` is the index of
    the instruction in its section, `section` the section."""

    def __init__(self, message: str, insn: int | None = None, section: str = "") -> None:
        super().__init__(message)
        self.insn = insn
        self.section = section


class TailCall(Exception):
    """bpf_tail_call() succeeded: the running program ends, `prog` starts on
    the same context (kernel/bpf/core.c JMP_TAIL_CALL never returns)."""

    def __init__(self, prog: BpfProgram) -> None:
        super().__init__(prog.name)
        self.prog = prog


class PacketLoadAbort(Exception):
    """A legacy BPF_ABS/BPF_IND load beyond the packet: the program exits with 0."""


BUFFER_TYPES = (bytearray, memoryview)  # region types that hold bytes


class AddressSpace:
    """Regions of the mock's flat address space, by segment number (address >> SEG_SHIFT).

    A region is a bytearray or memoryview (its length bounds every access;
    a read-only memoryview refuses writes) or, for a map's own address, the
    map object (any load or store through it fails). Segment 0 is never
    mapped, so NULL and small integers fault."""

    def __init__(self) -> None:
        self.regions: dict[int, Any] = {}
        self.names: dict[int, str] = {SEG_PACKET: "packet", SEG_CTX: "context"}
        self.stacks = [bytearray(MAX_BPF_STACK) for _ in range(MAX_CALL_FRAMES)]
        # what a call clears its frame through: a memoryview's slice assignment is
        # several times faster than a bytearray's
        self.stack_views = [memoryview(stack) for stack in self.stacks]
        self.stack_tops = [((SEG_STACK + depth) << SEG_SHIFT) + MAX_BPF_STACK for depth in range(MAX_CALL_FRAMES)]
        for depth, stack in enumerate(self.stacks):
            self.regions[SEG_STACK + depth] = stack
            self.names[SEG_STACK + depth] = f"stack frame {depth}"
        self._next_seg = _FIRST_DYNAMIC_SEG
        self._free: list[int] = []

    def map(self, region: Any, name: str) -> int:
        """Give `region` a segment; returns the address of its first byte."""
        if isinstance(region, BUFFER_TYPES) and len(region) > OFF_MASK + 1:
            raise ValueError(f"{name}: {len(region)} bytes do not fit a {OFF_MASK + 1}-byte segment")
        if self._free:
            seg = self._free.pop()
        else:
            seg, self._next_seg = self._next_seg, self._next_seg + 1
        self.regions[seg] = region
        self.names[seg] = name
        return seg << SEG_SHIFT

    def unmap(self, addr: int) -> None:
        seg = addr >> SEG_SHIFT
        del self.regions[seg]
        del self.names[seg]
        self._free.append(seg)

    def region(self, addr: int, size: int, access: str) -> tuple[Any, int]:
        """The region holding [addr, addr+size) and the offset in it, or a BpfFault."""
        region = self.regions.get(addr >> SEG_SHIFT)
        off = addr & OFF_MASK
        if region.__class__ not in BUFFER_TYPES or off + size > len(region) or size < 0:
            raise BpfFault(f"{access} of {size} bytes at {self.describe(addr)} is outside every valid region")
        return region, off

    def read(self, addr: int, size: int) -> bytes:
        region = self.regions.get(addr >> SEG_SHIFT)
        off = addr & OFF_MASK
        if region.__class__ in BUFFER_TYPES and 0 <= size and off + size <= len(region):
            return bytes(region[off:off + size])
        raise BpfFault(f"read of {size} bytes at {self.describe(addr)} is outside every valid region")

    def write(self, addr: int, data: bytes) -> None:
        region, off = self.region(addr, len(data), "write")
        if region.__class__ is memoryview and region.readonly:
            raise BpfFault(f"write of {len(data)} bytes to read-only {self.describe(addr)}")
        region[off:off + len(data)] = data

    def describe(self, addr: int) -> str:
        seg, off = addr >> SEG_SHIFT, addr & OFF_MASK
        if seg == 0:
            return f"NULL{addr:+#x}" if addr else "NULL"
        name = self.names.get(seg)
        if name is None:
            return f"unmapped address {addr:#x}"
        region = self.regions.get(seg)
        size = len(region) if isinstance(region, BUFFER_TYPES) else 0
        return f"{name}+{off:#x} (size {size:#x})"


@dataclass(frozen=True)
class MapReloc:
    """An LD_IMM64 resolved by the loader: the map's address, or with
    `value_off` the address of byte `value_off` of the map's first value
    (BPF_PSEUDO_MAP_VALUE: global data)."""

    map: Any
    value_off: int | None = None


@dataclass(frozen=True)
class CallReloc:
    """A BPF-to-BPF call resolved by the loader: instruction `target` of `section`."""

    section: str
    target: int


@dataclass
class CodeSection:
    """One ELF section of instructions (or a raw program) and the loader's
    relocations by instruction index."""

    name: str
    insns: list[Insn]
    relocs: dict[int, MapReloc | CallReloc]


# Struct methods the generated code calls: loads (unpack_from) and stores (pack_into).
# (byte accesses index the region directly)
_LOADS = {(BPF_H, False): "U16", (BPF_W, False): "U32", (BPF_DW, False): "U64", (BPF_H, True): "S16",
          (BPF_W, True): "S32"}
_STORES = {BPF_H: "P16", BPF_W: "P32", BPF_DW: "P64"}
_SIZE_MASKS = {BPF_B: "0xFF", BPF_H: "0xFFFF", BPF_W: "0xFFFFFFFF", BPF_DW: "0xFFFFFFFFFFFFFFFF"}


def _sdiv(a: int, b: int, bits: int) -> int:
    mask, sign = (1 << bits) - 1, 1 << (bits - 1)
    a, b = ((a & mask) ^ sign) - sign, ((b & mask) ^ sign) - sign
    if b == 0:
        return 0
    q = abs(a) // abs(b)
    return (q if (a < 0) == (b < 0) else -q) & mask


def _smod(a: int, b: int, bits: int) -> int:
    mask, sign = (1 << bits) - 1, 1 << (bits - 1)
    a, b = ((a & mask) ^ sign) - sign, ((b & mask) ^ sign) - sign
    if b == 0:
        return a & mask
    r = abs(a) % abs(b)
    return (-r if a < 0 else r) & mask


MAX_RUN_INSNS = 16 * 1_000_000  # per run: 16 times what the verifier walks at most (BPF_COMPLEXITY_LIMIT_INSNS)


def _budget_exhausted() -> BpfFault:
    return BpfFault("the run spent its budget of instructions in loops (the verifier bounds every loop: "
                    "a mock bug or an unverified program)")


def _call_too_deep() -> BpfFault:
    return BpfFault(f"the call stack is deeper than {MAX_CALL_FRAMES} frames")


def _runtime_names() -> dict[str, Any]:
    names: dict[str, Any] = {
        "SDIV64": lambda a, b: _sdiv(a, b, 64), "SMOD64": lambda a, b: _smod(a, b, 64),
        "SDIV32": lambda a, b: _sdiv(a, b, 32), "SMOD32": lambda a, b: _smod(a, b, 32),
        "BSWAP64": lambda x: int.from_bytes(x.to_bytes(8, "little"), "big"),
    }
    formats = {BPF_H: "h", BPF_W: "i", BPF_DW: "q"}
    for (size, signed), name in _LOADS.items():
        names[name] = struct.Struct("<" + (formats[size] if signed else formats[size].upper())).unpack_from
    for size, name in _STORES.items():
        names[name] = struct.Struct("<" + formats[size].upper()).pack_into
    return names


_RUNTIME_NAMES = _runtime_names()
_ALU64 = {  # add and sub: Translator._add64
    BPF_MUL: "{d} = ({d} * {s}) & 0xFFFFFFFFFFFFFFFF", BPF_OR: "{d} = {d} | {s}", BPF_AND: "{d} = {d} & {s}",
    BPF_XOR: "{d} = {d} ^ {s}", BPF_MOV: "{d} = {s}", BPF_NEG: "{d} = -{d} & 0xFFFFFFFFFFFFFFFF",
    BPF_LSH: "{d} = ({d} << {sh}) & 0xFFFFFFFFFFFFFFFF", BPF_RSH: "{d} = {d} >> {sh}",
    BPF_ARSH: "{d} = ((({d} ^ 0x8000000000000000) - 0x8000000000000000) >> {sh}) & 0xFFFFFFFFFFFFFFFF",
}
_ALU32 = {
    BPF_ADD: "{d} = ({d} + {s}) & 0xFFFFFFFF", BPF_SUB: "{d} = ({d} - {s}) & 0xFFFFFFFF",
    BPF_MUL: "{d} = ({d} * {s}) & 0xFFFFFFFF", BPF_OR: "{d} = ({d} | {s}) & 0xFFFFFFFF",
    BPF_AND: "{d} = {d} & {s} & 0xFFFFFFFF", BPF_XOR: "{d} = ({d} ^ {s}) & 0xFFFFFFFF",
    BPF_MOV: "{d} = {s} & 0xFFFFFFFF", BPF_NEG: "{d} = -{d} & 0xFFFFFFFF",
    BPF_LSH: "{d} = ({d} << {sh}) & 0xFFFFFFFF", BPF_RSH: "{d} = ({d} & 0xFFFFFFFF) >> {sh}",
    BPF_ARSH: "{d} = (((({d} & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000) >> {sh}) & 0xFFFFFFFF",
}
_JMP_OPS = {BPF_JEQ: "==", BPF_JNE: "!=", BPF_JGT: ">", BPF_JGE: ">=", BPF_JLT: "<", BPF_JLE: "<=",
            BPF_JSGT: ">", BPF_JSGE: ">=", BPF_JSLT: "<", BPF_JSLE: "<="}
_SIGNED_JMPS = (BPF_JSGT, BPF_JSGE, BPF_JSLT, BPF_JSLE)


class _Function:
    """One BPF function (program entry or subprogram) being translated."""

    def __init__(self, key: tuple[str, int], pyname: str) -> None:
        self.key = key
        self.pyname = pyname


class Translator:
    """Translates the functions reachable from one program entry into Python
    source, compiled once. `helpers` maps helper ids to (name, callable)."""

    _serial = itertools.count()

    def __init__(self, sections: dict[str, CodeSection], helpers: dict[int, tuple[str, Callable]],
                 map_by_fd: Callable[[int], Any], mem: AddressSpace, ld_abs: Callable[[int, int], int] | None,
                 count_insns: bool, insn_counter: list[int], run_budget: list[int]) -> None:
        self.sections = sections
        self.helpers = helpers
        self.map_by_fd = map_by_fd
        self.count_insns = count_insns
        self.functions: dict[tuple[str, int], _Function] = {}
        self.entry_key: tuple[str, int] | None = None
        self.lines: list[str] = []
        # functions too long for one compile(): their chunks' (source lines, line insns, the driver's chunk list)
        self._chunks: list[tuple[list[str], list, list]] = []
        self._chunk_range: tuple[int, int] | None = None  # the instructions of the chunk being emitted
        self.line_insns: list[tuple[str, int] | None] = []  # per source line (1-based: index - 1)
        self.reachable: dict[str, set[int]] = {}
        # registers whose region and offset (bN, oN) the current block has already computed
        self._cached: set[int] = set()
        # bits known to hold a register's value in the current block (absent: 64), to drop masks
        self._width: dict[int, int] = {}
        self._current_end = 0
        # the current function's short exit blocks by start: (start, end)
        self._exit_blocks: dict[int, tuple[int, int]] = {}
        # per block start: where the chain of blocks it heads (each continuing the last) ends
        self._lookahead_ends: dict[int, int] = {}
        self.has_ld_abs = ld_abs is not None
        self.closure: dict[str, Any] = dict(_RUNTIME_NAMES, M=mem.regions, STACKS=mem.stacks,
                                            STACK_VIEWS=mem.stack_views, STACK_TOPS=mem.stack_tops,
                                            ZERO_STACK=bytes(MAX_BPF_STACK),
                                            MAX_CALL_FRAMES=MAX_CALL_FRAMES, CALL_TOO_DEEP=_call_too_deep,
                                            LD_ABS=ld_abs, IC=insn_counter, ACCESS_FAULTS=FAULTS,
                                            RUN_BUDGET=run_budget, BUDGET_EXHAUSTED=_budget_exhausted)

    def _emit(self, indent: int, text: str, where: tuple[str, int] | None = None) -> None:
        self.lines.append("    " * indent + text)
        self.line_insns.append(where)

    def _function(self, section: str, entry: int) -> _Function:
        key = (section, entry)
        if key not in self.functions:
            self.functions[key] = _Function(key, f"f{len(self.functions)}")
        return self.functions[key]

    def compile(self, section: str, entry: int, name: str) -> tuple[Callable, CompiledInfo]:
        """The Python function for the program at `section`/`entry`, and what
        maps its source lines back to instructions (faults name them)."""
        self.entry_key = (section, entry)
        pending = [self._function(section, entry)]
        done: set[tuple[str, int]] = set()
        bodies: list[tuple[list[str], list]] = []
        while pending:
            func = pending.pop()
            if func.key in done:
                continue
            done.add(func.key)
            self.lines, self.line_insns = [], []
            self._translate_function(func)
            bodies.append((self.lines, self.line_insns))
            pending.extend(f for f in self.functions.values() if f.key not in done)
        params = sorted(self.closure)
        header = f"def __make({', '.join(params)}):"
        source_lines, line_insns = [header], [None]
        for lines, wheres in bodies:
            source_lines += lines
            line_insns += wheres
        source_lines.append(f"    return {{{', '.join(f'{f.pyname!r}: {f.pyname}' for f in self.functions.values())}}}")
        line_insns.append(None)
        functions, info = self._compile_unit(name, source_lines, line_insns, params)
        for chunk_lines, chunk_wheres, chunk_list in self._chunks:  # each its own compile(): a bounded peak
            self.closure.update(functions)
            chunk_params = sorted(self.closure)
            chunk_lines[0] = f"def __make({', '.join(chunk_params)}):"
            chunk_fn, chunk_info = self._compile_unit(name, chunk_lines, chunk_wheres, chunk_params)
            chunk_list.append(next(iter(chunk_fn.values())))
            info.parts.append(chunk_info)
        return functions[self.functions[(section, entry)].pyname], info

    def _compile_unit(self, name: str, source_lines: list[str], line_insns: list, params: list[str]) -> tuple:
        """Compile one `__make` and call it: the functions it returns by name, and its CompiledInfo."""
        filename = f"<bpf {name} #{next(self._serial)}>"
        namespace: dict[str, Any] = {}
        exec(compile("\n".join(source_lines) + "\n", filename, "exec"), namespace)  # noqa: S102 - our own output
        functions = namespace["__make"](**{p: self.closure[p] for p in params})
        info = CompiledInfo(filename, line_insns, self.sections, self.helpers, self.reachable)
        _COMPILED[filename] = info
        return functions, info

    # control flow

    def _blocks(self, section: CodeSection, entry: int) -> tuple[list[int], set[int], bool]:
        """Reachable basic-block starts (sorted), reachable instructions, and
        whether any jump goes backwards (check_cfg, in spirit)."""
        insns = section.insns
        n = len(insns)
        starts, seen, work = {entry}, set(), [entry]
        backward = False
        while work:
            pc = work.pop()
            while True:
                if pc < 0 or pc >= n:
                    raise BpfLoadError(f"{section.name}: jump out of range to insn {pc}")
                if pc in seen:
                    break
                seen.add(pc)
                insn = insns[pc]
                width = 2 if insn.code == LD_IMM64 else 1
                op, cls = insn.code & 0xF0, insn.cls
                if cls in (BPF_JMP, BPF_JMP32) and op != BPF_CALL:
                    if op == BPF_EXIT:
                        break
                    target = _jump_target(pc, insn)
                    if not 0 <= target < n:
                        raise BpfLoadError(f"{section.name} insn {pc}: jump out of range to insn {target}")
                    backward |= target <= pc
                    starts.add(target)
                    work.append(target)
                    if op == BPF_JA:
                        break
                    starts.add(pc + 1)
                pc += width
                if pc >= n:
                    raise BpfLoadError(f"{section.name} insn {pc - width}: falls off the end of the code")
        tails = {pc + 1 for pc in seen if insns[pc].code == LD_IMM64}
        if tails & starts:
            raise BpfLoadError(f"{section.name}: jump into the middle of LD_IMM64 at insn {min(tails & starts) - 1}")
        return sorted(starts), seen, backward

    def _translate_function(self, func: _Function) -> None:
        section_name, entry = func.key
        section = self.sections[section_name]
        starts, reachable, backward = self._blocks(section, entry)
        self.reachable.setdefault(section_name, set()).update(reachable)
        uses_stack = any(10 in (section.insns[pc].dst, section.insns[pc].src) for pc in reachable)
        start_set = set(starts)
        blocks = [(start, self._block_end(section, start, start_set, reachable)) for start in starts]
        self._exit_blocks = {start: (start, end) for start in starts if (end := _short_exit(section, start))}
        jumps = self._pc_jumps(section, reachable)
        # blocks some jump skips (all of them in a loop) need a guard; blocks that are
        # no jump's target and follow one that falls through are entered from it only
        guarded = start_set if backward else _skipped(starts, jumps, len(section.insns))
        targets = {target for _, target in jumps}
        continuing = {start for (_, prev_end), (start, _) in zip(blocks, blocks[1:])
                      if start not in guarded and start not in targets and _falls_through(section, prev_end)}
        self._lookahead_ends = {}
        for start, end in reversed(blocks):
            self._lookahead_ends[start] = self._lookahead_ends.get(end, end) if end in continuing else end
        if len(reachable) > CHUNK_INSNS:
            self._translate_in_chunks(func, section, blocks)
            return
        self._emit(1, f"def {func.pyname}(r1, r2=0, r3=0, r4=0, r5=0, depth=0):")
        if func.key != self.entry_key:
            self._emit(2, "if depth >= MAX_CALL_FRAMES: raise CALL_TOO_DEEP()")
        self._emit(2, "r0 = r6 = r7 = r8 = r9 = 0")
        if uses_stack:
            self._emit(2, "S = STACKS[depth]; STACK_VIEWS[depth][:] = ZERO_STACK; r10 = STACK_TOPS[depth]")
        if guarded:
            self._emit(2, f"pc = {entry}")
        indent = 2
        if backward:  # a loop spends the run's budget by the instructions it spans, each time round
            self._emit(2, "while RUN_BUDGET[0] >= 0:")
            indent = 3
        run: list[tuple[int, int]] = []  # consecutive guarded blocks, emitted as one tree
        for start, end in blocks:
            if start in guarded:
                run.append((start, end))
                continue
            if run:
                self._emit_tree(section, run, indent)
                run = []
            self._emit_block(section, start, end, indent, continues=start in continuing)
        if run:
            self._emit_tree(section, run, indent)
        if backward:
            self._emit(2, "raise BUDGET_EXHAUSTED()")

    def _translate_in_chunks(self, func: _Function, section: CodeSection, blocks: list[tuple[int, int]]) -> None:
        """A function of more than CHUNK_INSNS instructions: a driver that calls
        chunk functions (consecutive blocks of about CHUNK_INSNS instructions,
        every block guarded, registers in the list R between them) until one
        returns a negative pc (the function exited, r0 in R[0]). Each chunk is
        compiled on its own, so translating stays within a bounded memory."""
        pieces = []  # a block longer than a chunk is cut (never inside an LD_IMM64): the parts fall through
        for start, end in blocks:
            while end - start > CHUNK_INSNS:
                cut = start + CHUNK_INSNS + (section.insns[start + CHUNK_INSNS - 1].code == LD_IMM64)
                pieces.append((start, cut))
                start = cut
            pieces.append((start, end))
        groups: list[list[tuple[int, int]]] = [[]]
        size = 0
        for start, end in pieces:
            if size >= CHUNK_INSNS:
                groups.append([])
                size = 0
            groups[-1].append((start, end))
            size += end - start
        chunk_list: list[Callable] = []
        starts_name, chunks_name = f"STARTS_{func.pyname}", f"CHUNKS_{func.pyname}"
        self.closure[starts_name] = [group[0][0] for group in groups]
        self.closure[chunks_name] = chunk_list
        self.closure["bisect_right"] = bisect.bisect_right
        self._emit(1, f"def {func.pyname}(r1, r2=0, r3=0, r4=0, r5=0, depth=0):")
        if func.key != self.entry_key:
            self._emit(2, "if depth >= MAX_CALL_FRAMES: raise CALL_TOO_DEEP()")
        self._emit(2, "STACK_VIEWS[depth][:] = ZERO_STACK")
        self._emit(2, "R = [0, r1, r2, r3, r4, r5, 0, 0, 0, 0, STACK_TOPS[depth]]")
        self._emit(2, f"pc = {func.key[1]}")
        self._emit(2, "while pc >= 0:")
        self._emit(3, f"pc = {chunks_name}[bisect_right({starts_name}, pc) - 1](R, pc, depth)")
        self._emit(2, "return R[0]")
        main_lines, main_wheres = self.lines, self.line_insns
        for index, group in enumerate(groups):
            end = groups[index + 1][0][0] if index + 1 < len(groups) else len(section.insns)
            self.lines, self.line_insns = [""], [None]  # the header once the closure is complete
            self._chunk_range = (group[0][0], end)
            self._emit(1, f"def {func.pyname}_{index}(R, pc, depth):")
            self._emit(2, f"{_REGISTERS} = R")
            self._emit(2, "S = STACKS[depth]")
            self._emit(2, "while RUN_BUDGET[0] >= 0:")
            self._emit_tree(section, group, 3)
            self._emit(3, f"R[:] = {_REGISTERS}; return {end}")
            self._emit(2, "raise BUDGET_EXHAUSTED()")
            self._emit(1, f"return {{{func.pyname + '_' + str(index)!r}: {func.pyname}_{index}}}")
            self._chunks.append((self.lines, self.line_insns, chunk_list))
        self._chunk_range = None
        self.lines, self.line_insns = main_lines, main_wheres

    def _pc_jumps(self, section: CodeSection, reachable: set[int]) -> list[tuple[int, int]]:
        """(pc, target) of the jumps that set `pc` (all but those to an inlined exit block)."""
        jumps = []
        for pc in reachable:
            target = _jump_target(pc, section.insns[pc])
            if target is not None and target not in self._exit_blocks:
                jumps.append((pc, target))
        return jumps

    @staticmethod
    def _block_end(section: CodeSection, start: int, starts: set[int], reachable: set[int]) -> int:
        pc = start
        n = len(section.insns)
        while True:
            insn = section.insns[pc]
            nxt = pc + (2 if insn.code == LD_IMM64 else 1)
            op = insn.code & 0xF0
            if insn.cls in (BPF_JMP, BPF_JMP32) and op != BPF_CALL:
                return nxt
            if nxt >= n or nxt in starts or nxt not in reachable:
                return nxt
            pc = nxt

    def _emit_tree(self, section: CodeSection, blocks: list[tuple[int, int]], indent: int) -> None:
        if len(blocks) <= _LEAF_BLOCKS:
            for start, end in blocks:
                self._emit(indent, f"if pc <= {start}:")
                self._emit_block(section, start, end, indent + 1)
            return
        half = len(blocks) // 2
        self._emit(indent, f"if pc <= {blocks[half - 1][0]}:")
        self._emit_tree(section, blocks[:half], indent + 1)
        self._emit_tree(section, blocks[half:], indent)

    def _emit_block(self, section: CodeSection, start: int, end: int, indent: int, continues: bool = False) -> None:
        """The code of one block. A block that `continues` the one emitted before
        it (entered only by falling through from it) keeps what the translator
        knows about the registers; `_current_end` reaches to the end of that chain."""
        if self.count_insns:
            self._emit(indent, f"IC[0] += {sum(1 for pc in range(start, end) if not self._is_imm64_tail(section, pc))}")
        if not continues:
            self._cached.clear()
            self._width.clear()
            self._current_end = self._lookahead_ends.get(start, end)
        pc = start
        while pc < end:
            insn = section.insns[pc]
            exit_block = self._exit_blocks.get(_jump_target(pc, insn))
            if exit_block is not None:  # the jump ends this block: the exit block's code in place of `pc = target`
                condition = self._condition(section, pc, insn)
                if condition:
                    self._emit(indent, f"if {condition}:", (section.name, pc))
                known = set(self._cached), dict(self._width), self._current_end
                self._emit_block(section, *exit_block, indent + 1 if condition else indent)
                self._cached, self._width, self._current_end = known  # for the block after the jump
                return
            run = self._access_run(section, pc, end)
            if len(run) > 1:
                self._emit_access_run(section, run, indent)
                pc = run[-1] + 1
                continue
            for line in self._statement(section, pc, insn).split("\n"):
                self._emit(indent, line, (section.name, pc))
            self._track(insn)
            pc += 2 if insn.code == LD_IMM64 else 1

    def _track(self, insn: Insn) -> None:
        """What the translator knows after `insn`: register widths, cached regions."""
        self._track_width(insn)
        written = _written(insn)
        if written is None:
            self._cached.clear()
        else:
            self._cached -= written

    def _access_run(self, section: CodeSection, pc: int, end: int) -> list[int]:
        """The instructions from `pc` that load (or store) words of one size at
        adjacent offsets through one base register, the base unchanged until
        the last (and loads into distinct registers): one struct call can do
        them all. Just [pc] when there is no run."""
        first = section.insns[pc]
        kind = _plain_access(first)
        if kind is None:
            return [pc]
        base, size = _base_register(first), SIZE_BYTES[first.code & 0x18]
        run, low, high = [pc], first.off, first.off
        for later in range(pc + 1, min(end, pc + _MAX_RUN)):
            insn = section.insns[later]
            if (_plain_access(insn) != kind or _base_register(insn) != base or SIZE_BYTES[insn.code & 0x18] != size
                    or insn.off not in (low - size, high + size)
                    or (kind == BPF_LDX and (section.insns[later - 1].dst == base
                                             or insn.dst in (section.insns[i].dst for i in run)))):
                break
            run.append(later)
            low, high = min(low, insn.off), max(high, insn.off)
        return run

    def _emit_access_run(self, section: CodeSection, run: list[int], indent: int) -> None:
        """A run of adjacent accesses as one struct call. Outside the stack frame
        it may fault: then the accesses run again one by one, so the fault (or
        what memory holds) is the one the instructions give in order."""
        insns = [section.insns[pc] for pc in run]
        by_offset = sorted(insns, key=lambda insn: insn.off)
        size_code, base = insns[0].code & 0x18, _base_register(insns[0])
        n, size = len(run), SIZE_BYTES[size_code]
        setup, region, offset = self._location(section, run[0], base, by_offset[0].off, n * size)
        if insns[0].cls == BPF_LDX:
            name = f"{_LOADS[(size_code, False)]}x{n}"
            fused = f"{', '.join(f'r{insn.dst}' for insn in by_offset)} = {name}({region}, {offset})"
        else:
            name = f"{_STORES[size_code]}x{n}"
            fused = f"{name}({region}, {offset}, {', '.join(self._stored_value(insn) for insn in by_offset)})"
        if name not in self.closure:
            fmt = "<" + {BPF_H: "H", BPF_W: "I", BPF_DW: "Q"}[size_code] * n
            self.closure[name] = getattr(struct.Struct(fmt), "unpack_from" if name[0] == "U" else "pack_into")
        one_by_one = []  # each instruction's own code (translating it also checks it)
        for pc, insn in zip(run, insns):
            one_by_one += [(line, (section.name, pc)) for line in self._statement(section, pc, insn).split("\n")]
            self._track(insn)
        where = (section.name, run[0])
        if setup:
            self._emit(indent, setup.rstrip("; "), where)
        if region == "S":  # a constant offset inside the frame cannot fault
            self._emit(indent, fused, where)
            return
        self._emit(indent, "try:", where)
        self._emit(indent + 1, fused, where)
        self._emit(indent, "except ACCESS_FAULTS:", where)
        for line, line_where in one_by_one:
            self._emit(indent + 1, line, line_where)

    @staticmethod
    def _is_imm64_tail(section: CodeSection, pc: int) -> bool:
        return pc > 0 and section.insns[pc - 1].code == LD_IMM64

    # instructions

    def _fail(self, section: CodeSection, pc: int, why: str) -> BpfLoadError:
        insn = section.insns[pc]
        return BpfLoadError(f"{section.name} insn {pc} ({disasm(insn)}): {why}")

    def _statement(self, section: CodeSection, pc: int, insn: Insn) -> str:
        cls = insn.cls
        if insn.dst > 10 or insn.src > 10:
            raise self._fail(section, pc, "invalid register")
        if cls in (BPF_ALU, BPF_ALU64):
            return self._alu(section, pc, insn)
        if cls in (BPF_JMP, BPF_JMP32):
            return self._jmp(section, pc, insn)
        if cls == BPF_LDX:
            return self._ldx(section, pc, insn)
        if cls in (BPF_ST, BPF_STX):
            return self._store(section, pc, insn)
        return self._ld(section, pc, insn)

    def _check_dst(self, section: CodeSection, pc: int, reg: int) -> None:
        if reg == 10:
            raise self._fail(section, pc, "frame pointer is read only")

    def _bits(self, reg: int) -> int:
        return _FRAME_POINTER_BITS if reg == 10 else self._width.get(reg, 64)

    def _track_width(self, insn: Insn) -> None:
        """How many bits the destination of `insn` can need afterwards (a little of
        the verifier's value tracking: enough to know a mask or a wrap test is moot)."""
        cls, op, dst = insn.cls, insn.code & 0xF0, insn.dst
        written = _written(insn)
        if written is None:
            self._width.clear()
            return
        imm_bits = insn.imm.bit_length() if insn.imm >= 0 else 64
        src_bits = self._bits(insn.src) if insn.code & BPF_X else imm_bits
        before = self._bits(dst)
        for reg in written:
            self._width.pop(reg, None)
        bits = 64
        if cls == BPF_LDX and insn.code & 0xE0 == BPF_MEM:
            bits = SIZE_BYTES[insn.code & 0x18] * 8
        elif cls == BPF_LD and insn.code == LD_IMM64:
            return
        elif cls in (BPF_ALU, BPF_ALU64) and not (op == BPF_MOV and insn.off):
            if op == BPF_MOV:
                bits = src_bits
            elif op == BPF_AND:
                bits = min(before, src_bits)
            elif op in (BPF_OR, BPF_XOR):
                bits = max(before, src_bits)
            elif op == BPF_ADD and (insn.code & BPF_X or insn.imm >= 0):
                bits = max(before, src_bits) + 1
            elif op == BPF_RSH and not insn.code & BPF_X:
                bits = max(0, before - (insn.imm & 63))
            elif op == BPF_LSH and not insn.code & BPF_X:
                bits = before + (insn.imm & 63)
            if op == BPF_END:  # not a 32-bit operation in either class
                bits = insn.imm if insn.cls == BPF_ALU64 or insn.code & BPF_TO_BE else min(before, insn.imm)
            elif cls == BPF_ALU:
                bits = min(bits, 32)
        elif cls == BPF_STX and insn.code & 0xE0 == BPF_ATOMIC:
            bits = SIZE_BYTES[insn.code & 0x18] * 8
        if bits < 64 and written:
            self._width[dst if cls != BPF_STX else next(iter(written))] = bits

    def _alu(self, section: CodeSection, pc: int, insn: Insn) -> str:
        is64 = insn.cls == BPF_ALU64
        op, use_reg = insn.code & 0xF0, insn.code & BPF_X
        self._check_dst(section, pc, insn.dst)
        d = f"r{insn.dst}"
        if op == BPF_END:
            return self._endian(section, pc, insn, d)
        if use_reg:
            s = f"r{insn.src}"
            sh = f"({s} & {63 if is64 else 31})"
        else:
            if insn.src:
                raise self._fail(section, pc, "BPF_ALU uses reserved fields")
            s = str(insn.imm & (M64 if is64 else M32))
            sh = str(insn.imm & (63 if is64 else 31))
        if op == BPF_MOV and insn.off:
            return self._movsx(section, pc, insn, d, is64)
        if op in (BPF_DIV, BPF_MOD):
            return self._divmod(section, pc, insn, d, s, is64)
        if insn.off:
            raise self._fail(section, pc, "BPF_ALU uses reserved fields")
        if is64 and op in (BPF_ADD, BPF_SUB):
            return self._add64(insn, d, s)
        if is64 and op == BPF_LSH and not use_reg and self._bits(insn.dst) + int(sh) <= 64:
            return f"{d} = {d} << {sh}"
        if not is64 and op == BPF_MOV and use_reg and self._bits(insn.src) <= 32:
            return f"{d} = {s}"
        template = (_ALU64 if is64 else _ALU32).get(op)
        if template is None:
            raise self._fail(section, pc, f"invalid BPF_ALU opcode {insn.code:#04x}")
        return template.format(d=d, s=s, sh=sh)

    def _add64(self, insn: Insn, d: str, s: str) -> str:
        """64-bit add/sub as plain arithmetic plus a wrap-around test (cheaper
        than masking every result); a constant's sign picks the test, and an
        add of two values known to be narrower than 64 bits needs none."""
        if insn.code & BPF_X:
            grows = insn.code & 0xF0 == BPF_ADD
            expr = f"{d} + {s}" if grows else f"{d} - {s}"
            addend_bits = self._bits(insn.src)
        else:
            delta = insn.imm if insn.code & 0xF0 == BPF_ADD else -insn.imm
            grows = delta >= 0
            expr = f"{d} + {delta}" if grows else f"{d} - {-delta}"
            addend_bits = delta.bit_length()
        if grows and max(self._bits(insn.dst), addend_bits) < 64:
            return f"{d} = {expr}"
        wrap = f"if {d} > 0xFFFFFFFFFFFFFFFF: {d} -= 0x10000000000000000" if grows else \
            f"if {d} < 0: {d} += 0x10000000000000000"
        return f"{d} = {expr}\n{wrap}"

    def _movsx(self, section: CodeSection, pc: int, insn: Insn, d: str, is64: bool) -> str:
        bits = insn.off
        if not insn.code & BPF_X or bits not in ((8, 16, 32) if is64 else (8, 16)):
            raise self._fail(section, pc, "invalid MOVSX")
        mask, sign = (1 << bits) - 1, 1 << (bits - 1)
        return f"{d} = (((r{insn.src} & {mask:#x}) ^ {sign:#x}) - {sign:#x}) & {M64 if is64 else M32:#x}"

    def _divmod(self, section: CodeSection, pc: int, insn: Insn, d: str, s: str, is64: bool) -> str:
        op, signed = insn.code & 0xF0, insn.off == 1
        if insn.off not in (0, 1):
            raise self._fail(section, pc, "BPF_ALU uses reserved fields")
        if not insn.code & BPF_X and insn.imm == 0:
            raise self._fail(section, pc, "div by zero")
        if signed:
            fn = ("SDIV" if op == BPF_DIV else "SMOD") + ("64" if is64 else "32")
            return f"{d} = {fn}({d}, {s})"
        if is64:
            if op == BPF_DIV:
                return f"{d} = {d} // {s}" if not insn.code & BPF_X else f"{d} = {d} // {s} if {s} else 0"
            return f"{d} = {d} % {s}" if not insn.code & BPF_X else f"{d} = {d} % {s} if {s} else {d}"
        if not insn.code & BPF_X:
            return f"{d} = ({d} & 0xFFFFFFFF) {'//' if op == BPF_DIV else '%'} {s}"
        if op == BPF_DIV:
            return f"t = {s} & 0xFFFFFFFF; {d} = ({d} & 0xFFFFFFFF) // t if t else 0"
        return f"t = {s} & 0xFFFFFFFF; {d} = ({d} & 0xFFFFFFFF) % t if t else {d} & 0xFFFFFFFF"

    def _endian(self, section: CodeSection, pc: int, insn: Insn, d: str) -> str:
        bits = insn.imm
        if bits not in (16, 32, 64):
            raise self._fail(section, pc, "invalid BPF_END width")
        swap = insn.cls == BPF_ALU64 or insn.code & BPF_TO_BE
        if insn.cls == BPF_ALU64 and insn.code & BPF_X:
            raise self._fail(section, pc, "BPF_END uses reserved fields")
        if not swap:
            return f"{d} = {d} & {(1 << bits) - 1:#x}"
        if bits == 16:
            return f"{d} = (({d} & 0xFF) << 8) | (({d} >> 8) & 0xFF)"
        if bits == 32:
            return (f"{d} = (({d} & 0xFF) << 24) | (({d} & 0xFF00) << 8) | (({d} >> 8) & 0xFF00)"
                    f" | (({d} >> 24) & 0xFF)")
        return f"{d} = BSWAP64({d})"

    def _jmp(self, section: CodeSection, pc: int, insn: Insn) -> str:
        op, is32 = insn.code & 0xF0, insn.cls == BPF_JMP32
        if is32 and op in (BPF_CALL, BPF_EXIT):
            raise self._fail(section, pc, f"invalid BPF_JMP32 opcode {insn.code:#04x}")
        if op == BPF_EXIT:
            return "return r0" if self._chunk_range is None else "R[0] = r0; return -1"
        if op == BPF_CALL:
            return self._call(section, pc, insn)
        target = _jump_target(pc, insn)
        spent = f"; RUN_BUDGET[0] -= {pc - target + 1}" if target <= pc else ""
        if self._chunk_range is not None and not self._chunk_range[0] <= target < self._chunk_range[1]:
            goto = f"R[:] = {_REGISTERS}{spent}; return {target}"  # another chunk's: back to the driver
        else:
            goto = f"pc = {target}" + (f"{spent}; continue" if target <= pc else "")
        condition = self._condition(section, pc, insn)
        return f"if {condition}: {goto}" if condition else goto

    def _condition(self, section: CodeSection, pc: int, insn: Insn) -> str | None:
        """The condition of a conditional jump; None for BPF_JA."""
        op, is32 = insn.code & 0xF0, insn.cls == BPF_JMP32
        if op == BPF_JA:
            return None
        if op not in _JMP_OPS and op != BPF_JSET:
            raise self._fail(section, pc, f"invalid BPF_JMP opcode {insn.code:#04x}")
        d = f"r{insn.dst}"
        signed = op in _SIGNED_JMPS
        if insn.code & BPF_X:
            s = f"r{insn.src}"
            if is32:
                d, s = f"({d} & 0xFFFFFFFF)", f"({s} & 0xFFFFFFFF)"
                if signed:
                    d, s = f"({d} ^ 0x80000000)", f"({s} ^ 0x80000000)"
            elif signed:
                d, s = f"({d} ^ 0x8000000000000000)", f"({s} ^ 0x8000000000000000)"
        else:
            value = insn.imm & (M32 if is32 else M64)
            if is32:
                d = f"({d} & 0xFFFFFFFF)"
                if signed:
                    d, value = f"({d} ^ 0x80000000)", value ^ 0x80000000
            elif signed:
                d, value = f"({d} ^ 0x8000000000000000)", value ^ SIGN64
            s = str(value)
        return f"{d} & {s}" if op == BPF_JSET else f"{d} {_JMP_OPS[op]} {s}"

    def _call(self, section: CodeSection, pc: int, insn: Insn) -> str:
        reloc = section.relocs.get(pc)
        if isinstance(reloc, CallReloc):
            callee = self._function(reloc.section, reloc.target)
        elif insn.src == BPF_PSEUDO_CALL:
            callee = self._function(section.name, pc + 1 + insn.imm)
        elif insn.src == 0 and not insn.code & BPF_X:
            helper = self.helpers.get(insn.imm)
            if helper is None:
                raise self._fail(section, pc, f"unknown func #{insn.imm} (no such helper for this program type)")
            self.closure[f"H{insn.imm}"] = helper[1]
            return f"r0 = H{insn.imm}(r1, r2, r3, r4, r5)"
        else:
            raise self._fail(section, pc, "only helper and BPF-to-BPF calls are supported (no kfuncs, no callx)")
        target_section = self.sections.get(callee.key[0])
        if target_section is None or not 0 <= callee.key[1] < len(target_section.insns):
            raise self._fail(section, pc, "call to an invalid destination")
        return f"r0 = {callee.pyname}(r1, r2, r3, r4, r5, depth + 1)"

    def _location(self, section: CodeSection, pc: int, reg: int, off: int, size: int) -> tuple[str, str, str]:
        """How the instruction at `pc` reaches reg+off: a setup statement (may be
        empty), the region expression and the offset expression. Three ways: the
        frame's stack at a constant offset; a region and offset the block already
        took from the register (worth it when the block uses the register as a
        base again, with a non-negative displacement); or the full lookup."""
        pos = MAX_BPF_STACK + off
        if reg == 10 and 0 <= pos and pos + size <= MAX_BPF_STACK:
            return "", "S", str(pos)
        if off >= 0 and (reg in self._cached or self._base_reused(section, pc, reg)):
            setup = "" if reg in self._cached else f"b{reg} = M[r{reg} >> {SEG_SHIFT}]; o{reg} = r{reg} & {OFF_MASK:#x}; "
            self._cached.add(reg)
            return setup, f"b{reg}", f"o{reg} + {off}" if off else f"o{reg}"
        if off == 0:
            return "", f"M[r{reg} >> {SEG_SHIFT}]", f"r{reg} & {OFF_MASK:#x}"
        return f"a = r{reg} + {off}; ", f"M[a >> {SEG_SHIFT}]", f"a & {OFF_MASK:#x}"

    def _base_reused(self, section: CodeSection, pc: int, reg: int) -> bool:
        """Whether a later instruction of this block accesses memory through
        `reg` (unchanged, non-negative displacement) as the one at `pc` does."""
        written = _written(section.insns[pc])
        if written is None or reg in written:
            return False
        for later in range(pc + 1, self._current_end):
            insn = section.insns[later]
            if _base_register(insn) == reg and insn.off >= 0:
                return True
            written = _written(insn)
            if written is None or reg in written:
                return False
        return False

    def _ldx(self, section: CodeSection, pc: int, insn: Insn) -> str:
        size, mode = insn.code & 0x18, insn.code & 0xE0
        if mode not in (BPF_MEM, BPF_MEMSX) or (mode == BPF_MEMSX and size == BPF_DW):
            raise self._fail(section, pc, f"invalid BPF_LDX opcode {insn.code:#04x}")
        self._check_dst(section, pc, insn.dst)
        setup, region, offset = self._location(section, pc, insn.src, insn.off, SIZE_BYTES[size])
        if size == BPF_B:  # indexing a bytearray/memoryview yields the byte: no struct call
            value = f"{region}[{offset}]"
            if mode == BPF_MEMSX:
                value = f"(({value} ^ 0x80) - 0x80) & 0xFFFFFFFFFFFFFFFF"
        else:
            tail = " & 0xFFFFFFFFFFFFFFFF" if mode == BPF_MEMSX else ""
            value = f"{_LOADS[(size, mode == BPF_MEMSX)]}({region}, {offset})[0]{tail}"
        return f"{setup}r{insn.dst} = {value}"

    def _store(self, section: CodeSection, pc: int, insn: Insn) -> str:
        size, mode = insn.code & 0x18, insn.code & 0xE0
        if insn.cls == BPF_STX and mode == BPF_ATOMIC:
            return self._atomic(section, pc, insn)
        if mode != BPF_MEM:
            raise self._fail(section, pc, f"invalid store opcode {insn.code:#04x}")
        value = self._stored_value(insn)
        setup, region, offset = self._location(section, pc, insn.dst, insn.off, SIZE_BYTES[size])
        if size == BPF_B:
            return f"{setup}{region}[{offset}] = {value}"
        return f"{setup}{_STORES[size]}({region}, {offset}, {value})"

    def _stored_value(self, insn: Insn) -> str:
        """What a BPF_ST/BPF_STX stores: the immediate or the register, masked to
        the size unless the register is known to fit."""
        size = insn.code & 0x18
        if insn.cls == BPF_ST:
            return str(insn.imm & int(_SIZE_MASKS[size], 16))
        fits = size == BPF_DW or self._bits(insn.src) <= SIZE_BYTES[size] * 8
        return f"r{insn.src}" if fits else f"r{insn.src} & {_SIZE_MASKS[size]}"

    def _atomic(self, section: CodeSection, pc: int, insn: Insn) -> str:
        size = insn.code & 0x18
        if size not in (BPF_W, BPF_DW):
            raise self._fail(section, pc, "atomics are 32 or 64 bits")
        mask = _SIZE_MASKS[size]
        load, store = _LOADS[(size, False)], _STORES[size]
        setup, region, offset = self._location(section, pc, insn.dst, insn.off, SIZE_BYTES[size])
        head = f"{setup}b = {region}; o = {offset}; old = {load}(b, o)[0]; "
        s = f"r{insn.src}"
        op = insn.imm & ~BPF_FETCH
        if insn.imm == BPF_XCHG:
            return head + f"{store}(b, o, {s} & {mask}); {s} = old"
        if insn.imm == BPF_CMPXCHG:
            return head + f"{store}(b, o, {s} & {mask} if old == r0 & {mask} else old); r0 = old"
        expr = {BPF_ADD: f"(old + {s}) & {mask}", BPF_OR: f"old | ({s} & {mask})",
                BPF_AND: f"old & {s}", BPF_XOR: f"old ^ ({s} & {mask})"}.get(op)
        if expr is None or insn.imm & ~(BPF_FETCH | 0xF0):
            raise self._fail(section, pc, f"invalid atomic operation {insn.imm:#x}")
        if insn.imm & BPF_FETCH:
            self._check_dst(section, pc, insn.src)
            return head + f"{store}(b, o, {expr}); {s} = old"
        return head + f"{store}(b, o, {expr})"

    def _ld(self, section: CodeSection, pc: int, insn: Insn) -> str:
        mode, size = insn.code & 0xE0, insn.code & 0x18
        if insn.code == LD_IMM64:
            self._check_dst(section, pc, insn.dst)
            return f"r{insn.dst} = {self._imm64(section, pc, insn)}"
        if insn.cls == BPF_LD and mode in (BPF_ABS, BPF_IND) and size != BPF_DW:
            if not self.has_ld_abs:
                raise self._fail(section, pc, "BPF_LD_[ABS|IND] instructions not allowed for this program type")
            offset = str(insn.imm) if mode == BPF_ABS else f"r{insn.src} + {insn.imm}"
            return f"r0 = LD_ABS({offset}, {SIZE_BYTES[size]})"
        raise self._fail(section, pc, f"invalid BPF_LD opcode {insn.code:#04x}")

    def _imm64(self, section: CodeSection, pc: int, insn: Insn) -> int:
        if pc + 1 >= len(section.insns):
            raise self._fail(section, pc, "LD_IMM64 without its second half")
        second = section.insns[pc + 1]
        if second.code or second.dst or second.src or second.off:
            raise self._fail(section, pc, "invalid LD_IMM64 second half")
        reloc = section.relocs.get(pc)
        if isinstance(reloc, MapReloc):
            if reloc.value_off is None:
                return reloc.map.addr
            return reloc.map.value_address(reloc.value_off)
        if insn.src == 0:
            return (insn.imm & M32) | ((second.imm & M32) << 32)
        if insn.src in (BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE):
            bpf_map = self.map_by_fd(insn.imm)
            if bpf_map is None:
                raise self._fail(section, pc, f"fd {insn.imm} is not pointing to valid bpf_map")
            return bpf_map.addr if insn.src == BPF_PSEUDO_MAP_FD else bpf_map.value_address(second.imm)
        raise self._fail(section, pc, f"unsupported LD_IMM64 pseudo source {insn.src}")


def _jump_target(pc: int, insn: Insn) -> int | None:
    """Where the jump at `pc` goes; None when `insn` is no jump (calls and exits are not)."""
    op = insn.code & 0xF0
    if insn.cls not in (BPF_JMP, BPF_JMP32) or op in (BPF_CALL, BPF_EXIT):
        return None
    return pc + 1 + (insn.imm if insn.cls == BPF_JMP32 and op == BPF_JA else insn.off)


def _skipped(starts: list[int], jumps: list[tuple[int, int]], n: int) -> set[int]:
    """The block starts some forward jump passes over (pc < start < target), in
    one sweep: each jump opens a span after itself and closes it at its target."""
    spans = [0] * (n + 1)
    for pc, target in jumps:
        if target > pc + 1:
            spans[pc + 1] += 1
            spans[target] -= 1
    open_spans, at, skipped = 0, 0, set()
    for start in starts:
        while at <= start:
            open_spans += spans[at]
            at += 1
        if open_spans:
            skipped.add(start)
    return skipped


def _falls_through(section: CodeSection, end: int) -> bool:
    """Whether the block ending before `end` may go on to the instruction at `end`."""
    last = section.insns[end - 1]
    return not (last.cls in (BPF_JMP, BPF_JMP32) and last.code & 0xF0 in (BPF_EXIT, BPF_JA))


def _short_exit(section: CodeSection, start: int) -> int | None:
    """Where the code from `start` ends when it is a few ALU instructions and an
    exit (`r0 = 2; return r0`, across block boundaries): a jump there gets a
    copy of it instead of a `pc` change. None for any other code."""
    for pc in range(start, min(start + _INLINE_EXIT_INSNS, len(section.insns))):
        insn = section.insns[pc]
        if insn.code == BPF_JMP | BPF_EXIT:
            return pc + 1
        if insn.cls not in (BPF_ALU, BPF_ALU64):
            return None
    return None


def _plain_access(insn: Insn) -> int | None:
    """BPF_LDX or BPF_ST for a plain load or store of 2, 4 or 8 bytes (the kinds
    of access a run joins); None for anything else."""
    if insn.code & 0xE0 != BPF_MEM or insn.code & 0x18 == BPF_B:
        return None
    if insn.cls == BPF_LDX:
        return BPF_LDX
    return BPF_ST if insn.cls in (BPF_ST, BPF_STX) else None


def _base_register(insn: Insn) -> int | None:
    """The register a load or store addresses memory through."""
    if insn.cls == BPF_LDX:
        return insn.src
    if insn.cls in (BPF_ST, BPF_STX):
        return insn.dst
    return None


def _written(insn: Insn) -> set[int] | None:
    """The registers an instruction may change; None for a call (anything,
    including the regions: a helper may move the packet)."""
    cls, op = insn.cls, insn.code & 0xF0
    if cls in (BPF_JMP, BPF_JMP32):
        return None if op == BPF_CALL else set()
    if cls in (BPF_ALU, BPF_ALU64, BPF_LDX):
        return {insn.dst}
    if cls == BPF_LD:
        return {insn.dst} if insn.code == LD_IMM64 else {0}
    if cls == BPF_STX and insn.code & 0xE0 == BPF_ATOMIC:
        return {0} if insn.imm == BPF_CMPXCHG else ({insn.src} if insn.imm & BPF_FETCH else set())
    return set()


@dataclass(eq=False)
class CompiledInfo:
    filename: str
    line_insns: list[tuple[str, int] | None]
    sections: dict[str, CodeSection]
    helpers: dict[int, tuple[str, Callable]]
    reachable: dict[str, set[int]]  # instructions some translated function reaches, by section
    parts: list[CompiledInfo] = field(default_factory=list)  # the chunks compiled on their own (kept alive)


_COMPILED: weakref.WeakValueDictionary[str, CompiledInfo] = weakref.WeakValueDictionary()


def _innermost_generated(exc: BaseException) -> tuple[Any, CompiledInfo | None, bool]:
    """The innermost traceback entry in generated code, its compile info, and
    whether the exception was raised right there (not in a helper below it)."""
    found, info, last = None, None, None
    tb = exc.__traceback__
    while tb is not None:
        candidate = _COMPILED.get(tb.tb_frame.f_code.co_filename)
        if candidate is not None:
            found, info = tb, candidate
        last = tb
        tb = tb.tb_next
    return found, info, found is not None and found is last


def explain_fault(exc: BaseException, mem: AddressSpace) -> BpfFault | None:
    """Turn an exception raised while a program ran into a BpfFault naming the
    instruction; None when it is not the program's fault (a harness bug)."""
    tb, info, raised_here = _innermost_generated(exc)
    if tb is None or info is None:
        return exc if isinstance(exc, BpfFault) else None
    where = info.line_insns[tb.tb_lineno - 1]
    if where is None:
        return BpfFault(str(exc)) if isinstance(exc, BpfFault) else None
    section_name, pc = where
    section = info.sections[section_name]
    insn = section.insns[pc]
    next_imm = section.insns[pc + 1].imm if pc + 1 < len(section.insns) else 0
    text = disasm(insn, next_imm, {k: v[0] for k, v in info.helpers.items()})
    prefix = f"{section_name} insn {pc} ({text})"
    if isinstance(exc, BpfFault):
        return BpfFault(f"{prefix}: {exc}", pc, section_name)
    if not raised_here:
        return None
    regs = tb.tb_frame.f_locals
    mode = insn.code & 0xE0
    if insn.cls == BPF_LDX:
        access, reg = "read", insn.src
    elif insn.cls in (BPF_ST, BPF_STX):
        access, reg = ("atomic update" if mode == BPF_ATOMIC else "write"), insn.dst
    else:
        return None
    addr = (regs.get(f"r{reg}", 0) + insn.off) & M64
    size = SIZE_BYTES[insn.code & 0x18]
    region = mem.regions.get(addr >> SEG_SHIFT)
    if isinstance(region, memoryview) and region.readonly and access != "read" \
            and (addr & OFF_MASK) + size <= len(region):
        why = f"{access} of {size} bytes to read-only {mem.describe(addr)}"
    else:
        why = f"{access} of {size} bytes at {mem.describe(addr)} is outside every valid region"
    return BpfFault(f"{prefix}: {why}", pc, section_name)


FAULTS = (struct.error, KeyError, IndexError, TypeError, BpfFault)  # what a bad access raises
