"""The verifier's checks before a program runs (kernel/bpf/verifier.c), as root loads it.

bpf_check() in the order the kernel makes its passes: the opcode table
(bpf_opcode_in_insntable, kernel/bpf/core.c), the reserved LDX/LD_IMM64
fields (resolve_pseudo_ldimm64), the subprograms' jumps and last
instructions (check_subprogs), every instruction reachable (check_cfg), and
then do_check(): every path is walked with an abstract state per register
and stack slot (not initialised, a scalar with unsigned bounds, or a typed
pointer: ctx, fp, pkt, pkt_end, map_value, map_value_or_null, ...), branches
refine the bounds and the packet range as the kernel's reg_set_min_max()
and find_good_pkt_pointers() do, and each instruction's operands are checked
as check_alu_op(), check_mem_access(), check_helper_call(),
check_func_call() and prepare_func_exit() check them; then
check_max_stack_depth() sums the stack of every call chain. A refusal
carries the verifier's own message ("R3 !read_ok", "invalid access to
packet, ...").

The exploration is the kernel's: a depth-first walk that pushes the other
side of each conditional jump, checkpoints at prune points
(is_state_visited), prunes a path whose state a finished checkpoint
subsumes, refuses a loop whose state comes back exactly ("infinite loop
detected") and stops at 1,000,000 processed instructions
(BPF_COMPLEXITY_LIMIT_INSNS). Bounded loops load because the walk follows
them until their bound decides the branch. What stands in for the kernel's
precision tracking (mark_chain_precision): a scalar register whose value
can never reach a branch, an address, a helper argument or a callee (a
flow-insensitive pass over the program's registers) is compared by type
only, so code that merely counts converges as it does in the kernel.

The loader runs as root (CAP_BPF, CAP_PERFMON), so what only unprivileged
loads refuse passes: pointer leaks, uninitialised stack reads, back-edges.
Where the model is less precise than the kernel (scalars carry unsigned
bounds only, no tnums; __sk_buff fields beyond their size and writability)
it accepts, and the VM's run-time checks remain the guard.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from harness.mockkernel.bpf.insn import (
    BPF_ABS,
    BPF_ADD,
    BPF_ALU,
    BPF_ALU64,
    BPF_AND,
    BPF_ARSH,
    BPF_ATOMIC,
    BPF_CALL,
    BPF_CMPXCHG,
    BPF_DIV,
    BPF_DW,
    BPF_END,
    BPF_EXIT,
    BPF_FETCH,
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
    BPF_PSEUDO_KFUNC_CALL,
    BPF_PSEUDO_MAP_FD,
    BPF_PSEUDO_MAP_VALUE,
    BPF_RSH,
    BPF_ST,
    BPF_STX,
    BPF_SUB,
    BPF_TO_LE,
    BPF_X,
    BPF_XCHG,
    BPF_XOR,
    LD_IMM64,
    SIZE_BYTES,
    Insn,
    disasm,
)
from harness.mockkernel.bpf.maps import BPF_F_RDONLY_PROG
from harness.mockkernel.bpf.vm import MAX_BPF_STACK, MAX_CALL_FRAMES, BpfLoadError, CallReloc, CodeSection, MapReloc

BPF_COMPLEXITY_LIMIT_INSNS = 1_000_000  # include/linux/bpf.h
BPF_COMPLEXITY_LIMIT_JMP_SEQ = 8192  # kernel/bpf/verifier.c
BPF_FUNC_TAIL_CALL = 12  # enum bpf_func_id
BPF_MAX_VAR_OFF = 1 << 29
BPF_MAX_VAR_SIZ = 1 << 29
M64 = (1 << 64) - 1
M32 = (1 << 32) - 1


def _valid_opcodes() -> frozenset[int]:
    """bpf_opcode_in_insntable(): the opcodes kernel/bpf/core.c's BPF_INSN_MAP lists."""
    codes = {LD_IMM64, 0x20, 0x28, 0x30, 0x40, 0x48, 0x50,  # LD_IMM64, LD_ABS/IND B/H/W
             0x61, 0x69, 0x71, 0x79, 0x81, 0x89, 0x91,  # LDX MEM, MEMSX
             0x62, 0x6A, 0x72, 0x7A, 0x63, 0x6B, 0x73, 0x7B,  # ST, STX MEM
             0xC3, 0xDB,  # STX ATOMIC W, DW
             BPF_JMP | BPF_JA, BPF_JMP32 | BPF_JA, BPF_JMP | BPF_CALL, BPF_JMP | BPF_EXIT,
             BPF_ALU | BPF_END, BPF_ALU | BPF_END | BPF_X, BPF_ALU64 | BPF_END,
             BPF_ALU | BPF_NEG, BPF_ALU64 | BPF_NEG}
    for cls in (BPF_ALU, BPF_ALU64):
        for op in (BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH, BPF_RSH, BPF_MOD, BPF_XOR,
                   BPF_MOV, BPF_ARSH):
            codes |= {cls | op, cls | op | BPF_X}
    for cls in (BPF_JMP, BPF_JMP32):
        for op in (BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET, BPF_JNE, BPF_JSGT, BPF_JSGE, BPF_JLT, BPF_JLE,
                   BPF_JSLT, BPF_JSLE):
            codes |= {cls | op, cls | op | BPF_X}
    return frozenset(codes)


VALID_OPCODES = _valid_opcodes()
MAX_BPF_REG = 11  # r0-r9 and the frame pointer r10
_OP_SYMBOLS = {BPF_ADD: "+=", BPF_SUB: "-=", BPF_MUL: "*=", BPF_DIV: "/=", BPF_OR: "|=", BPF_AND: "&=",
               BPF_LSH: "<<=", BPF_RSH: ">>=", BPF_MOD: "%=", BPF_XOR: "^=", BPF_ARSH: "s>>="}


class Scalar(NamedTuple):
    """SCALAR_VALUE with its unsigned bounds (umin_value, umax_value)."""

    umin: int = 0
    umax: int = M64

    @property
    def const(self) -> bool:
        return self.umin == self.umax


UNKNOWN = Scalar()


class Ptr(NamedTuple):
    """A pointer register: `kind` is the kernel's reg_type_str() name (ctx, fp,
    pkt, pkt_meta, pkt_end, map_ptr, map_value, map_value_or_null, ringbuf_mem,
    ringbuf_mem_or_null, mem for a raw program's buffer); `off` the fixed
    offset, `var` the largest variable offset added (umax), `aux` the map, the
    frame of a stack pointer or a ringbuf record's size, `id` what ties copies
    (a lookup's result, packet pointers sharing a variable part), `rng` the
    packet bytes proven readable past the pointer's base (reg->range), `ref`
    the reference a ringbuf record must be released by."""

    kind: str
    off: int = 0
    var: int = 0
    aux: Any = None
    id: int = 0
    rng: int = 0
    ref: int = 0


Reg = Scalar | Ptr | None  # None: NOT_INIT


@dataclass(frozen=True)
class Arg:
    """A helper argument type (enum bpf_arg_type), as far as the mock checks them."""

    kind: str  # any, map, key, value, ctx, mem, uninit_mem, size, alloc_size, ringbuf_mem
    or_zero: bool = False  # ARG_CONST_SIZE_OR_ZERO, PTR_MAYBE_NULL


_ANY, _MAP, _KEY, _VALUE, _CTX = Arg("any"), Arg("map"), Arg("key"), Arg("value"), Arg("ctx")
_MEM, _UNINIT_MEM, _SIZE, _SIZE0 = Arg("mem"), Arg("uninit_mem"), Arg("size"), Arg("size", True)

# func_protos of the helpers the mock runs: (arguments, return type, changes packet data)
HELPER_PROTOS: dict[str, tuple[tuple[Arg, ...], str, bool]] = {
    "bpf_map_lookup_elem": ((_MAP, _KEY), "map_value_or_null", False),
    "bpf_map_update_elem": ((_MAP, _KEY, _VALUE, _ANY), "integer", False),
    "bpf_map_delete_elem": ((_MAP, _KEY), "integer", False),
    "bpf_ktime_get_ns": ((), "integer", False),
    "bpf_ktime_get_boot_ns": ((), "integer", False),
    "bpf_get_prandom_u32": ((), "integer", False),
    "bpf_get_smp_processor_id": ((), "integer", False),
    "bpf_trace_printk": ((_MEM, _SIZE), "integer", False),
    "bpf_ringbuf_output": ((_MAP, _MEM, _SIZE0, _ANY), "integer", False),
    "bpf_ringbuf_reserve": ((_MAP, Arg("alloc_size"), _ANY), "ringbuf_mem_or_null", False),
    "bpf_ringbuf_submit": ((Arg("ringbuf_mem"), _ANY), "void", False),
    "bpf_ringbuf_discard": ((Arg("ringbuf_mem"), _ANY), "void", False),
    "bpf_tail_call": ((_CTX, _MAP, _ANY), "void", False),
    "bpf_perf_event_output": ((_CTX, _MAP, _ANY, _MEM, _SIZE0), "integer", False),
    "bpf_csum_diff": ((Arg("mem", True), _SIZE0, Arg("mem", True), _SIZE0, _ANY), "integer", False),
    "bpf_fib_lookup": ((_CTX, _UNINIT_MEM, _SIZE, _ANY), "integer", False),
    "bpf_redirect": ((_ANY, _ANY), "integer", False),
    "bpf_redirect_map": ((_MAP, _ANY, _ANY), "integer", False),
    "bpf_xdp_adjust_head": ((_CTX, _ANY), "integer", True),
    "bpf_xdp_adjust_meta": ((_CTX, _ANY), "integer", True),
    "bpf_xdp_adjust_tail": ((_CTX, _ANY), "integer", True),
    "bpf_skb_store_bytes": ((_CTX, _ANY, _MEM, _SIZE, _ANY), "integer", True),
    "bpf_l3_csum_replace": ((_CTX, _ANY, _ANY, _ANY, _ANY), "integer", True),
    "bpf_l4_csum_replace": ((_CTX, _ANY, _ANY, _ANY, _ANY), "integer", True),
    "bpf_skb_load_bytes": ((_CTX, _ANY, _UNINIT_MEM, _SIZE), "integer", False),
}
# the kernel's helper names for those the mock lists under another (bpf_xdp_redirect is bpf_redirect)
HELPER_IDS = {1: "bpf_map_lookup_elem", 2: "bpf_map_update_elem", 3: "bpf_map_delete_elem", 5: "bpf_ktime_get_ns",
              6: "bpf_trace_printk", 7: "bpf_get_prandom_u32", 8: "bpf_get_smp_processor_id",
              9: "bpf_skb_store_bytes", 10: "bpf_l3_csum_replace", 11: "bpf_l4_csum_replace", 12: "bpf_tail_call",
              23: "bpf_redirect", 25: "bpf_perf_event_output", 26: "bpf_skb_load_bytes", 28: "bpf_csum_diff",
              44: "bpf_xdp_adjust_head", 51: "bpf_redirect_map", 54: "bpf_xdp_adjust_meta",
              65: "bpf_xdp_adjust_tail", 69: "bpf_fib_lookup", 125: "bpf_ktime_get_boot_ns",
              130: "bpf_ringbuf_output", 131: "bpf_ringbuf_reserve", 132: "bpf_ringbuf_submit",
              133: "bpf_ringbuf_discard"}
# what check_func_arg() prints as expected= for a pointer to memory (compatible_reg_types)
_MEM_TYPES = "fp, pkt, pkt_meta, map_key, map_value, mem, ringbuf_mem, buf, trusted_ptr_"
_MEM_KINDS = ("fp", "pkt", "pkt_meta", "map_value", "mem", "ringbuf_mem")

# context fields that load as pointers (xdp_is_valid_access, tc_cls_act_is_valid_access)
_XDP_MD_SIZE, _SKB_SIZE = 24, 192
_CTX_POINTERS = {"xdp": {0: "pkt", 4: "pkt_end", 8: "pkt_meta"}, "sched_cls": {76: "pkt", 80: "pkt_end", 140: "pkt_meta"}}
_SKB_WRITABLE = {8, 12, 32, 44, 48, 52, 56, 60, 64, 72, 152, 156}  # mark..cb[4], tc_classid, tstamp


class _Frame:
    """struct bpf_func_state: one call frame's registers and stack slots (by offset from the frame top)."""

    __slots__ = ("regs", "stack", "callsite", "func")

    def __init__(self, regs: list, stack: dict, callsite: tuple | None, func: tuple[str, int]) -> None:
        self.regs, self.stack, self.callsite, self.func = regs, stack, callsite, func

    def copy(self) -> _Frame:
        return _Frame(list(self.regs), dict(self.stack), self.callsite, self.func)


class _State:
    """struct bpf_verifier_state: the frames, the references held, and the
    checkpoint this path passed last (its parent, for the branch counts)."""

    __slots__ = ("frames", "refs", "parent")

    def __init__(self, frames: list[_Frame], refs: tuple, parent: _Checkpoint | None) -> None:
        self.frames, self.refs, self.parent = frames, refs, parent

    def copy(self) -> _State:
        return _State([frame.copy() for frame in self.frames], self.refs, self.parent)

    @property
    def regs(self) -> list:
        return self.frames[-1].regs


class _Checkpoint:
    """A state kept at a prune point; `branches` counts the paths still walking
    from it (update_branch_counts): 0 means everything after it verified."""

    __slots__ = ("frames", "refs", "branches", "parent", "hits", "misses")

    def __init__(self, state: _State) -> None:
        self.frames = [(tuple(f.regs), dict(f.stack)) for f in state.frames]
        self.refs = state.refs
        self.branches = 1
        self.parent = state.parent
        self.hits = self.misses = 0


def _fits32(reg: Scalar) -> bool:
    return reg.umax <= M32


class Verifier:
    """Verifies the program at `entry` of `section` and every function it calls.
    `helpers` are the ids this program type may call, `map_by_fd` resolves
    BPF_PSEUDO_MAP_FD, `helper_names` name the kernel's helpers for messages."""

    def __init__(self, sections: dict[str, CodeSection], prog_type: str, helpers: set[int],
                 map_by_fd: Any) -> None:
        self.sections = sections
        self.prog_type = prog_type
        self.helpers = helpers
        self.map_by_fd = map_by_fd
        self.processed = self.jumps = 0
        self.checkpointed_at = (0, 0)  # processed, jumps at the last new checkpoint
        self.id_gen = 0
        self.checkpoints: dict[tuple, list[_Checkpoint]] = {}
        self.prune_points: dict[str, set[int]] = {}
        self.reached: dict[str, bytearray] = {}
        self.imprecise: frozenset[int] = frozenset()
        self.calls: dict[tuple[str, int], list[tuple[int, tuple[str, int]]]] = {}  # call sites by pc
        self.tail_callers: set[tuple[str, int]] = set()  # functions calling bpf_tail_call
        self.stack_depth: dict[tuple[str, int], int] = {}  # bpf_subprog_info.stack_depth
        self.main: tuple[str, int] = ("", 0)

    # messages

    def _where(self, section: str, pc: int) -> str:
        insns = self.sections[section].insns
        next_imm = insns[pc + 1].imm if pc + 1 < len(insns) else 0
        names = {hid: HELPER_IDS.get(hid, "unknown") for hid in range(256)}
        return f"{section} insn {pc} ({disasm(insns[pc], next_imm, names)})"

    def _refuse(self, section: str, pc: int | None, message: str) -> BpfLoadError:
        """The refusal, naming the instruction as the verifier log does before its message."""
        refusal = BpfLoadError(f"{self._where(section, pc) if pc is not None else section}: {message}")
        refusal.verifier_message = message
        return refusal

    # the passes

    def verify(self, section: str, entry: int, whole_section: bool = False) -> None:
        """Refuses (BpfLoadError) what bpf_check() refuses; `whole_section`:
        every instruction of the section belongs to this program."""
        self.main = (section, entry)
        functions = self._static_checks(section, entry)
        if whole_section:
            self._check_all_reached(section)
        self.imprecise = self._imprecise_registers(functions)
        self._do_check(section, entry)
        self._check_max_stack_depth(section, entry)

    def _static_checks(self, section: str, entry: int) -> list[tuple[str, int]]:
        """The opcode table, resolve_pseudo_ldimm64, check_subprogs and check_cfg
        for every function reachable from the entry; returns those functions."""
        checked_sections = set()
        functions, pending = [], [(section, entry)]
        while pending:
            func = pending.pop()
            if func in functions:
                continue
            functions.append(func)
            sec = self.sections.get(func[0])
            if sec is None or not 0 <= func[1] < len(sec.insns):
                raise self._refuse(section, None, f"call to an invalid destination {func[0]}+{func[1]}")
            if func[0] not in checked_sections:
                checked_sections.add(func[0])
                self._check_encodings(sec)
            self.calls[func] = sorted(self._check_cfg(sec, func[1]))
            pending.extend(callee for _, callee in self.calls[func])
        return functions

    def _check_encodings(self, sec: CodeSection) -> None:
        """resolve_pseudo_ldimm64's pass over every instruction, then the opcode table's."""
        insns = sec.insns
        pc = 0
        while pc < len(insns):
            insn = insns[pc]
            if insn.cls == BPF_LDX and (insn.code & 0xE0 not in (BPF_MEM, BPF_MEMSX) or insn.imm):
                raise self._refuse(sec.name, pc, "BPF_LDX uses reserved fields")
            if insn.code == LD_IMM64:
                if pc + 1 >= len(insns) or any(insns[pc + 1][:4]):
                    raise self._refuse(sec.name, pc, "invalid bpf_ld_imm64 insn")
                if insn.src not in (0, BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE) and pc not in sec.relocs:
                    raise self._refuse(sec.name, pc, "unrecognized bpf_ld_imm64 insn")
                pc += 1
            pc += 1
        for pc, insn in enumerate(insns):
            if insn.code not in VALID_OPCODES and not (pc and insns[pc - 1].code == LD_IMM64):
                raise self._refuse(sec.name, pc, f"unknown opcode {insn.code:02x}")
        self._check_subprog_jumps(sec)

    def _check_subprog_jumps(self, sec: CodeSection) -> None:
        """check_subprogs(): instruction by instruction, every jump inside the
        code, and the last instruction an exit or a goto."""
        insns, n = sec.insns, len(sec.insns)
        for pc, insn in enumerate(insns):
            op = insn.code & 0xF0
            if insn.cls in (BPF_JMP, BPF_JMP32) and op not in (BPF_CALL, BPF_EXIT):
                target = pc + 1 + (insn.imm if insn.code == BPF_JMP32 | BPF_JA else insn.off)
                if not 0 <= target < n:
                    raise self._refuse(sec.name, None, f"jump out of range from insn {pc} to {target}")
        if not insns or insns[-1].code not in (BPF_JMP | BPF_EXIT, BPF_JMP | BPF_JA, BPF_JMP32 | BPF_JA):
            raise self._refuse(sec.name, None, "last insn is not an exit or jmp")

    def _callee(self, sec: CodeSection, pc: int, insn: Insn) -> tuple[str, int] | None:
        reloc = sec.relocs.get(pc)
        if isinstance(reloc, CallReloc):
            return reloc.section, reloc.target
        if insn.src == BPF_PSEUDO_CALL:
            return sec.name, pc + 1 + insn.imm
        return None

    def _check_cfg(self, sec: CodeSection, entry: int) -> list[tuple[str, int]]:
        """check_subprogs + check_cfg for one function: jumps in range, no jump
        into an LD_IMM64; marks what it reaches and its prune points, and
        returns the functions it calls with the pc of each call; notes a call
        of bpf_tail_call (the kernel's subprog has_tail_call)."""
        insns, n, name = sec.insns, len(sec.insns), sec.name
        seen = self.reached.setdefault(name, bytearray(n))
        prune = self.prune_points.setdefault(name, set())
        callees, work = [], [entry]
        while work:
            pc = work.pop()
            while not seen[pc]:
                seen[pc] = 1
                insn = insns[pc]
                cls, op = insn.cls, insn.code & 0xF0
                nxt = pc + (2 if insn.code == LD_IMM64 else 1)
                if cls in (BPF_JMP, BPF_JMP32):
                    if op == BPF_EXIT:
                        break
                    if op == BPF_CALL:
                        callee = self._callee(sec, pc, insn)
                        if callee is not None:
                            callees.append((pc, callee))
                            prune.add(nxt)
                        elif insn.src == 0 and insn.imm == BPF_FUNC_TAIL_CALL:
                            self.tail_callers.add((name, entry))
                    else:
                        target = nxt + (insn.imm if cls == BPF_JMP32 and op == BPF_JA else insn.off)
                        if not 0 <= target < n:
                            raise self._refuse(name, None, f"jump out of range from insn {pc} to {target}")
                        if target and insns[target - 1].code == LD_IMM64:
                            raise self._refuse(name, None, f"jump into the middle of ldimm64 insn {target - 1}")
                        if op == BPF_JA:
                            prune.add(target)
                            work.append(target)
                            break
                        prune.add(pc)
                        work.append(target)
                if nxt >= n:
                    raise self._refuse(name, None, f"jump out of range from insn {pc} to {nxt}")
                pc = nxt
        return callees

    def _check_all_reached(self, section: str) -> None:
        """check_cfg's last step for a program loaded as raw bytecode (one
        section, all of it the program's): every instruction reachable."""
        insns, seen = self.sections[section].insns, self.reached.get(section, b"")
        for pc in range(len(insns)):
            if not seen[pc] and not (pc and insns[pc - 1].code == LD_IMM64 and seen[pc - 1]):
                raise self._refuse(section, None, f"unreachable insn {pc}")

    def _imprecise_registers(self, functions: list[tuple[str, int]]) -> frozenset[int]:
        """Registers whose value never flows into a decision: a branch, an
        address, a helper or callee argument, a stored value. Where one flows
        into another (mov, alu with a register source), a decision on the
        destination makes the source precise too."""
        precise: set[int] = set()
        flows: set[tuple[int, int]] = set()
        for name in {func[0] for func in functions}:
            for insn in self.sections[name].insns:
                cls, op = insn.cls, insn.code & 0xF0
                if cls in (BPF_JMP, BPF_JMP32):
                    if op == BPF_CALL:
                        precise |= {0, 1, 2, 3, 4, 5}
                    elif op == BPF_EXIT:
                        if len(functions) > 1:
                            precise.add(0)  # a callee's r0 is its caller's
                    elif op != BPF_JA:
                        precise.add(insn.dst)
                        if insn.code & BPF_X:
                            precise.add(insn.src)
                elif cls in (BPF_ALU, BPF_ALU64):
                    if insn.code & BPF_X:
                        flows.add((insn.dst, insn.src))
                        if op in (BPF_ADD, BPF_SUB, BPF_LSH, BPF_RSH, BPF_ARSH):
                            precise |= {insn.dst, insn.src}
                elif cls == BPF_LDX:
                    precise.add(insn.src)
                elif cls in (BPF_ST, BPF_STX):
                    precise.add(insn.dst)
                    if cls == BPF_STX:
                        precise.add(insn.src)
                elif cls == BPF_LD and insn.code != LD_IMM64:
                    precise.add(insn.src)
        changed = True
        while changed:
            changed = False
            for dst, src in flows:
                if dst in precise and src not in precise:
                    precise.add(src)
                    changed = True
        return frozenset(range(10)) - precise

    # do_check

    def _initial_state(self) -> _State:
        regs: list[Reg] = [None] * 11
        regs[1] = Ptr("mem") if self.prog_type == "raw" else Ptr("ctx")
        if self.prog_type == "raw":
            regs[2] = UNKNOWN
        regs[10] = Ptr("fp", aux=0)
        return _State([_Frame(regs, {}, None, self.main)], (), None)

    def _do_check(self, section: str, entry: int) -> None:
        stack: list[tuple[_State, str, int]] = []
        state, sec_name, pc = self._initial_state(), section, entry
        while True:
            sec_name, pc, done = self._walk(state, sec_name, pc, stack)
            if done:
                self._path_done(state)
                if not stack:
                    return
                state, sec_name, pc = stack.pop()

    def _path_done(self, state: _State) -> None:
        """update_branch_counts(): this path is finished."""
        checkpoint = state.parent
        while checkpoint is not None:
            checkpoint.branches -= 1
            if checkpoint.branches:
                break
            checkpoint = checkpoint.parent

    def _push(self, stack: list, state: _State, section: str, pc: int) -> None:
        """push_stack(): the other side of a fork waits; too many waiting on one path is refused."""
        if len(stack) >= BPF_COMPLEXITY_LIMIT_JMP_SEQ:
            raise self._refuse(section, pc, f"The sequence of {len(stack) + 1} jumps is too complex.")
        if state.parent is not None:
            state.parent.branches += 1
        stack.append((state, section, pc))

    def _walk(self, state: _State, section: str, pc: int, stack: list) -> tuple[str, int, bool]:
        """Walk one path from `pc` until it exits, is pruned, or forks (the other
        side pushed, this side followed). Returns where it stopped and whether
        the path is finished."""
        sec = self.sections[section]
        insns = sec.insns
        prune = self.prune_points.get(section, ())
        while True:
            self.processed += 1
            if self.processed > BPF_COMPLEXITY_LIMIT_INSNS:
                raise self._refuse(section, None,
                                   f"BPF program is too large. Processed {self.processed} insn")
            if pc in prune and self._is_state_visited(state, section, pc):
                return section, pc, True
            insn = insns[pc]
            cls = insn.cls
            if cls in (BPF_JMP, BPF_JMP32):
                self.jumps += 1
            if cls in (BPF_ALU, BPF_ALU64):
                self._check_alu(state, section, pc, insn)
            elif cls == BPF_LDX:
                self._check_ldx(state, section, pc, insn)
            elif cls == BPF_STX:
                self._check_stx(state, section, pc, insn)
            elif cls == BPF_ST:
                if insn.code & 0xE0 != BPF_MEM or insn.src:
                    raise self._refuse(section, pc, "BPF_ST uses reserved fields")
                size = SIZE_BYTES[insn.code & 0x18]
                stored = Scalar(insn.imm & M64, insn.imm & M64) if size == 8 else UNKNOWN
                self._check_mem(state, section, pc, insn.dst, insn.off, size, "write", stored)
            elif cls == BPF_LD:
                pc = self._check_ld(state, sec, pc, insn)
                continue
            else:
                op = insn.code & 0xF0
                if op == BPF_EXIT:
                    if insn.code & BPF_X or insn.imm or insn.src or insn.dst or cls == BPF_JMP32:
                        raise self._refuse(section, pc, "BPF_EXIT uses reserved fields")
                    returned = self._exit(state, section, pc)
                    if returned is None:
                        return section, pc, True
                    section, pc = returned
                    sec = self.sections[section]
                    insns, prune = sec.insns, self.prune_points.get(section, ())
                    continue
                if op == BPF_CALL:
                    callee = self._check_call(state, sec, pc, insn)
                    if callee is not None:
                        section, pc = callee
                        sec = self.sections[section]
                        insns, prune = sec.insns, self.prune_points.get(section, ())
                        continue
                elif op == BPF_JA:
                    if insn.code & BPF_X or insn.src or insn.dst or (cls == BPF_JMP and insn.imm) \
                            or (cls == BPF_JMP32 and insn.off):
                        raise self._refuse(section, pc, "BPF_JA uses reserved fields")
                    pc += 1 + (insn.imm if cls == BPF_JMP32 else insn.off)
                    continue
                else:
                    taken = self._check_cond_jmp(state, section, pc, insn)
                    target = pc + 1 + insn.off
                    if taken is True:
                        pc = target
                        continue
                    if taken is not False:
                        self._push(stack, taken, section, target)
            pc += 1

    # registers

    def _read(self, state: _State, section: str, pc: int, regno: int) -> Reg:
        if regno >= MAX_BPF_REG:  # __check_reg_arg()
            raise self._refuse(section, pc, f"R{regno} is invalid")
        reg = state.regs[regno]
        if reg is None:
            raise self._refuse(section, pc, f"R{regno} !read_ok")
        return reg

    def _write(self, state: _State, section: str, pc: int, regno: int, value: Reg) -> None:
        if regno >= MAX_BPF_REG:
            raise self._refuse(section, pc, f"R{regno} is invalid")
        if regno == 10:
            raise self._refuse(section, pc, "frame pointer is read only")
        state.regs[regno] = value

    # ALU

    def _check_alu(self, state: _State, section: str, pc: int, insn: Insn) -> None:
        op, is64, use_reg = insn.code & 0xF0, insn.cls == BPF_ALU64, bool(insn.code & BPF_X)
        if op == BPF_NEG:
            if use_reg or insn.src or insn.off or insn.imm:
                raise self._refuse(section, pc, "BPF_NEG uses reserved fields")
        elif op == BPF_END:
            if insn.src or insn.off or insn.imm not in (16, 32, 64) or (is64 and use_reg != BPF_TO_LE):
                raise self._refuse(section, pc, "BPF_END uses reserved fields")
        elif op == BPF_MOV:
            sign_ext = (0, 8, 16, 32) if is64 else (0, 8, 16)
            if (use_reg and (insn.imm or insn.off not in sign_ext)) or (not use_reg and (insn.src or insn.off)):
                raise self._refuse(section, pc, "BPF_MOV uses reserved fields")
        else:
            off_ok = insn.off == 0 or (insn.off == 1 and op in (BPF_DIV, BPF_MOD))
            if (use_reg and (insn.imm or not off_ok)) or (not use_reg and (insn.src or not off_ok)):
                raise self._refuse(section, pc, "BPF_ALU uses reserved fields")
        if op == BPF_MOV:
            src = self._read(state, section, pc, insn.src) if use_reg else Scalar(insn.imm & M64, insn.imm & M64)
            if not is64:
                src = _truncate32(src) if not (use_reg and insn.off) else Scalar(0, M32)
            elif insn.off:
                src = UNKNOWN
            self._write(state, section, pc, insn.dst, src)
            return
        dst = self._read(state, section, pc, insn.dst)
        if op in (BPF_NEG, BPF_END):
            self._write(state, section, pc, insn.dst, UNKNOWN if is64 else Scalar(0, M32))
            return
        if use_reg:
            src = self._read(state, section, pc, insn.src)
        else:
            value = insn.imm & (M64 if is64 else M32)
            src = Scalar(value, value)
            if op in (BPF_DIV, BPF_MOD) and insn.imm == 0:
                raise self._refuse(section, pc, "div by zero")
            if op in (BPF_LSH, BPF_RSH, BPF_ARSH) and not 0 <= insn.imm < (64 if is64 else 32):
                raise self._refuse(section, pc, f"invalid shift {insn.imm}")
        if isinstance(dst, Ptr) or isinstance(src, Ptr):
            result = self._pointer_alu(state, section, pc, insn, dst, src)
        else:
            result = _scalar_alu(op, is64, dst, src)
        self._write(state, section, pc, insn.dst, result)

    def _pointer_alu(self, state: _State, section: str, pc: int, insn: Insn, dst: Reg, src: Reg) -> Reg:
        """adjust_ptr_min_max_vals(), as root sees it."""
        op, regno = insn.code & 0xF0, insn.dst
        if insn.cls != BPF_ALU64:
            raise self._refuse(section, pc, f"R{regno} 32-bit pointer arithmetic prohibited")
        if isinstance(dst, Ptr) and isinstance(src, Ptr):
            if op == BPF_SUB:
                return UNKNOWN
            raise self._refuse(section, pc, f"R{regno} pointer {_OP_SYMBOLS[op]} pointer prohibited")
        if op in (BPF_AND, BPF_OR, BPF_XOR):
            raise self._refuse(section, pc, f"R{regno} bitwise operator {_OP_SYMBOLS[op]} on pointer prohibited")
        if op not in (BPF_ADD, BPF_SUB):
            raise self._refuse(section, pc, f"R{regno} pointer arithmetic with {_OP_SYMBOLS[op]} operator prohibited")
        ptr, scalar = (dst, src) if isinstance(dst, Ptr) else (src, dst)
        if op == BPF_SUB and ptr is src:
            raise self._refuse(section, pc, f"R{regno} tried to subtract pointer from scalar")
        if ptr.kind in ("map_value_or_null", "ringbuf_mem_or_null", "map_ptr", "pkt_end"):
            raise self._refuse(section, pc, f"R{regno} pointer arithmetic on {ptr.kind} prohibited")
        if scalar.const:
            delta = scalar.umin if scalar.umin < 1 << 63 else scalar.umin - (1 << 64)
            delta = delta if op == BPF_ADD else -delta
            return ptr._replace(off=ptr.off + delta)
        if op == BPF_SUB or scalar.umax >= BPF_MAX_VAR_OFF:
            return ptr._replace(var=BPF_MAX_VAR_OFF, id=self._new_id(), rng=0)
        var = ptr.var + scalar.umax
        if ptr.kind in ("pkt", "pkt_meta"):
            return ptr._replace(var=var, id=self._new_id(), rng=0)
        return ptr._replace(var=var)

    def _new_id(self) -> int:
        self.id_gen += 1
        return self.id_gen

    # memory

    def _check_ldx(self, state: _State, section: str, pc: int, insn: Insn) -> None:
        size = SIZE_BYTES[insn.code & 0x18]
        value = self._check_mem(state, section, pc, insn.src, insn.off, size, "read", None)
        if insn.code & 0xE0 == BPF_MEMSX:
            value = UNKNOWN
        self._write(state, section, pc, insn.dst, value)

    def _check_stx(self, state: _State, section: str, pc: int, insn: Insn) -> None:
        mode, size = insn.code & 0xE0, SIZE_BYTES[insn.code & 0x18]
        if mode == BPF_ATOMIC:
            self._check_atomic(state, section, pc, insn, size)
            return
        if mode != BPF_MEM or insn.imm:
            raise self._refuse(section, pc, "BPF_STX uses reserved fields")
        value = self._read(state, section, pc, insn.src)
        self._check_mem(state, section, pc, insn.dst, insn.off, size, "write", value)

    def _check_atomic(self, state: _State, section: str, pc: int, insn: Insn, size: int) -> None:
        op = insn.imm & ~BPF_FETCH
        if insn.imm not in (BPF_XCHG, BPF_CMPXCHG) and op not in (BPF_ADD, BPF_AND, BPF_OR, BPF_XOR):
            raise self._refuse(section, pc, f"BPF_ATOMIC uses invalid atomic opcode {insn.imm:02x}")
        self._read(state, section, pc, insn.src)
        if insn.imm == BPF_CMPXCHG:
            self._read(state, section, pc, 0)
        dst = self._read(state, section, pc, insn.dst)
        if isinstance(dst, Ptr) and dst.kind in ("ctx", "pkt", "pkt_meta"):
            raise self._refuse(section, pc, f"BPF_ATOMIC stores into R{insn.dst} {dst.kind} is not allowed")
        self._check_mem(state, section, pc, insn.dst, insn.off, size, "read", None)
        self._check_mem(state, section, pc, insn.dst, insn.off, size, "write", UNKNOWN)
        if insn.imm == BPF_CMPXCHG:
            state.regs[0] = UNKNOWN
        elif insn.imm & BPF_FETCH:
            self._write(state, section, pc, insn.src, UNKNOWN)

    def _check_mem(self, state: _State, section: str, pc: int, regno: int, insn_off: int, size: int,
                   access: str, value: Reg) -> Reg:
        """check_mem_access(): `access` of `size` bytes at R`regno` + insn_off; what
        a read loads (or what a write stores, `value`). Returns the loaded value."""
        reg = self._read(state, section, pc, regno)
        if isinstance(reg, Scalar):
            raise self._refuse(section, pc, f"R{regno} invalid mem access 'scalar'")
        kind, off = reg.kind, reg.off + insn_off
        loaded: Reg = Scalar(0, (1 << (8 * size)) - 1)
        if kind == "fp":
            return self._stack_access(state, section, pc, regno, reg, off, insn_off, size, access, value, loaded)
        if kind in ("pkt", "pkt_meta"):
            if off < 0 or off + size > reg.rng:
                raise self._refuse(section, pc, f"invalid access to packet, off={off} size={size}, "
                                                f"R{regno}(id={reg.id},off={off},r={reg.rng})\n"
                                                f"R{regno} offset is outside of the packet")
            return loaded
        if kind == "map_value":
            return self._map_value_access(section, pc, regno, reg, off, size, access, loaded)
        if kind == "ctx":
            return self._ctx_access(section, pc, regno, reg, off, size, access, loaded)
        if kind in ("mem", "ringbuf_mem"):
            if kind == "ringbuf_mem" and (off < 0 or off + reg.var + size > reg.aux):
                raise self._refuse(section, pc, f"invalid access to memory, mem_size={reg.aux} off={off} "
                                                f"size={size}\nR{regno} min value is outside of the allowed "
                                                "memory range")
            return loaded
        if kind == "map_ptr" and access == "read":
            return UNKNOWN  # root reads struct bpf_map fields (btf_struct_access on the map's type)
        raise self._refuse(section, pc, f"R{regno} invalid mem access '{kind}'")

    def _stack_access(self, state: _State, section: str, pc: int, regno: int, reg: Ptr, off: int,
                      insn_off: int, size: int, access: str, value: Reg, loaded: Reg) -> Reg:
        """check_stack_access_within_bounds() and the spill/fill of registers."""
        self._update_stack_depth(state.frames[reg.aux], off)
        if reg.var:
            if off < -MAX_BPF_STACK or off + reg.var + size > 0:
                raise self._refuse(section, pc, f"invalid variable-offset {access} stack R{regno} var_off=(0x0; "
                                                f"{reg.var:#x}) off={off} size={size}")
            if access == "write":
                frame = state.frames[reg.aux]
                for slot in range((off // 8) * 8, off + reg.var + size, 8):
                    frame.stack.pop(slot, None)
            return loaded
        if off % size:
            raise self._refuse(section, pc, f"misaligned stack access off 0+{reg.off}+{insn_off} size {size}")
        if off < -MAX_BPF_STACK or off + size > 0:
            direction = "to" if access == "write" else "from"
            raise self._refuse(section, pc, f"invalid {access} {direction} stack R{regno} off={off} size={size}")
        frame = state.frames[reg.aux]
        slot = off - off % 8
        if access == "write":
            if size == 8:
                frame.stack[slot] = value
            else:
                frame.stack[slot] = UNKNOWN
            return loaded
        spilled = frame.stack.get(slot)
        if size == 8 and spilled is not None:
            return spilled
        if isinstance(spilled, Scalar) and spilled.umax < 1 << (8 * size) and off == slot:
            return spilled
        return loaded

    def _map_value_access(self, section: str, pc: int, regno: int, reg: Ptr, off: int, size: int, access: str,
                          loaded: Reg) -> Reg:
        bpf_map = reg.aux
        value_size = bpf_map.value_size
        if access == "write" and bpf_map.map_flags & BPF_F_RDONLY_PROG:
            raise self._refuse(section, pc, f"write into map forbidden, value_size={value_size} off={off} "
                                            f"size={size}")
        if reg.var >= BPF_MAX_VAR_OFF:
            raise self._refuse(section, pc, f"R{regno} unbounded memory access, make sure to bounds check any "
                                            "such access")
        if off < 0 or off + size > value_size:
            raise self._refuse(section, pc, f"invalid access to map value, value_size={value_size} off={off} "
                                            f"size={size}\nR{regno} min value is outside of the allowed memory "
                                            "range")
        if off + reg.var + size > value_size:
            raise self._refuse(section, pc, f"invalid access to map value, value_size={value_size} "
                                            f"off={off + reg.var} size={size}\nR{regno} max value is outside of "
                                            "the allowed memory range")
        return loaded

    def _ctx_access(self, section: str, pc: int, regno: int, reg: Ptr, off: int, size: int, access: str,
                    loaded: Reg) -> Reg:
        """check_ctx_access() with xdp_is_valid_access / tc_cls_act_is_valid_access."""
        if reg.off or reg.var:
            raise self._refuse(section, pc, f"dereference of modified ctx ptr R{regno} off={reg.off} disallowed")
        pointers = _CTX_POINTERS.get(self.prog_type, {})
        if self.prog_type == "xdp":
            valid = access == "read" and 0 <= off < _XDP_MD_SIZE and size == 4 and off % 4 == 0
        elif self.prog_type == "sched_cls":
            valid = 0 <= off and off + size <= _SKB_SIZE and off % size == 0 \
                and (off not in pointers or size == 4) and (access == "read" or off - off % 4 in _SKB_WRITABLE)
        else:
            valid = True
        if not valid:
            raise self._refuse(section, pc, f"invalid bpf_context access off={off} size={size}")
        if access == "read" and off in pointers:
            return Ptr(pointers[off])
        return loaded

    # LD

    def _check_ld(self, state: _State, sec: CodeSection, pc: int, insn: Insn) -> int:
        mode = insn.code & 0xE0
        if insn.code == LD_IMM64:
            if insn.off:
                raise self._refuse(sec.name, pc, "BPF_LD_IMM64 uses reserved fields")
            self._write(state, sec.name, pc, insn.dst, self._imm64(sec, pc, insn))
            return pc + 2
        if mode in (BPF_ABS, BPF_IND):
            if self.prog_type != "sched_cls":
                raise self._refuse(sec.name, pc, "BPF_LD_[ABS|IND] instructions not allowed for this program type")
            if insn.dst or insn.off or insn.code & 0x18 == BPF_DW or (mode == BPF_ABS and insn.src):
                raise self._refuse(sec.name, pc, "BPF_LD_[ABS|IND] uses reserved fields")
            six = self._read(state, sec.name, pc, 6)
            if not (isinstance(six, Ptr) and six.kind == "ctx"):
                raise self._refuse(sec.name, pc, "at the time of BPF_LD_ABS|IND R6 != pointer to skb")
            if mode == BPF_IND:
                self._read(state, sec.name, pc, insn.src)
            for regno in range(1, 6):
                state.regs[regno] = None
            state.regs[0] = Scalar(0, (1 << (8 * SIZE_BYTES[insn.code & 0x18])) - 1)
            return pc + 1
        raise self._refuse(sec.name, pc, "invalid BPF_LD mode")

    def _imm64(self, sec: CodeSection, pc: int, insn: Insn) -> Reg:
        reloc = sec.relocs.get(pc)
        second = sec.insns[pc + 1]
        if isinstance(reloc, MapReloc):
            if reloc.value_off is None:
                return Ptr("map_ptr", aux=reloc.map)
            return Ptr("map_value", off=reloc.value_off, aux=reloc.map)
        if insn.src == 0:
            value = (insn.imm & M32) | ((second.imm & M32) << 32)
            return Scalar(value, value)
        bpf_map = self.map_by_fd(insn.imm)
        if bpf_map is None:
            raise self._refuse(sec.name, pc, f"fd {insn.imm} is not pointing to valid bpf_map")
        if insn.src == BPF_PSEUDO_MAP_FD:
            return Ptr("map_ptr", aux=bpf_map)
        return Ptr("map_value", off=second.imm, aux=bpf_map)

    # jumps

    def _check_cond_jmp(self, state: _State, section: str, pc: int, insn: Insn) -> _State | bool | None:
        """check_cond_jmp_op(): True or False when only one side can run (the
        other is dead for these bounds), otherwise the taken side's state
        (this `state` becomes the fall-through side)."""
        op, is32, use_reg = insn.code & 0xF0, insn.cls == BPF_JMP32, bool(insn.code & BPF_X)
        if (use_reg and insn.imm) or (not use_reg and insn.src):
            raise self._refuse(section, pc, "BPF_JMP/JMP32 uses reserved fields")
        dst = self._read(state, section, pc, insn.dst)
        if use_reg:
            src = self._read(state, section, pc, insn.src)
        else:
            imm = insn.imm & (M32 if is32 else M64)
            src = Scalar(imm, imm)
        if isinstance(dst, Scalar) and isinstance(src, Scalar):
            if is32:
                if not (_fits32(dst) and _fits32(src)):
                    return self._fork(state)
            outcome = _branch_outcome(op, dst, src)
            if outcome is not None:
                return outcome
            taken = self._fork(state)
            refined = _refine(op, dst, src)
            if refined is None:
                return taken
            (t_dst, t_src), (f_dst, f_src) = refined
            self._set_scalar(taken, insn.dst, dst, t_dst)
            self._set_scalar(state, insn.dst, dst, f_dst)
            if use_reg:
                self._set_scalar(taken, insn.src, src, t_src)
                self._set_scalar(state, insn.src, src, f_src)
            return taken
        if is32:
            return self._fork(state)
        if isinstance(dst, Ptr) and not dst.kind.endswith("_or_null") and src == Scalar(0, 0) \
                and op in (BPF_JEQ, BPF_JNE):
            return op == BPF_JNE  # a pointer known not to be NULL
        taken = self._fork(state)
        if isinstance(dst, Ptr) and dst.kind.endswith("_or_null") and isinstance(src, Scalar) \
                and src == Scalar(0, 0) and op in (BPF_JEQ, BPF_JNE):
            null_side, valid_side = (taken, state) if op == BPF_JEQ else (state, taken)
            _mark_null(null_side, dst.id, Scalar(0, 0))
            _mark_null(valid_side, dst.id, None)
        elif isinstance(dst, Ptr) and isinstance(src, Ptr):
            self._packet_compare(op, insn.dst, dst, insn.src, src, state, taken)
        return taken

    @staticmethod
    def _set_scalar(state: _State, regno: int, before: Scalar, after: Scalar) -> None:
        if before != after:
            state.regs[regno] = after

    @staticmethod
    def _fork(state: _State) -> _State:
        return state.copy()

    @staticmethod
    def _packet_compare(op: int, dst_no: int, dst: Ptr, src_no: int, src: Ptr, fall: _State, taken: _State) -> None:
        """try_match_pkt_pointers(): pkt vs pkt_end (or pkt_meta vs pkt) proves a range on one side."""
        pairs = {("pkt", "pkt_end"), ("pkt_meta", "pkt")}
        if (dst.kind, src.kind) in pairs:
            ptr, ptr_on_left = dst, True
        elif (src.kind, dst.kind) in pairs:
            ptr, ptr_on_left = src, False
        else:
            return
        # (side where the range holds, right-open) for `ptr OP end` and for `end OP ptr`
        sides = {BPF_JGT: ((fall, False), (taken, True)), BPF_JLT: ((taken, True), (fall, False)),
                 BPF_JGE: ((fall, True), (taken, False)), BPF_JLE: ((taken, False), (fall, True))}
        if op not in sides:
            return
        side, right_open = sides[op][0 if ptr_on_left else 1]
        if ptr.off < 0 or (ptr.off == 0 and right_open):
            return
        new_range = ptr.off + (1 if right_open else 0)
        for frame in side.frames:
            for regno, reg in enumerate(frame.regs):
                if isinstance(reg, Ptr) and reg.kind == ptr.kind and reg.id == ptr.id and reg.rng < new_range:
                    frame.regs[regno] = reg._replace(rng=new_range)
            for slot, reg in frame.stack.items():
                if isinstance(reg, Ptr) and reg.kind == ptr.kind and reg.id == ptr.id and reg.rng < new_range:
                    frame.stack[slot] = reg._replace(rng=new_range)

    # calls

    def _check_call(self, state: _State, sec: CodeSection, pc: int, insn: Insn) -> tuple[str, int] | None:
        if insn.code & BPF_X or (insn.src != BPF_PSEUDO_KFUNC_CALL and insn.off) \
                or insn.src not in (0, BPF_PSEUDO_CALL, BPF_PSEUDO_KFUNC_CALL) or insn.dst:
            raise self._refuse(sec.name, pc, "BPF_CALL uses reserved fields")
        callee = self._callee(sec, pc, insn)
        if callee is not None:
            return self._enter_function(state, sec.name, pc, callee)
        if insn.src == BPF_PSEUDO_KFUNC_CALL:
            raise self._refuse(sec.name, pc, "calling kernel functions is not allowed")
        name = HELPER_IDS.get(insn.imm)
        if name is None:
            raise self._refuse(sec.name, pc, f"invalid func unknown#{insn.imm}")
        if insn.imm not in self.helpers:
            raise self._refuse(sec.name, pc, f"program of this type cannot use helper {name}#{insn.imm}")
        self._helper_call(state, sec.name, pc, name)
        return None

    def _helper_call(self, state: _State, section: str, pc: int, name: str) -> None:
        """check_helper_call(): the arguments against the func_proto, r1-r5
        clobbered, r0 as the proto returns it."""
        args, ret, changes_pkt = HELPER_PROTOS[name]
        regs = state.regs
        bpf_map = release = None
        alloc_size = 0
        for index, arg in enumerate(args):
            regno = index + 1
            reg = self._read(state, section, pc, regno)
            if arg.kind == "any":
                continue
            if arg.kind == "map":
                if not (isinstance(reg, Ptr) and reg.kind == "map_ptr"):
                    raise self._refuse(section, pc, f"R{regno} type={_type_name(reg)} expected=map_ptr")
                bpf_map = reg.aux
            elif arg.kind == "ctx":
                if not (isinstance(reg, Ptr) and reg.kind == "ctx"):
                    raise self._refuse(section, pc, f"R{regno} type={_type_name(reg)} expected=ctx")
            elif arg.kind == "ringbuf_mem":
                if not (isinstance(reg, Ptr) and reg.kind == "ringbuf_mem"):
                    raise self._refuse(section, pc, f"R{regno} type={_type_name(reg)} expected=ringbuf_mem")
                if reg.off:
                    raise self._refuse(section, pc, f"R{regno} must have zero offset when passed to release func")
                release = reg.ref
            elif arg.kind in ("key", "value"):
                size = bpf_map.key_size if arg.kind == "key" else bpf_map.value_size
                self._check_mem_arg(state, section, pc, regno, reg, size, "read", arg)
            elif arg.kind in ("mem", "uninit_mem"):
                size_reg = regs[regno + 1]
                if not isinstance(size_reg, Scalar):
                    continue  # the size argument's own check names it
                size = self._check_size(section, pc, regno + 1, size_reg, args[index + 1].or_zero)
                access = "write" if arg.kind == "uninit_mem" else "read"
                if not (arg.or_zero and reg == Scalar(0, 0)):
                    self._check_mem_arg(state, section, pc, regno, reg, size, access, arg)
            elif arg.kind == "alloc_size":
                if not (isinstance(reg, Scalar) and reg.const):
                    raise self._refuse(section, pc, f"R{regno} is not a known constant")
                alloc_size = reg.umin
            elif arg.kind == "size":
                if not isinstance(reg, Scalar):
                    raise self._refuse(section, pc, f"R{regno} type={_type_name(reg)} expected=scalar")
        if release is not None:
            state.refs = tuple(ref for ref in state.refs if ref[0] != release)
            _invalidate_ref(state, release)
        for regno in range(1, 6):
            regs[regno] = None
        if changes_pkt:
            _clear_packet_pointers(state)
        if ret == "map_value_or_null":
            regs[0] = Ptr("map_value_or_null", aux=bpf_map, id=self._new_id())
        elif ret == "ringbuf_mem_or_null":
            self._new_id()  # the maybe-NULL pointer's id, replaced by the reference's (acquire_reference)
            ref = self._new_id()
            regs[0] = Ptr("ringbuf_mem_or_null", aux=alloc_size, id=ref, ref=ref)
            state.refs = state.refs + ((ref, pc),)
        else:
            regs[0] = UNKNOWN

    def _check_size(self, section: str, pc: int, regno: int, reg: Scalar, or_zero: bool) -> int:
        """check_mem_size_reg(): the largest size the register may hold."""
        if reg.umax >= BPF_MAX_VAR_SIZ:
            raise self._refuse(section, pc, f"R{regno} unbounded memory access, use 'var &= const' or "
                                            "'if (var < const)'")
        if reg.umin == 0 and not or_zero:
            raise self._refuse(section, pc, f"R{regno} invalid zero-sized read: u64=[{reg.umin},{reg.umax}]")
        return reg.umax

    def _check_mem_arg(self, state: _State, section: str, pc: int, regno: int, reg: Reg, size: int, access: str,
                       arg: Arg) -> None:
        """check_helper_mem_access(): `size` bytes at the pointer, in bounds."""
        if not (isinstance(reg, Ptr) and reg.kind in _MEM_KINDS):
            raise self._refuse(section, pc, f"R{regno} type={_type_name(reg)} expected={_MEM_TYPES}")
        if size == 0:
            return
        if reg.kind == "fp":
            off = reg.off
            self._update_stack_depth(state.frames[reg.aux], off)
            if off < -MAX_BPF_STACK or off + reg.var + size > 0:
                raise self._refuse(section, pc, f"invalid {'read from' if access == 'read' else 'write to'} stack "
                                                f"R{regno} off={off} size={size}")
            if access == "write":
                frame = state.frames[reg.aux]
                for slot in range(off - off % 8, off + reg.var + size, 8):
                    frame.stack[slot] = UNKNOWN
            return
        self._check_mem(state, section, pc, regno, 0, size, access, UNKNOWN)

    def _update_stack_depth(self, frame: _Frame, off: int) -> None:
        """update_stack_depth(): the deepest offset the function owning the frame reaches."""
        if -off > self.stack_depth.get(frame.func, 0):
            self.stack_depth[frame.func] = -off

    def _check_max_stack_depth(self, section: str, entry: int) -> None:
        """check_max_stack_depth_subprog(), after do_check: from the main
        function, every chain of bpf-to-bpf calls (in instruction order) may
        use MAX_BPF_STACK bytes in all, each frame's depth rounded up as
        round_up_stack_depth() does for a JITed program (to 16 bytes: the x86-64
        JIT is always on, bpf_jit_enable=1); a function calling bpf_tail_call
        may not be entered over 256 bytes of callers' frames (the
        8 KB worst case of 33 chained tail calls). No private stacks: XDP and
        TC programs get none (bpf_enable_priv_stack())."""
        def walk(func: tuple[str, int], depth: int, frames: int) -> None:
            if frames > 1 and func in self.tail_callers and depth >= 256:
                raise self._refuse(section, None, "tail_calls are not allowed when call stack of previous frames "
                                                  f"is {depth} bytes. Too large")
            depth += -(-self.stack_depth.get(func, 0) // 16) * 16
            if depth > MAX_BPF_STACK:
                raise self._refuse(section, None, f"combined stack size of {frames} calls is {depth}. Too large")
            for _, callee in self.calls.get(func, ()):
                if frames >= MAX_CALL_FRAMES:
                    raise self._refuse(section, None, f"the call stack of {frames} frames is too deep !")
                walk(callee, depth, frames + 1)
        walk((section, entry), 0, 1)

    def _enter_function(self, state: _State, section: str, pc: int, callee: tuple[str, int]) -> tuple[str, int]:
        """check_func_call(): a new frame with r1-r5 passed."""
        if len(state.frames) >= MAX_CALL_FRAMES:
            raise self._refuse(section, pc, f"the call stack of {len(state.frames) + 1} frames is too deep")
        caller = state.regs
        regs: list[Reg] = [None] * 11
        regs[1:6] = caller[1:6]
        regs[10] = Ptr("fp", aux=len(state.frames))
        state.frames.append(_Frame(regs, {}, (section, pc), callee))
        return callee

    def _exit(self, state: _State, section: str, pc: int) -> tuple[str, int] | None:
        """check_return_code / prepare_func_exit(): where the path goes on, or
        None at the end of the main program."""
        r0 = self._read(state, section, pc, 0)
        if len(state.frames) == 1:
            if state.refs:
                ref, alloc = state.refs[0]
                raise self._refuse(section, pc, f"Unreleased reference id={ref} alloc_insn={alloc}\n"
                                                "BPF_EXIT instruction in main prog would lead to reference leak")
            return None
        if isinstance(r0, Ptr) and r0.kind == "fp":
            raise self._refuse(section, pc, "cannot return stack pointer to the caller")
        callee = state.frames.pop()
        caller = state.regs
        caller[0] = r0
        for regno in range(1, 6):
            caller[regno] = None
        callsite_section, callsite_pc = callee.callsite
        return callsite_section, callsite_pc + 1

    # pruning

    def _is_state_visited(self, state: _State, section: str, pc: int) -> bool:
        """is_state_visited(): True when a finished checkpoint here covers this
        state (the path is pruned); refuses a state that comes back exactly
        while its earlier self is still being walked (an infinite loop)."""
        key = (section, pc, tuple(frame.callsite for frame in state.frames))
        checkpoints = self.checkpoints.setdefault(key, [])
        kept = []
        for old in checkpoints:
            if old.branches:
                if _exact(old, state):
                    raise self._refuse(section, None, f"infinite loop detected at insn {pc}")
            elif self._covers(old, state):
                old.hits += 1
                return True
            old.misses += 1
            if old.misses <= old.hits * 3 + 3:  # a checkpoint that keeps missing is dropped
                kept.append(old)
        checkpoints[:] = kept
        processed, jumps = self.checkpointed_at
        if self.jumps - jumps >= 2 and self.processed - processed >= 8:  # add_new_state's heuristic
            checkpoint = _Checkpoint(state)
            checkpoints.append(checkpoint)
            state.parent = checkpoint
            self.checkpointed_at = (self.processed, self.jumps)
        return False

    def _covers(self, old: _Checkpoint, cur: _State) -> bool:
        """states_equal(): everything `cur` may do, `old` was verified to do."""
        if old.refs != cur.refs or len(old.frames) != len(cur.frames):
            return False
        imprecise = self.imprecise
        for (old_regs, old_stack), frame in zip(old.frames, cur.frames):
            for regno, (was, now) in enumerate(zip(old_regs, frame.regs)):
                if not _reg_covers(was, now, regno in imprecise):
                    return False
            for slot, was in old_stack.items():
                if not _reg_covers(was, frame.stack.get(slot), False):
                    return False
        return True


def _exact(old: _Checkpoint, cur: _State) -> bool:
    return old.refs == cur.refs and old.frames == [(tuple(f.regs), f.stack) for f in cur.frames]


def _reg_covers(was: Reg, now: Reg, imprecise: bool) -> bool:
    if was is None:
        return True  # never read after this point: the walk from `old` would have refused
    if now is None:
        return False
    if isinstance(was, Scalar):
        return isinstance(now, Scalar) and (imprecise or (was.umin <= now.umin and now.umax <= was.umax))
    if not isinstance(now, Ptr) or was.kind != now.kind or was.aux != now.aux:
        return False
    if was.off != now.off or now.var > was.var:
        return False
    return now.rng >= was.rng


def _type_name(reg: Reg) -> str:
    return "scalar" if isinstance(reg, Scalar) else reg.kind


def _mark_null(state: _State, ptr_id: int, null_value: Reg) -> None:
    """mark_ptr_or_null_regs(): every copy of the lookup's result is NULL (a
    scalar 0) on one side and the object on the other."""
    for frame in state.frames:
        for regno, reg in enumerate(frame.regs):
            if isinstance(reg, Ptr) and reg.id == ptr_id and reg.kind.endswith("_or_null"):
                frame.regs[regno] = null_value or reg._replace(kind=reg.kind[:-len("_or_null")], id=0)
        for slot, reg in list(frame.stack.items()):
            if isinstance(reg, Ptr) and reg.id == ptr_id and reg.kind.endswith("_or_null"):
                frame.stack[slot] = null_value or reg._replace(kind=reg.kind[:-len("_or_null")], id=0)
    if null_value is not None:
        state.refs = tuple(ref for ref in state.refs if ref[0] != ptr_id)


def _invalidate_ref(state: _State, ref: int) -> None:
    """release_reference(): the record is gone; copies of its pointer become unusable."""
    for frame in state.frames:
        for regno, reg in enumerate(frame.regs):
            if isinstance(reg, Ptr) and reg.ref == ref:
                frame.regs[regno] = UNKNOWN
        for slot, reg in list(frame.stack.items()):
            if isinstance(reg, Ptr) and reg.ref == ref:
                frame.stack[slot] = UNKNOWN


def _clear_packet_pointers(state: _State) -> None:
    """clear_all_pkt_pointers(): a helper that may move the packet leaves
    every packet pointer unknown (using one is 'invalid mem access')."""
    for frame in state.frames:
        for regno, reg in enumerate(frame.regs):
            if isinstance(reg, Ptr) and reg.kind in ("pkt", "pkt_end", "pkt_meta"):
                frame.regs[regno] = UNKNOWN
        for slot, reg in list(frame.stack.items()):
            if isinstance(reg, Ptr) and reg.kind in ("pkt", "pkt_end", "pkt_meta"):
                frame.stack[slot] = UNKNOWN


def _truncate32(reg: Reg) -> Reg:
    if isinstance(reg, Scalar) and reg.umax <= M32:
        return reg
    if isinstance(reg, Scalar) and reg.const:
        return Scalar(reg.umin & M32, reg.umin & M32)
    return Scalar(0, M32)


def _scalar_alu(op: int, is64: bool, dst: Scalar, src: Scalar) -> Scalar:
    """adjust_scalar_min_max_vals() on unsigned bounds: constants fold exactly,
    add/sub/and/shifts keep bounds when nothing wraps, the rest is unknown."""
    mask = M64 if is64 else M32
    bits = 64 if is64 else 32
    if not is64:
        dst, src = _truncate32(dst), _truncate32(src)
    if dst.const and src.const:
        value = _fold(op, dst.umin & mask, src.umin & mask, bits)
        return Scalar(value, value) if value is not None else Scalar(0, mask)
    if op == BPF_ADD and dst.umax + src.umax <= mask:
        return Scalar(dst.umin + src.umin, dst.umax + src.umax)
    if op == BPF_SUB and dst.umin >= src.umax:
        return Scalar(dst.umin - src.umax, dst.umax - src.umin)
    if op == BPF_AND:
        return Scalar(0, min(dst.umax, src.umax))
    if op == BPF_RSH and src.const and src.umin < bits:
        return Scalar(dst.umin >> src.umin, dst.umax >> src.umin)
    if op == BPF_LSH and src.const and src.umin < bits and dst.umax << src.umin <= mask:
        return Scalar(dst.umin << src.umin, dst.umax << src.umin)
    if op in (BPF_DIV,) and src.const and src.umin:
        return Scalar(dst.umin // src.umin, dst.umax // src.umin)
    if op == BPF_MOD and src.const and src.umin:
        return Scalar(0, min(dst.umax, src.umin - 1))
    if op == BPF_OR and dst.umax | src.umax <= mask:
        return Scalar(max(dst.umin, src.umin), (1 << max(dst.umax, src.umax).bit_length()) - 1)
    return Scalar(0, mask)


def _fold(op: int, a: int, b: int, bits: int) -> int | None:
    mask = (1 << bits) - 1
    if op == BPF_ADD:
        return (a + b) & mask
    if op == BPF_SUB:
        return (a - b) & mask
    if op == BPF_MUL:
        return (a * b) & mask
    if op == BPF_AND:
        return a & b
    if op == BPF_OR:
        return a | b
    if op == BPF_XOR:
        return a ^ b
    if op == BPF_LSH:
        return (a << (b & (bits - 1))) & mask
    if op == BPF_RSH:
        return a >> (b & (bits - 1))
    if op == BPF_ARSH:
        sign = 1 << (bits - 1)
        return (((a ^ sign) - sign) >> (b & (bits - 1))) & mask
    if op == BPF_DIV:
        return a // b if b else 0
    if op == BPF_MOD:
        return a % b if b else a
    return None


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _branch_outcome(op: int, dst: Scalar, src: Scalar) -> bool | None:
    """is_branch_taken(): True/False when the bounds decide the jump, else None."""
    if op in (BPF_JSGT, BPF_JSGE, BPF_JSLT, BPF_JSLE):
        if dst.umax >= 1 << 63 or src.umax >= 1 << 63:
            if not (dst.const and src.const):
                return None
            a, b = _signed(dst.umin), _signed(src.umin)
            return {BPF_JSGT: a > b, BPF_JSGE: a >= b, BPF_JSLT: a < b, BPF_JSLE: a <= b}[op]
        op = {BPF_JSGT: BPF_JGT, BPF_JSGE: BPF_JGE, BPF_JSLT: BPF_JLT, BPF_JSLE: BPF_JLE}[op]
    if op == BPF_JEQ:
        if dst.const and src.const:
            return dst.umin == src.umin
        return False if dst.umin > src.umax or src.umin > dst.umax else None
    if op == BPF_JNE:
        outcome = _branch_outcome(BPF_JEQ, dst, src)
        return None if outcome is None else not outcome
    if op == BPF_JSET:
        if dst.const and src.const:
            return bool(dst.umin & src.umin)
        return False if src.const and dst.umax < (src.umin & -src.umin) else None
    if op == BPF_JGT:
        return True if dst.umin > src.umax else False if dst.umax <= src.umin else None
    if op == BPF_JGE:
        return True if dst.umin >= src.umax else False if dst.umax < src.umin else None
    if op == BPF_JLT:
        return True if dst.umax < src.umin else False if dst.umin >= src.umax else None
    if op == BPF_JLE:
        return True if dst.umax <= src.umin else False if dst.umin > src.umax else None
    return None


def _refine(op: int, dst: Scalar, src: Scalar) -> tuple[tuple[Scalar, Scalar], tuple[Scalar, Scalar]] | None:
    """reg_set_min_max(): the operands' bounds on the taken and the
    fall-through side; None when the bounds teach nothing."""
    signed = {BPF_JSGT: BPF_JGT, BPF_JSGE: BPF_JGE, BPF_JSLT: BPF_JLT, BPF_JSLE: BPF_JLE}
    if op in signed:
        if dst.umax >= 1 << 63 or src.umax >= 1 << 63:
            return None
        op = signed[op]
    if op == BPF_JEQ or op == BPF_JNE:
        both = Scalar(max(dst.umin, src.umin), min(dst.umax, src.umax))
        equal, unequal = (both, both), (_exclude(dst, src), _exclude(src, dst))
        return (equal, unequal) if op == BPF_JEQ else (unequal, equal)
    if op == BPF_JSET:
        return None
    # normalise to dst > src (taken) / dst <= src (fall-through)
    if op == BPF_JGT:
        return _greater(dst, src, 1), _not_greater(dst, src, 0)
    if op == BPF_JGE:
        return _greater(dst, src, 0), _not_greater(dst, src, 1)
    if op == BPF_JLT:
        taken = _greater(src, dst, 1)
        fall = _not_greater(src, dst, 0)
        return (taken[1], taken[0]), (fall[1], fall[0])
    taken = _greater(src, dst, 0)
    fall = _not_greater(src, dst, 1)
    return (taken[1], taken[0]), (fall[1], fall[0])


def _exclude(reg: Scalar, other: Scalar) -> Scalar:
    """reg after reg != other: a constant at either end of the bounds moves it."""
    if other.const and reg.umin < reg.umax:
        if reg.umin == other.umin:
            return Scalar(reg.umin + 1, reg.umax)
        if reg.umax == other.umin:
            return Scalar(reg.umin, reg.umax - 1)
    return reg


def _greater(a: Scalar, b: Scalar, strict: int) -> tuple[Scalar, Scalar]:
    """Bounds of a and b knowing a > b (strict 1) or a >= b (strict 0)."""
    return Scalar(max(a.umin, b.umin + strict), a.umax), Scalar(b.umin, min(b.umax, a.umax - strict))


def _not_greater(a: Scalar, b: Scalar, strict: int) -> tuple[Scalar, Scalar]:
    """Bounds of a and b knowing a <= b (strict 0) or a < b (strict 1)."""
    return Scalar(a.umin, min(a.umax, b.umax - strict)), Scalar(max(b.umin, a.umin + strict), b.umax)
