"""-m u32 (iptables 1.8.9 extensions/libxt_u32.c; net/netfilter/xt_u32.c):
tests on 32-bit words read at offsets from the IP header, sent by
iptables-nft as an xt match (nft_compat), which nft 1.0.6 lists as
`xt match u32` (libxt_u32 has no xlate()).

`--u32 "TEST&&TEST..."`, a TEST being `LOCATION=VALUE[,VALUE...]`: LOCATION
a number then `&N`, `<<N`, `>>N` or `@N` steps, a VALUE `N` or `N:M`; at most
XT_U32_MAXSIZE (10) tests, numbers in a location and values in a test.
u32_parse() reads the numbers as xtables_strtoui() does (strtoumax(), base
0: spaces, `+`, 0x and 0 prefixes) and its messages name the character
where it stopped; u32_dump() saves every number in hex.
"""
from __future__ import annotations

from harness.mockkernel.lib.libc import C_SPACE
from harness.mockkernel.netfilter.nft_compat import XtCompat
from harness.mockkernel.netfilter.nft_exprs import Stmt
from harness.mockkernel.netfilter.xt_matches import XtMatch
from harness.mockkernel.netfilter.xt_options import XtOpt, usage_error, xtables_strtoul

XT_U32_MAXSIZE = 10  # include/uapi/linux/netfilter/xt_u32.h
XT_U32_AND, XT_U32_LEFTSH, XT_U32_RIGHTSH, XT_U32_AT = range(4)  # enum xt_u32_ops
OPERATORS = {XT_U32_AND: "&", XT_U32_LEFTSH: "<<", XT_U32_RIGHTSH: ">>", XT_U32_AT: "@"}
UINT32_MAX = 0xFFFFFFFF


class U32Test:
    """struct xt_u32_test: locations [(operator, number)] (the first one's
    operator unused) and value ranges [(min, max)]."""

    def __init__(self) -> None:
        self.location: list[tuple[int | None, int]] = []
        self.value: list[tuple[int, int]] = []

    def text(self) -> str:
        """u32_dump() of one test."""
        out = f"0x{self.location[0][1]:x}" + "".join(f"{OPERATORS[op]}0x{n:x}" for op, n in self.location[1:])
        return out + "=" + ",".join(f"0x{lo:x}" if lo == hi else f"0x{lo:x}:0x{hi:x}" for lo, hi in self.value)


def u32_parse(arg: str) -> list[U32Test]:
    """libxt_u32.c u32_parse(): the state machine, with its messages; state 0
    reads a location, state 1 its values."""
    def error(message: str):
        return usage_error(f"u32: {message}")

    def parse_number(pos: int) -> tuple[int, int]:
        read = xtables_strtoul(arg, pos)
        if read is None or read[0] > UINT32_MAX or read[1] == pos:
            raise error(f"at char {pos}: not a number or out of range")
        return read

    tests, test, state, at = [], U32Test(), 0, 0
    while True:
        while at < len(arg) and arg[at] in C_SPACE:
            at += 1
        if at == len(arg):
            if state == 0:
                raise error("abrupt end of input after location specifier")
            if not test.value:
                raise error("test ended with no value specified")
            tests.append(test)
            if len(tests) > XT_U32_MAXSIZE:
                raise error(f'at char {at}: too many "&&"s')
            return tests
        char = arg[at]
        if state == 0:
            if char == "=":
                if not test.location:
                    raise error(f"at char {at}: location spec missing")
                at, state = at + 1, 1
                continue
            operator = None
            if test.location:  # an operator before each number but the first
                if char == "&":
                    operator = XT_U32_AND
                elif char in "<>":
                    at += 1
                    if at == len(arg) or arg[at] != char:
                        raise error(f"at char {at}: a second '{char}' was expected")
                    operator = XT_U32_LEFTSH if char == "<" else XT_U32_RIGHTSH
                elif char == "@":
                    operator = XT_U32_AT
                else:
                    raise error(f"at char {at}: operator expected")
                at += 1
            number, at = parse_number(at)
            test.location.append((operator, number))
            if len(test.location) > XT_U32_MAXSIZE:
                raise error(f"at char {at}: too many operators")
        elif char == "&":
            at += 1
            if at == len(arg) or arg[at] != "&":
                raise error(f"at char {at}: a second '&' was expected")
            if not test.value:
                raise error(f"at char {at}: value spec missing")
            tests.append(test)
            if len(tests) > XT_U32_MAXSIZE:
                raise error(f'at char {at}: too many "&&"s')
            test, state, at = U32Test(), 0, at + 1
        else:
            if test.value:
                if char != ",":
                    raise error(f'at char {at}: expected "," or "&&"')
                at += 1
            low, at = parse_number(at)
            while at < len(arg) and arg[at] in C_SPACE:
                at += 1
            high = low
            if at < len(arg) and arg[at] == ":":
                high, at = parse_number(at + 1)
            test.value.append((low, high))
            if len(test.value) > XT_U32_MAXSIZE:
                raise error(f'at char {at}: too many ","s')


def u32_match_it(tests: list[U32Test], buf, start: int, end: int) -> bool:
    """xt_u32.c u32_match_it(): each test reads the 32-bit word at its first
    number (from the IP header: skb->data at the IP hooks), applies `&`, `<<`,
    `>>` (32-bit) and `@` (move on by the value read so far, then read the word
    at the next number from there); a read past the packet's end fails the
    whole match; the word must fall in one of the ranges."""
    length = end - start
    for test in tests:
        at, pos = 0, test.location[0][1]
        if length < 4 or pos > length - 4:
            return False
        val = int.from_bytes(buf[start + pos:start + pos + 4], "big")
        for operator, number in test.location[1:]:
            if operator == XT_U32_AND:
                val &= number
            elif operator == XT_U32_LEFTSH:  # a shift of 32 or more: x86's shl/shr count, the low 5 bits
                val = (val << (number & 31)) & UINT32_MAX
            elif operator == XT_U32_RIGHTSH:
                val >>= number & 31
            else:
                if at + val > UINT32_MAX:
                    return False
                at += val
                pos = number
                if at + 4 > UINT32_MAX or length < at + 4 or pos > length - at - 4:
                    return False
                val = int.from_bytes(buf[start + at + pos:start + at + pos + 4], "big")
        if not any(low <= val <= high for low, high in test.value):
            return False
    return True


class U32Match(XtMatch):
    """[!] --u32 TESTS; u32_mt(): u32_match_it() XOR the inversion."""

    name = "u32"
    OPTIONS = (XtOpt(("--u32",), invert=True, mandatory=True),)

    def __init__(self) -> None:
        super().__init__()
        self.tests: list[U32Test] = []
        self.invert = False

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        self.tests, self.invert = u32_parse(value), invert

    def _dump(self) -> str:
        return '"' + "&&".join(test.text() for test in self.tests) + '"'

    def save(self) -> str:
        return f"-m u32 {'! ' if self.invert else ''}--u32 {self._dump()}"

    def listing(self) -> str:
        return f"u32 {'! ' if self.invert else ''}{self._dump()}"

    def stmts(self, rule) -> list[Stmt]:
        tests, invert = self.tests, self.invert

        def build(ctx):
            def u32_mt(pkt) -> bool:
                return u32_match_it(tests, pkt.buf, pkt.nh, pkt.end) != invert
            return u32_mt
        return [XtCompat("match", "u32", None, build)]


U32_MATCHES = {"u32": U32Match}
