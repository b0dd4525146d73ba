"""-m bpf (iptables 1.8.9 extensions/libxt_bpf.c revision 1; net/netfilter/
xt_bpf.c): a classic BPF program (core/filter.py) run on the packet from its
IP header, matching when it returns non-zero. Sent by iptables-nft as an xt
match (nft_compat); nft 1.0.6 lists it as `xt match bpf` (no xlate()).

--bytecode "N,CODE JT JF K,..." as `nfbpf_compile RAW '<filter>'` prints it,
read as bpf_parse_string() reads it with sscanf() (`%hu`, `%hhu`, `%u`: the
numbers truncated to their C types), at most XT_BPF_MAX_NUM_INSTR (64)
instructions. bpf_mt_check_v1() loads it with bpf_prog_create(): a program
bpf_check_classic() refuses is EINVAL, "RULE_APPEND failed (Invalid argument)".
Left out: --object-pinned (an eBPF socket filter pinned in bpffs) is named as
not modelled.
"""
from __future__ import annotations

import re

from harness.mockkernel.core.filter import (ClassicPacket, SockFilter, bpf_check_classic, bpf_prog_run,
                                            unmodelled_ancillary)
from harness.mockkernel.netfilter.nft_compat import XtCompat
from harness.mockkernel.netfilter.nft_exprs import Stmt
from harness.mockkernel.netfilter.xt_matches import XtMatch, kernel_refusal
from harness.mockkernel.netfilter.xt_options import XtOpt, not_modelled_error, usage_error

XT_BPF_MAX_NUM_INSTR = 64  # include/uapi/linux/netfilter/xt_bpf.h
_SCANNED = re.compile(r"[ \t\n\v\f\r]*([+-]?)([0-9]+)")
_SPACES = re.compile(r"[ \t\n\v\f\r]*")


def scan_unsigned(text: str, at: int, bits: int) -> tuple[int, int] | None:
    """A `%u`-like sscanf() conversion at `at`: (value, end), the value as
    strtoul() gives it (negated modulo 2**64, saturated on overflow) cut to
    `bits`; None when no digit is there."""
    found = _SCANNED.match(text, at)
    if found is None:
        return None
    value = int(found.group(2))
    value = (1 << 64) - 1 if value >= 1 << 64 else -value % (1 << 64) if found.group(1) == "-" else value
    return value & ((1 << bits) - 1), found.end()


def bpf_parse_string(program: str) -> list[SockFilter]:
    """libxt_bpf.c bpf_parse_string(): the length, then one instruction after
    each comma that is not the last character."""
    def error(message: str):
        return usage_error(f"bpf: {message}")

    head = scan_unsigned(program, 0, 16)
    if head is None or program[head[1]:head[1] + 1] != ",":
        raise error("error parsing program length")
    length = head[0]
    if not length:
        raise error("illegal zero length program")
    if length > XT_BPF_MAX_NUM_INSTR:
        raise error("number of instructions exceeds maximum")
    insns, comma = [], program.find(",")
    while comma != -1 and comma + 1 < len(program):
        if len(insns) >= length:
            raise error("real program length exceeds the encoded length parameter")
        fields, at = [], comma + 1
        for bits in (16, 8, 8, 32):  # "%hu %hhu %hhu %u": the spaces match any run of white space, or none
            read = scan_unsigned(program, _SPACES.match(program, at).end(), bits)
            if read is None:
                raise error(f"error at instr {len(insns)}")
            value, at = read
            fields.append(value)
        insns.append(SockFilter(*fields))
        comma = program.find(",", comma + 1)
    if len(insns) != length:
        raise error("parsed program length is less than the encoded length parameter")
    return insns


class BpfMatch(XtMatch):
    """bpf_mt_v1(): bpf_prog_run_save_cb() of the program, non-zero a match."""

    name = "bpf"
    OPTIONS = (XtOpt(("--bytecode",)), XtOpt(("--object-pinned",)))
    LIST_SEPARATOR = ""  # bpf_print_v1() starts with "match bpf ", no space

    def __init__(self) -> None:
        super().__init__()
        self.program: list[SockFilter] = []

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        if option == "--object-pinned":
            raise not_modelled_error(f"{rule.family.prog} -m bpf --object-pinned")
        self.program = bpf_parse_string(value)

    def check(self, rule) -> None:
        if len(self.given) != 1:
            raise usage_error("bpf: one of --bytecode or --pinned is required")

    def kernel_check(self, rule, chain: str, builtin: bool) -> None:
        if bpf_check_classic(self.program):
            raise kernel_refusal(chain)
        ancillary = unmodelled_ancillary(self.program)
        if ancillary is not None:
            raise not_modelled_error(f"{rule.family.prog} -m bpf: the ancillary load SKF_AD_{ancillary.upper()}")

    def _code(self) -> str:
        return ",".join(f"{i.code} {i.jt} {i.jf} {i.k}" for i in self.program)

    def save(self) -> str:
        return f'-m bpf --bytecode "{len(self.program)},{self._code()}"'

    def listing(self) -> str:
        return f"match bpf {self._code()}\0"  # bpf_print_code() ends with its tail, '\0', printed with %c

    def stmts(self, rule) -> list[Stmt]:
        program = self.program

        def build(ctx):
            random = ctx.net.random

            def bpf_mt_v1(pkt) -> bool:
                return bpf_prog_run(program, ClassicPacket(pkt.skb, pkt.nh, pkt.end, random)) != 0
            return bpf_mt_v1
        return [XtCompat("match", "bpf", None, build)]


BPF_MATCHES = {"bpf": BpfMatch}
