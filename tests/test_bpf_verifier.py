"""The mock's verifier against the kernel's: the same decision, the same message.

Each case is a program and the verifier message Linux 6.18 gives when root
loads it (None: it loads). The mock must refuse with that message, or load
and run it; where this host lets us load programs (root, bpf(2)), the same
program goes to the real verifier too, which must decide the same way and
end its log with the same message. Maps are created on both sides alike
(`MAP` in a program is the hash map's fd, `RINGBUF` the ring buffer's).
"""
from __future__ import annotations

import pytest

from harness.mockkernel.bpf import BpfFault, BpfLoadError, BpfRuntime, SkBuffCtx, XdpMd
from harness.mockkernel.bpf.asm import assemble
from harness.mockkernel.bpf.host import HostVerifier
from harness.mockkernel.bpf.maps import BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_RINGBUF, EFAULT
from harness.mockkernel.bpf.syscall import TracePipe
from harness.mockkernel.bpf.vm import CTX_ADDR, M64

PACKET_CHECK = "ldxw r2, [r1+0]\nldxw r3, [r1+4]\nmov r4, r2\nadd r4, 14\n"
LOOKUP = "stw [r10-4], 0\nlddw r1, map_by_fd(MAP)\nmov r2, r10\nadd r2, -4\ncall 1\n"

# (case, program type, program, the kernel's message or None)
CASES = [
    # control flow
    ("unreachable insn", "xdp", "mov r0, 0\nja +1\nmov r0, 1\nexit", "unreachable insn 2"),
    ("jump out of range", "xdp", "mov r0, 0\nja +5\nexit", "jump out of range from insn 1 to 7"),
    ("falls off the end", "xdp", "mov r0, 0\njeq r0, 0, +0", "jump out of range from insn 1 to 2"),
    ("last insn a conditional jump", "xdp", "mov r0, 0\njeq r0, 1, -2", "last insn is not an exit or jmp"),
    ("loop that never ends", "xdp", "mov r0, 0\nmov r2, 0\nL:\nadd r0, 1\njeq r2, 0, L\nexit",
     "BPF program is too large. Processed 1000001 insn"),
    ("the issue's loop, r0 uninitialised", "xdp", "mov r2, 0\nL:\nadd r0, 1\njeq r2, 0, L\nexit", "R0 !read_ok"),
    ("loop back to the same state", "xdp", "mov r0, 0\njeq r0, 0, -2\nexit", "infinite loop detected at insn 1"),
    ("bounded loop", "xdp", "mov r0, 0\nmov r1, 0\nL:\nadd r0, r1\nadd r1, 1\njlt r1, 10, L\nexit", None),
    ("bounded loop, signed compare", "xdp", "mov r0, 0\nmov r1, 0\nL:\nadd r1, 1\njslt r1, 100, L\nexit", None),
    ("call stack too deep", "xdp", "call local f\nexit\nf:\ncall local f\nexit",
     "the call stack of 9 frames is too deep"),
    # registers
    ("uninitialised register", "xdp", "mov r0, r3\nexit", "R3 !read_ok"),
    ("r1-r5 after a helper call", "xdp", "call 5\nmov r0, r1\nexit", "R1 !read_ok"),
    ("uninitialised on one path only", "xdp", "mov r0, 0\njeq r1, 1, +1\nmov r3, 1\njeq r1, 1, +1\nmov r0, r3\nexit",
     "R3 !read_ok"),
    ("frame pointer written", "xdp", "mov r0, 0\nmov r10, 0\nexit", "frame pointer is read only"),
    ("stack pointer returned by main", "xdp", "mov r0, r10\nexit", None),
    ("stack pointer returned to the caller", "xdp", "call local f\nexit\nf:\nmov r0, r10\nexit",
     "cannot return stack pointer to the caller"),
    ("pointer multiplied", "xdp", "mov r0, r10\nmul r0, 2\nexit", "R0 pointer arithmetic with *= operator prohibited"),
    ("pointer and-ed", "xdp", "mov r0, r10\nand r0, 7\nexit", "R0 bitwise operator &= on pointer prohibited"),
    ("pointer plus pointer", "xdp", "mov r0, r10\nadd r0, r10\nexit", "R0 pointer += pointer prohibited"),
    ("32-bit pointer arithmetic", "xdp", "mov r0, r10\nadd32 r0, 1\nexit", "R0 32-bit pointer arithmetic prohibited"),
    ("pointer minus pointer", "xdp", "mov r0, r10\nsub r0, r10\nexit", None),
    ("scalar dereferenced", "xdp", "mov r0, 7\nldxb r0, [r0+0]\nexit", "R0 invalid mem access 'scalar'"),
    ("pkt_end dereferenced", "xdp", "ldxw r3, [r1+4]\nldxb r0, [r3+0]\nexit", "R3 invalid mem access 'pkt_end'"),
    # stack
    ("stack write below the frame", "xdp", "stxdw [r10-520], r1\nmov r0, 0\nexit",
     "invalid write to stack R10 off=-520 size=8"),
    ("stack write above the frame", "xdp", "stxdw [r10+8], r1\nmov r0, 0\nexit", "invalid write to stack R10 off=8 size=8"),
    ("stack read at the frame top", "xdp", "ldxw r0, [r10+0]\nexit", "invalid read from stack R10 off=0 size=4"),
    ("stack read far below", "xdp", "mov r2, r10\nadd r2, -600\nldxdw r0, [r2+0]\nexit",
     "invalid read from stack R2 off=-600 size=8"),
    ("misaligned stack access", "xdp", "ldxdw r0, [r10-4]\nexit", "misaligned stack access off 0+0+-4 size 8"),
    ("uninitialised stack read as root", "xdp", "ldxdw r0, [r10-8]\nexit", None),
    ("spilled context pointer filled and used", "xdp", "stxdw [r10-8], r1\nldxdw r2, [r10-8]\nldxw r0, [r2+12]\nexit",
     None),
    # packet
    ("packet read without a bounds check", "xdp", "ldxw r2, [r1+0]\nldxb r0, [r2+0]\nexit",
     "invalid access to packet, off=0 size=1, R2(id=0,off=0,r=0)\nR2 offset is outside of the packet"),
    ("packet read inside the checked range", "xdp", PACKET_CHECK + "jgt r4, r3, +2\nldxb r0, [r2+13]\nexit\n"
     "mov r0, 0\nexit", None),
    ("packet read past the checked range", "xdp", PACKET_CHECK + "jgt r4, r3, +1\nldxb r0, [r2+14]\nmov r0, 0\nexit",
     "invalid access to packet, off=14 size=1, R2(id=0,off=14,r=14)\nR2 offset is outside of the packet"),
    ("packet range from <, right-open", "xdp", PACKET_CHECK + "jlt r4, r3, +2\nmov r0, 0\nexit\nldxb r0, [r2+14]\n"
     "exit", None),
    ("packet range from >=", "xdp", PACKET_CHECK + "jge r4, r3, +2\nldxb r0, [r2+14]\nexit\nmov r0, 0\nexit", None),
    ("packet pointers dropped by adjust_head", "xdp", PACKET_CHECK + "jgt r4, r3, +5\nmov r6, r2\nmov r2, 0\n"
     "call 44\nldxb r0, [r6+0]\nexit\nmov r0, 0\nexit", "R6 invalid mem access 'scalar'"),
    # context
    ("xdp_md read past its end", "xdp", "ldxw r2, [r1+28]\nmov r0, 0\nexit", "invalid bpf_context access off=28 size=4"),
    ("xdp_md misaligned read", "xdp", "ldxw r2, [r1+2]\nmov r0, 0\nexit", "invalid bpf_context access off=2 size=4"),
    ("xdp_md written", "xdp", "stw [r1+0], 1\nmov r0, 0\nexit", "invalid bpf_context access off=0 size=4"),
    ("modified ctx pointer", "xdp", "mov r0, r1\nadd r0, 8\nldxw r0, [r0+0]\nexit",
     "dereference of modified ctx ptr R0 off=8 disallowed"),
    ("__sk_buff mark written", "sched_cls", "stw [r1+8], 7\nmov r0, 0\nexit", None),
    ("__sk_buff ifindex written", "sched_cls", "stw [r1+40], 3\nmov r0, 0\nexit",
     "invalid bpf_context access off=40 size=4"),
    # maps and helpers
    ("map value used before the NULL check", "xdp", LOOKUP + "ldxdw r0, [r0+0]\nexit",
     "R0 invalid mem access 'map_value_or_null'"),
    ("map value after the NULL check", "xdp", LOOKUP + "jeq r0, 0, +2\nldxdw r0, [r0+0]\nexit\nmov r0, 0\nexit", None),
    ("map value read past its size", "xdp", LOOKUP + "jeq r0, 0, +2\nldxdw r0, [r0+4]\nexit\nmov r0, 0\nexit",
     "invalid access to map value, value_size=8 off=4 size=8\nR0 min value is outside of the allowed memory range"),
    ("helper given a context for a map", "xdp", "mov r2, r10\nadd r2, -4\ncall 1\nmov r0, 0\nexit",
     "R1 type=ctx expected=map_ptr"),
    ("helper given a scalar for a key", "xdp", "lddw r1, map_by_fd(MAP)\nmov r2, 0\ncall 1\nmov r0, 0\nexit",
     "R2 type=scalar expected=fp, pkt, pkt_meta, map_key, map_value, mem, ringbuf_mem, buf, trusted_ptr_"),
    ("key past the stack top", "xdp", "lddw r1, map_by_fd(MAP)\nmov r2, r10\nadd r2, -2\ncall 1\nmov r0, 0\nexit",
     "invalid read from stack R2 off=-2 size=4"),
    ("zero-sized read", "xdp", "mov r1, r10\nadd r1, -8\nmov r2, 0\ncall 6\nmov r0, 0\nexit",
     "R2 invalid zero-sized read: u64=[0,0]"),
    ("helper read past the stack", "xdp", "mov r1, r10\nadd r1, -8\nmov r2, 9\ncall 6\nmov r0, 0\nexit",
     "invalid read from stack R1 off=-8 size=9"),
    ("ringbuf record never released", "xdp", "lddw r1, map_by_fd(RINGBUF)\nmov r2, 8\nmov r3, 0\ncall 131\n"
     "mov r0, 0\nexit",
     "Unreleased reference id=2 alloc_insn=4\nBPF_EXIT instruction in main prog would lead to reference leak"),
    ("ringbuf record submitted", "xdp", "lddw r1, map_by_fd(RINGBUF)\nmov r2, 8\nmov r3, 0\ncall 131\n"
     "jeq r0, 0, +3\nmov r1, r0\nmov r2, 0\ncall 132\nmov r0, 0\nexit", None),
    ("unknown helper", "xdp", "call 9999\nexit", "invalid func unknown#9999"),
    ("helper of another program type", "xdp", "mov r1, 0\ncall 9\nexit",
     "program of this type cannot use helper bpf_skb_store_bytes#9"),
    # encodings the kernel refuses ("unused field set")
    ("ja with src set", "xdp", "RAW b700000000000000 0501000000000000 9500000000000000", "BPF_JA uses reserved fields"),
    ("ja with imm set", "xdp", "RAW b700000000000000 0500000001000000 9500000000000000", "BPF_JA uses reserved fields"),
    ("jeq imm with src set", "xdp", "RAW b700000000000000 1510000000000000 9500000000000000",
     "BPF_JMP/JMP32 uses reserved fields"),
    ("jeq reg with imm set", "xdp", "RAW b700000000000000 1d00000001000000 9500000000000000",
     "BPF_JMP/JMP32 uses reserved fields"),
    ("exit with dst set", "xdp", "RAW b700000000000000 9501000000000000", "BPF_EXIT uses reserved fields"),
    ("exit with imm set", "xdp", "RAW b700000000000000 9500000001000000", "BPF_EXIT uses reserved fields"),
    ("exit with off set", "xdp", "RAW b700000000000000 9500010000000000", None),
    ("call with dst set", "xdp", "RAW b700000000000000 8501000005000000 9500000000000000",
     "BPF_CALL uses reserved fields"),
    ("call with off set", "xdp", "RAW b700000000000000 8500010005000000 9500000000000000",
     "BPF_CALL uses reserved fields"),
    ("le16 with src set", "xdp", "RAW b700000000000000 d410000010000000 9500000000000000",
     "BPF_END uses reserved fields"),
    ("le16 with off set", "xdp", "RAW b700000000000000 d400010010000000 9500000000000000",
     "BPF_END uses reserved fields"),
    ("byte swap of 17 bits", "xdp", "RAW b700000000000000 d400000011000000 9500000000000000",
     "BPF_END uses reserved fields"),
    ("bswap64 with the X bit", "xdp", "RAW b700000000000000 df00000010000000 9500000000000000", "unknown opcode df"),
    ("st with src set", "xdp", "RAW 7a1af8ff00000000 b700000000000000 9500000000000000", "BPF_ST uses reserved fields"),
    ("stx with imm set", "xdp", "RAW 7b1af8ff01000000 b700000000000000 9500000000000000",
     "BPF_STX uses reserved fields"),
    ("ldx with imm set", "xdp", "RAW 7b1af8ff00000000 790af8ff01000000 9500000000000000",
     "BPF_LDX uses reserved fields"),
    ("ldx in mode 0x40", "xdp", "RAW 7b1af8ff00000000 590af8ff00000000 9500000000000000",
     "BPF_LDX uses reserved fields"),
    ("mov imm with src set", "xdp", "RAW b710000000000000 9500000000000000", "BPF_MOV uses reserved fields"),
    ("mov imm with off set", "xdp", "RAW b700010000000000 9500000000000000", "BPF_MOV uses reserved fields"),
    ("mov reg with imm set", "xdp", "RAW bf01000001000000 9500000000000000", "BPF_MOV uses reserved fields"),
    ("neg with imm set", "xdp", "RAW 8700000001000000 9500000000000000", "BPF_NEG uses reserved fields"),
    ("arsh32 reg with imm set", "xdp", "RAW b700000000000000 cc00000020000000 9500000000000000",
     "BPF_ALU uses reserved fields"),
    ("lddw with off set", "xdp", "RAW 1800010000000000 0000000000000000 9500000000000000",
     "BPF_LD_IMM64 uses reserved fields"),
    ("lddw with a bad second half", "xdp", "RAW 1800000000000000 0001000000000000 9500000000000000",
     "invalid bpf_ld_imm64 insn"),
    ("call register form", "xdp", "RAW b700000000000000 8d00000005000000 9500000000000000", "unknown opcode 8d"),
    # shift immediates
    ("lsh 64", "xdp", "mov r0, 0\nlsh r0, 64\nexit", "invalid shift 64"),
    ("arsh 64", "xdp", "mov r0, 0\narsh r0, 64\nexit", "invalid shift 64"),
    ("arsh -1", "xdp", "RAW b700000000000000 c7000000ffffffff 9500000000000000", "invalid shift -1"),
    ("rsh32 32", "xdp", "mov r0, 0\nrsh32 r0, 32\nexit", "invalid shift 32"),
    ("lsh32 32", "xdp", "mov r0, 0\nlsh32 r0, 32\nexit", "invalid shift 32"),
    ("arsh 63", "xdp", "mov r0, 0\narsh r0, 63\nexit", None),
    ("div by zero immediate", "xdp", "mov r0, 1\ndiv r0, 0\nexit", "div by zero"),
]


class Maps:
    """The maps the cases name, on the mock runtime."""

    def __init__(self, rt: BpfRuntime) -> None:
        self.hash = rt.create_map(BPF_MAP_TYPE_HASH, 4, 8, 16, name="hash")
        self.ringbuf = rt.create_map(BPF_MAP_TYPE_RINGBUF, 0, 0, 4096, name="rb")

    def bytecode(self, program: str) -> bytes:
        if program.startswith("RAW "):
            return bytes.fromhex(program[4:])
        return assemble(program.replace("RINGBUF", str(self.ringbuf.fd)).replace("MAP", str(self.hash.fd)))


def _load(prog_type: str, program: str, rt: BpfRuntime | None = None):
    rt = rt or BpfRuntime()
    return rt.load_program(Maps(rt).bytecode(program), prog_type)


@pytest.mark.parametrize("prog_type, program, message", [case[1:] for case in CASES], ids=[c[0] for c in CASES])
def test_the_mock_verifier_decides_as_the_kernel(prog_type, program, message):
    if message is None:
        _load(prog_type, program)
        return
    with pytest.raises(BpfLoadError) as refused:
        _load(prog_type, program)
    assert refused.value.verifier_message == message


@pytest.fixture(scope="session")
def host() -> HostVerifier:
    if not HostVerifier.available():
        pytest.skip("the host's verifier needs root and bpf(2) on x86_64/aarch64")
    return HostVerifier()


@pytest.mark.parametrize("prog_type, program, message", [case[1:] for case in CASES], ids=[c[0] for c in CASES])
def test_the_kernel_verifier_decides_as_the_cases_say(host, prog_type, program, message):
    rt = BpfRuntime()
    log = host.verify(Maps(rt).bytecode(program), prog_type, rt.map_by_fd)
    if message is None:
        assert log is None
    else:
        assert log is not None and log.endswith(message), log


def test_a_runtime_with_the_host_verifier_shows_the_kernels_log(host):
    rt = BpfRuntime(host_verifier=host)
    with pytest.raises(BpfLoadError, match=r"(?s)R3 !read_ok\nthe host kernel's verifier: .*\nR3 !read_ok"):
        rt.load_program(assemble("mov r0, r3\nexit"), "xdp")
    assert rt.load_program(assemble("mov r0, 2\nexit"), "xdp").run(XdpMd.from_frame(bytes(60))) == 2


def test_a_loop_the_verifier_bounds_runs_to_its_end():
    prog = _load("xdp", "mov r0, 0\nmov r1, 0\nL:\nadd r0, r1\nadd r1, 1\njlt r1, 10, L\nexit")
    assert prog.run(XdpMd.from_frame(bytes(60))) == sum(range(10))


def test_the_run_budget_stops_a_loop_as_the_last_guard():
    rt = BpfRuntime()
    prog = _load("xdp", "mov r0, 0\nmov r1, 0\nL:\nadd r0, r1\nadd r1, 1\njlt r1, 10, L\nexit", rt)
    rt.max_run_insns = 20  # the loop spans 3 instructions, 10 times round
    with pytest.raises(BpfFault, match="budget of instructions"):
        prog.run(XdpMd.from_frame(bytes(60)))


def test_skb_load_bytes_with_a_length_no_region_holds_fails_the_call():
    """The verifier bounds len by the buffer; past it (a helper called with an
    unverified length) the call fails with -EFAULT instead of allocating."""
    rt = BpfRuntime()
    rt.ctx = SkBuffCtx(bytearray(60), 0, 60)
    to = rt.mem.stack_tops[0] - 8
    assert rt.helpers.bpf_skb_load_bytes(CTX_ADDR, 0, to, 1 << 40, 0) == (-EFAULT) & M64
    assert rt.helpers.bpf_skb_load_bytes(CTX_ADDR, 58, to, 8, 0) == (-EFAULT) & M64  # past the packet: zeroed
    assert rt.mem.read(to, 8) == bytes(8)


def test_trace_pipe_keeps_the_newest_lines_within_the_kernels_buffer():
    rt = BpfRuntime()
    prog = _load("xdp", "stdw [r10-8], 0x0a6968\nmov r1, r10\nadd r1, -8\nmov r2, 4\ncall 6\nmov r0, 2\nexit", rt)
    for _ in range(3):
        prog.run(XdpMd.from_frame(bytes(60)))
    assert list(rt.trace_pipe) == ["hi\n"] * 3
    line = "x" * 1023
    for _ in range(TracePipe.SIZE // 1024 + 10):
        rt.trace_pipe.append(line)
    assert rt.trace_pipe.bytes <= TracePipe.SIZE and rt.trace_pipe[0] == line and rt.trace_pipe[-1] == line
    assert sum(len(kept) + 1 for kept in rt.trace_pipe) == rt.trace_pipe.bytes


def _undecided_jumps(count: int) -> bytes:
    """r2 = a context byte; `if r2 == 5 goto +1; r0 += 1` count times: each jump forks the walk."""
    return assemble("mov r0, 0\nldxw r2, [r1+12]\nand r2, 0xff\n" + "jeq r2, 5, +1\nadd r0, 1\n" * count + "exit")


def test_more_than_8192_waiting_forks_are_refused_as_the_kernel_does():
    with pytest.raises(BpfLoadError) as refused:
        BpfRuntime().load_program(_undecided_jumps(8193), "xdp")
    assert refused.value.verifier_message == "The sequence of 8193 jumps is too complex."


def test_the_kernel_refuses_more_than_8192_waiting_forks(host):
    assert host.verify(_undecided_jumps(8193), "xdp").endswith("The sequence of 8193 jumps is too complex.")
    assert host.verify(_undecided_jumps(8000), "xdp") is None


@pytest.mark.parametrize("ingress_ifindex", [0, 5])
def test_a_function_translated_in_chunks_runs_as_the_instructions_say(ingress_ifindex):
    """8,000 forks: past CHUNK_INSNS, so the function is translated in chunks;
    r0 counts the adds no jump skipped (all of them, or none when r2 == 5)."""
    prog = BpfRuntime().load_program(_undecided_jumps(8000), "xdp")
    assert prog.run(XdpMd.from_frame(bytes(60), ingress_ifindex=ingress_ifindex)) == \
        (8000 if ingress_ifindex != 5 else 0)


def test_a_fault_in_a_chunk_names_the_instruction():
    program = assemble("mov r0, 1\n" * 5000 + "ldxdw r0, [r1+100]\nexit")  # one block, cut in three chunks
    with pytest.raises(BpfFault, match=r"insn 5000 \(r0 = \*\(u64 \*\)\(r1 \+100\)\): read of 8 bytes at memory\+0x64"):
        BpfRuntime().load_program(program, "raw").run_raw(bytearray(8))


# Two functions of 304 bytes of stack each (38 u64 slots written): alone each fits
# MAX_BPF_STACK, together they do not.
TWO_DEEP_FRAMES = """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
static __attribute__((noinline)) int leaf(struct xdp_md *ctx) {
    volatile __u64 buf[38];
#pragma unroll
    for (int i = 0; i < 38; i++)
        buf[i] = ctx->ingress_ifindex + i;
    return buf[37] == 1000;
}
SEC("xdp")
int xdp_deep(struct xdp_md *ctx) {
    volatile __u64 buf[%d];
#pragma unroll
    for (int i = 0; i < %d; i++)
        buf[i] = ctx->rx_queue_index + i;
    return buf[0] + leaf(ctx) == 1000 ? XDP_DROP : XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
"""


def _two_frames(bpf_objects, tmp_path, caller_slots: int):
    source = tmp_path / f"two_frames_{caller_slots}.c"
    source.write_text(TWO_DEEP_FRAMES % (caller_slots, caller_slots))
    return bpf_objects[source]


def test_two_calls_of_304_bytes_of_stack_are_refused_as_608_combined(bpf_objects, tmp_path):
    """check_max_stack_depth_subprog(): the frames of a call chain share
    MAX_BPF_STACK; each rounded up to 16 bytes as for a JITed program."""
    with pytest.raises(BpfLoadError) as refused:
        BpfRuntime().load_object(_two_frames(bpf_objects, tmp_path, 38))
    assert refused.value.verifier_message == "combined stack size of 2 calls is 608. Too large"


def test_a_call_chain_within_512_bytes_of_stack_loads(bpf_objects, tmp_path):
    obj = BpfRuntime().load_object(_two_frames(bpf_objects, tmp_path, 24))  # 192 + 304 bytes
    assert obj.program("xdp_deep").run(XdpMd.from_frame(bytes(60))) == 2


def test_the_host_kernel_refuses_the_combined_stack_with_the_same_message(host, bpf_objects, tmp_path):
    log = host.verify_object(_two_frames(bpf_objects, tmp_path, 38).read_bytes())
    assert log == "prog 'xdp_deep': combined stack size of 2 calls is 608. Too large"
    assert host.verify_object(_two_frames(bpf_objects, tmp_path, 24).read_bytes()) == ""


def test_an_object_the_mock_refuses_shows_the_host_kernels_log_too(host, bpf_objects, tmp_path):
    rt = BpfRuntime(host_verifier=host)
    with pytest.raises(BpfLoadError, match=r"(?s)^xdp: combined stack size of 2 calls is 608\. Too large\n"
                                           r"the host kernel's verifier: prog 'xdp_deep': combined stack size"):
        rt.load_object(_two_frames(bpf_objects, tmp_path, 38))


def test_an_object_the_host_kernel_refuses_is_refused_with_its_log(host, bpf_objects):
    """xdp_meta calls bpf_xdp_adjust_meta, which some kernels refuse for the
    program type (this host's 6.18 among them): the mock, which runs it,
    refuses the object wherever the host does, with the host's log, and
    keeps none of its maps or programs."""
    data = bpf_objects["xdp_meta"].read_bytes()
    if host.verify_object(data) == "":
        pytest.skip("this host's kernel loads xdp_meta.o: no refusal to show")
    rt = BpfRuntime(host_verifier=host)
    with pytest.raises(BpfLoadError, match=r"(?s)^xdp_meta: the host kernel's verifier refuses it:\n"
                                           r"prog 'xdp_meta_mark': .*cannot use helper bpf_xdp_adjust_meta#54"):
        rt.load_object(data, "xdp_meta")
    assert not rt.progs and not rt.maps
    assert BpfRuntime().load_object(data, "xdp_meta").program("xdp_meta_mark")  # the mock alone loads it


def test_an_object_the_host_kernel_loads_is_loaded_by_the_mock(host, bpf_objects):
    obj = BpfRuntime(host_verifier=host).load_object(bpf_objects["xdp_drop_udp"])
    assert obj.program().run(XdpMd.from_frame(bytes(60))) in (1, 2)


# A function calling bpf_tail_call, called from a frame of SLOTS u64 slots.
TAIL_CALL_UNDER_A_FRAME = """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_PROG_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u32); }
    jumps SEC(".maps");
static __attribute__((noinline)) int jump(struct xdp_md *ctx) {
    bpf_tail_call(ctx, &jumps, 0);
    return XDP_PASS;
}
SEC("xdp")
int xdp_tail(struct xdp_md *ctx) {
    volatile __u64 buf[%d];
#pragma unroll
    for (int i = 0; i < %d; i++)
        buf[i] = ctx->rx_queue_index + i;
    return buf[0] + jump(ctx) == 1000 ? XDP_DROP : XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.mark.parametrize("slots, message", [
    (31, "tail_calls are not allowed when call stack of previous frames is 256 bytes. Too large"),  # 248 -> 256
    (30, None),  # 240 bytes
])
def test_a_tail_call_under_256_bytes_of_callers_frames_is_refused(bpf_objects, tmp_path, slots, message):
    """check_max_stack_depth_subprog(): bpf2bpf calls mixed with tail calls
    may use at most 256 bytes below a function that tail-calls (33 chained
    tail calls then stay within 8 KB of kernel stack)."""
    source = tmp_path / f"tail_{slots}.c"
    source.write_text(TAIL_CALL_UNDER_A_FRAME % (slots, slots))
    if message is None:
        assert BpfRuntime().load_object(bpf_objects[source]).program("xdp_tail")
    else:
        with pytest.raises(BpfLoadError) as refused:
            BpfRuntime().load_object(bpf_objects[source])
        assert refused.value.verifier_message == message
