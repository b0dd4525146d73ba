"""Classic BPF (struct sock_filter programs; net/core/filter.c): what
bpf_prog_create() accepts (bpf_check_basics_ok(), bpf_check_classic(),
check_load_and_stores()) and what the program computes on an skb as the
kernel runs it once bpf_convert_filter() has made it eBPF.

The machine: 32-bit registers A and X (zero at the start), 16 scratch words
M[] (a load of one never stored on every path is refused at load), loads of
the packet relative to skb->data (`ld [k]`, `ld [x + k]`, `ldx 4*([k]&0xf)`)
or, with negative offsets, to the network (SKF_NET_OFF) or link-layer
(SKF_LL_OFF) header, ancillary loads (SKF_AD_OFF + n), 32-bit unsigned
arithmetic and forward jumps only: a program runs at most its length in
instructions. A load outside the packet and a division by X = 0 end the run
returning 0 (convert_bpf_ld_abs(), bpf_convert_filter()); a shift takes the
low 5 bits of its count (the JIT's shl/shr).

Ancillary loads modelled: protocol, pkttype, ifindex, hatype, mark, vlan_tag,
vlan_tag_present, vlan_tpid (the tag the frame carries out of band, taken
off as it was received: skb_vlan_untag()), cpu (the mock's one CPU, 0), random, and the A ^= X
operation; the others (rxhash, queue, nlattr, nlattr_nest, pay_offset) are
accepted by the kernel and named as not modelled by `unmodelled_ancillary()`.
"""
from __future__ import annotations

from dataclasses import dataclass


# include/uapi/linux/bpf_common.h, filter.h: classes, sizes, modes, operations
BPF_LD, BPF_LDX, BPF_ST, BPF_STX, BPF_ALU, BPF_JMP, BPF_RET, BPF_MISC = range(8)
BPF_W, BPF_H, BPF_B = 0x00, 0x08, 0x10
BPF_IMM, BPF_ABS, BPF_IND, BPF_MEM, BPF_LEN, BPF_MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH, BPF_RSH, BPF_NEG, BPF_MOD, BPF_XOR = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0)
BPF_JA, BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET = 0x00, 0x10, 0x20, 0x30, 0x40
BPF_K, BPF_X, BPF_A = 0x00, 0x08, 0x10
BPF_TAX, BPF_TXA = 0x00, 0x80
BPF_MEMWORDS = 16
BPF_MAXINSNS = 4096
SKF_AD_OFF, SKF_NET_OFF, SKF_LL_OFF = -0x1000, -0x100000, -0x200000
# SKF_AD_* (include/uapi/linux/filter.h), by their offset from SKF_AD_OFF
ANCILLARY = {0: "protocol", 4: "pkttype", 8: "ifindex", 12: "nlattr", 16: "nlattr_nest", 20: "mark", 24: "queue",
             28: "hatype", 32: "rxhash", 36: "cpu", 40: "alu_xor_x", 44: "vlan_tag", 48: "vlan_tag_present",
             52: "pay_offset", 56: "random", 60: "vlan_tpid"}
UNMODELLED_ANCILLARY = ("nlattr", "nlattr_nest", "queue", "rxhash", "pay_offset")
ARPHRD_ETHER, ARPHRD_LOOPBACK = 1, 772  # include/uapi/linux/if_arp.h: dev->type
LOAD_SIZES = {BPF_W: 4, BPF_H: 2, BPF_B: 1}
U32 = 0xFFFFFFFF
EINVAL = 22

_ALU = (BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_MOD, BPF_AND, BPF_OR, BPF_XOR, BPF_LSH, BPF_RSH)
_CONDITIONAL = tuple(BPF_JMP | op | src for op in (BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET) for src in (BPF_K, BPF_X))
# chk_code_allowed()'s table
CODES_ALLOWED = frozenset(
    [BPF_ALU | op | src for op in _ALU for src in (BPF_K, BPF_X)] + [BPF_ALU | BPF_NEG]
    + [BPF_LD | size | mode for size in (BPF_W, BPF_H, BPF_B) for mode in (BPF_ABS, BPF_IND)]
    + [BPF_LD | BPF_W | BPF_LEN, BPF_LD | BPF_IMM, BPF_LD | BPF_MEM, BPF_LDX | BPF_W | BPF_LEN,
       BPF_LDX | BPF_B | BPF_MSH, BPF_LDX | BPF_IMM, BPF_LDX | BPF_MEM, BPF_ST, BPF_STX, BPF_MISC | BPF_TAX,
       BPF_MISC | BPF_TXA, BPF_RET | BPF_K, BPF_RET | BPF_A, BPF_JMP | BPF_JA] + list(_CONDITIONAL))


@dataclass(frozen=True)
class SockFilter:
    """struct sock_filter: one instruction."""

    code: int  # u16
    jt: int  # u8
    jf: int  # u8
    k: int  # u32


def s32(value: int) -> int:
    value &= U32
    return value - (1 << 32) if value & 0x80000000 else value


def ancillary_of(insn: SockFilter) -> str | None:
    """bpf_anc_helper(): the SKF_AD_* an `ld [k]` names, or None."""
    if insn.code not in (BPF_LD | BPF_W | BPF_ABS, BPF_LD | BPF_H | BPF_ABS, BPF_LD | BPF_B | BPF_ABS):
        return None
    return ANCILLARY.get(s32(insn.k) - SKF_AD_OFF)


def bpf_check_classic(prog: list[SockFilter]) -> int:
    """bpf_check_basics_ok() and bpf_check_classic(): 0, or -EINVAL for a
    program of no or too many instructions, an opcode not in the table, a
    constant division by 0 or shift by 32 or more, a scratch word out of M[],
    a jump past the end, an unknown ancillary load, or a last instruction
    that is no return."""
    flen = len(prog)
    if not 0 < flen <= BPF_MAXINSNS:
        return -EINVAL
    for pc, insn in enumerate(prog):
        code, k = insn.code, insn.k
        if code not in CODES_ALLOWED:
            return -EINVAL
        if code in (BPF_ALU | BPF_DIV | BPF_K, BPF_ALU | BPF_MOD | BPF_K) and k == 0:
            return -EINVAL
        if code in (BPF_ALU | BPF_LSH | BPF_K, BPF_ALU | BPF_RSH | BPF_K) and k >= 32:
            return -EINVAL
        if code in (BPF_LD | BPF_MEM, BPF_LDX | BPF_MEM, BPF_ST, BPF_STX) and k >= BPF_MEMWORDS:
            return -EINVAL
        if code == BPF_JMP | BPF_JA and k >= flen - pc - 1:
            return -EINVAL
        if code in _CONDITIONAL and (pc + insn.jt + 1 >= flen or pc + insn.jf + 1 >= flen):
            return -EINVAL
        if code & 0x07 == BPF_LD and code & 0xE0 == BPF_ABS and ancillary_of(insn) is None and k >= SKF_AD_OFF & U32:
            return -EINVAL
    if prog[-1].code not in (BPF_RET | BPF_K, BPF_RET | BPF_A):
        return -EINVAL
    return check_load_and_stores(prog)


def check_load_and_stores(prog: list[SockFilter]) -> int:
    """A scratch word is read only where every path to the read stored it."""
    masks, memvalid = [0xFFFF] * len(prog), 0
    for pc, insn in enumerate(prog):
        memvalid &= masks[pc]
        code = insn.code
        if code in (BPF_ST, BPF_STX):
            memvalid |= 1 << insn.k
        elif code in (BPF_LD | BPF_MEM, BPF_LDX | BPF_MEM):
            if not memvalid & (1 << insn.k):
                return -EINVAL
        elif code == BPF_JMP | BPF_JA:
            masks[pc + 1 + insn.k] &= memvalid
            memvalid = 0xFFFF
        elif code in _CONDITIONAL:
            masks[pc + 1 + insn.jt] &= memvalid
            masks[pc + 1 + insn.jf] &= memvalid
            memvalid = 0xFFFF
    return 0


def unmodelled_ancillary(prog: list[SockFilter]) -> str | None:
    """The first ancillary load the mock leaves out, by its SKF_AD_ name."""
    return next((name for name in map(ancillary_of, prog) if name in UNMODELLED_ANCILLARY), None)


class ClassicPacket:
    """What a classic program sees of an skb: its bytes from skb->data (the
    network header at the IP hooks) to the tail, the network and MAC headers
    for negative offsets, and the skb's own fields for the ancillary loads."""

    __slots__ = ("skb", "buf", "data", "tail", "random")

    def __init__(self, skb, data: int, tail: int, random) -> None:
        self.skb, self.buf, self.data, self.tail, self.random = skb, skb.buf, data, tail, random

    def load(self, offset: int, size: int) -> int | None:
        """bpf_skb_load_helper_{8,16,32}(): the big-endian word at `offset`,
        None outside the packet (bpf_internal_load_pointer_neg_helper() for
        negative offsets)."""
        if offset >= 0:
            at = self.data + offset
        elif offset >= SKF_NET_OFF:
            at = self.skb.network_header + offset - SKF_NET_OFF
        elif offset >= SKF_LL_OFF:
            at = self.skb.mac_header + offset - SKF_LL_OFF
        else:
            return None
        if at < 0 or at + size > self.tail:
            return None
        return int.from_bytes(self.buf[at:at + size], "big")

    def ancillary(self, name: str, a: int, x: int) -> int:
        """convert_bpf_extensions(): the value an ancillary load puts in A."""
        skb, dev = self.skb, self.skb.dev  # a packet at a netfilter hook always has its device
        if name == "protocol":
            return skb.protocol
        if name == "pkttype":
            return skb.pkt_type & 7
        if name == "ifindex":
            return dev.ifindex
        if name == "hatype":
            return ARPHRD_LOOPBACK if dev.is_loopback else ARPHRD_ETHER
        if name == "mark":
            return skb.mark
        if name == "vlan_tag":
            return skb.vlan_tci
        if name == "vlan_tag_present":
            return int(skb.vlan_proto != 0)
        if name == "vlan_tpid":
            return skb.vlan_proto
        if name == "cpu":
            return 0
        if name == "random":
            return self.random.getrandbits(32)
        return (a ^ x) & U32  # alu_xor_x


def bpf_prog_run(prog: list[SockFilter], pkt: ClassicPacket) -> int:
    """The program's return value (u32), the classic semantics the converted
    eBPF program keeps."""
    a = x = pc = 0
    mem = [0] * BPF_MEMWORDS
    length = pkt.tail - pkt.data
    while True:
        insn = prog[pc]
        code, k = insn.code, insn.k
        cls = code & 0x07
        pc += 1
        if cls == BPF_RET:
            return a if code & 0x18 == BPF_A else k
        if cls == BPF_LD:
            mode = code & 0xE0
            if mode in (BPF_ABS, BPF_IND):
                name = ancillary_of(insn)
                if name is not None:
                    a = pkt.ancillary(name, a, x)
                    continue
                loaded = pkt.load(s32(k) if mode == BPF_ABS else s32(x + k), LOAD_SIZES[code & 0x18])
                if loaded is None:
                    return 0
                a = loaded
            elif mode == BPF_LEN:
                a = length
            elif mode == BPF_MEM:
                a = mem[k]
            else:
                a = k
        elif cls == BPF_LDX:
            mode = code & 0xE0
            if mode == BPF_MSH:
                loaded = pkt.load(s32(k), 1)
                if loaded is None:
                    return 0
                x = (loaded & 0xF) << 2
            elif mode == BPF_LEN:
                x = length
            elif mode == BPF_MEM:
                x = mem[k]
            else:
                x = k
        elif cls == BPF_ST:
            mem[k] = a
        elif cls == BPF_STX:
            mem[k] = x
        elif cls == BPF_ALU:
            op = code & 0xF0
            if op == BPF_NEG:
                a = -a & U32
                continue
            operand = x if code & BPF_X else k
            if op in (BPF_DIV, BPF_MOD) and operand == 0:
                return 0
            a = _alu(op, a, operand)
        elif cls == BPF_JMP:
            op = code & 0xF0
            if op == BPF_JA:
                pc += k
                continue
            operand = x if code & BPF_X else k
            taken = a == operand if op == BPF_JEQ else a > operand if op == BPF_JGT else \
                a >= operand if op == BPF_JGE else bool(a & operand)
            pc += insn.jt if taken else insn.jf
        else:
            if code & 0xF8 == BPF_TXA:
                a = x
            else:
                x = a


def _alu(op: int, a: int, operand: int) -> int:
    if op == BPF_ADD:
        return (a + operand) & U32
    if op == BPF_SUB:
        return (a - operand) & U32
    if op == BPF_MUL:
        return (a * operand) & U32
    if op == BPF_DIV:
        return a // operand
    if op == BPF_MOD:
        return a % operand
    if op == BPF_AND:
        return a & operand
    if op == BPF_OR:
        return a | operand
    if op == BPF_XOR:
        return a ^ operand
    if op == BPF_LSH:
        return (a << (operand & 31)) & U32
    return a >> (operand & 31)
