"""BPF helper functions, as the kernel implements them for XDP and TC programs.

Models kernel/bpf/helpers.c (map ops, ktime, prandom, smp id), kernel/trace/
bpf_trace.c (bpf_trace_printk, captured in `runtime.trace_pipe`),
net/core/filter.c (skb load/store, l3/l4 checksum replace, csum_diff,
redirect, redirect_map, xdp_adjust_head/tail/meta, fib_lookup, the skb and
xdp flavours of perf_event_output), kernel/bpf/ringbuf.c, and the tail call
of kernel/bpf/core.c. A helper takes r1..r5 (u64) and returns r0 (u64; errors
are negative errnos). Checksum arithmetic follows include/net/checksum.h on a
little-endian machine: 16-bit fields are read as native u16 and the folded
sums compared byte for byte with the real kernel's results. Which helpers a
program type may call mirrors the func_proto tables; a program calling
another fails to load, as with the verifier's "unknown func".

bpf_fib_lookup for AF_INET6 routes through the FIB6 (ipv6/route.py), the
nd_tbl and ipv6_dev_get_saddr() as bpf_ipv6_fib_lookup() does. Left out: bpf_skb_adjust_room and
the other skb-resizing helpers, xdp frags, BPF_F_RECOMPUTE_CSUM's skb->csum
update (only matters for CHECKSUM_COMPLETE skbs).
"""
from __future__ import annotations

import re
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from harness.mockkernel.bpf.context import (
    CHECKSUM_COMPLETE,
    CHECKSUM_PARTIAL,
    TC_ACT_REDIRECT,
    TC_ACT_SHOT,
    XDP_FRAME_OVERHEAD,
    Redirect,
)
from harness.mockkernel.bpf.maps import (
    BPF_F_RDONLY_PROG,
    EFAULT,
    EINVAL,
    ENOENT,
    BpfMap,
    CpuMap,
    MapError,
    PerfEventArrayMap,
    ProgArrayMap,
    RedirectMap,
    RingBufMap,
)
from harness.mockkernel.bpf.vm import (
    M32,
    M64,
    MAX_TAIL_CALL_CNT,
    OFF_MASK,
    SEG_SHIFT,
    BpfFault,
    PacketLoadAbort,
    TailCall,
)
from harness.mockkernel.core.xdp import XDP_ABORTED, XDP_REDIRECT
from harness.mockkernel.ipv4 import route
from harness.mockkernel.ipv6.addrconf import __in6_dev_get as in6_dev_get  # a class body would mangle __
from harness.mockkernel.ipv6.addrconf import ipv6_dev_get_saddr
from harness.mockkernel.ipv6 import route as route6
from harness.mockkernel.net import (NUD_VALID, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN, RTN_BLACKHOLE,
                                    RTN_PROHIBIT, RTN_UNICAST, RTN_UNREACHABLE)
from harness.mockkernel.wire.ethernet import ETH_HLEN

if TYPE_CHECKING:
    from harness.mockkernel.bpf.syscall import BpfRuntime

EACCES, ENODEV, EAFNOSUPPORT = 13, 19, 97
BPF_F_CURRENT_CPU = 0xFFFFFFFF
BPF_F_CTXLEN_MASK = 0xFFFFF << 32
BPF_RB_NO_WAKEUP, BPF_RB_FORCE_WAKEUP = 1, 2
BPF_F_INGRESS = 1
BPF_F_BROADCAST, BPF_F_EXCLUDE_INGRESS = 1 << 3, 1 << 4
XDP_ACTION_MASK = 3  # the default action a failed redirect_map returns (ABORTED..TX)
# bpf_l3/l4_csum_replace flags
BPF_F_HDR_FIELD_MASK, BPF_F_PSEUDO_HDR, BPF_F_MARK_MANGLED_0, BPF_F_MARK_ENFORCE, BPF_F_IPV6 = 0xF, 16, 32, 64, 128
CSUM_MANGLED_0 = 0xFFFF
# bpf_skb_store_bytes flags
BPF_F_RECOMPUTE_CSUM, BPF_F_INVALIDATE_HASH = 1, 2
# bpf_fib_lookup
AF_INET, AF_INET6 = 2, 10
BPF_FIB_LOOKUP_DIRECT, BPF_FIB_LOOKUP_OUTPUT, BPF_FIB_LOOKUP_SKIP_NEIGH = 1, 2, 4
BPF_FIB_LOOKUP_TBID, BPF_FIB_LOOKUP_SRC = 8, 16
(BPF_FIB_LKUP_RET_SUCCESS, BPF_FIB_LKUP_RET_BLACKHOLE, BPF_FIB_LKUP_RET_UNREACHABLE, BPF_FIB_LKUP_RET_PROHIBIT,
 BPF_FIB_LKUP_RET_NOT_FWDED, BPF_FIB_LKUP_RET_FWD_DISABLED, BPF_FIB_LKUP_RET_UNSUPP_LWT,
 BPF_FIB_LKUP_RET_NO_NEIGH, BPF_FIB_LKUP_RET_FRAG_NEEDED, BPF_FIB_LKUP_RET_NO_SRC_ADDR) = range(10)
FIB_LOOKUP_SIZE = 64
IPV6_MIN_MTU, IP6_MAX_MTU = 1280, 0xFFFF + 40  # include/linux/ipv6.h, include/net/ip6_route.h
_FIB6_TYPE_RESULTS = {RTN_BLACKHOLE: BPF_FIB_LKUP_RET_BLACKHOLE, RTN_UNREACHABLE: BPF_FIB_LKUP_RET_UNREACHABLE,
                      RTN_PROHIBIT: BPF_FIB_LKUP_RET_PROHIBIT}
IPTOS_RT_MASK = 0x1C
MAX_BPF_STACK = 512

_U16 = struct.Struct("<H")
_PRINTK_SPEC = re.compile(r"%([-+ 0#]*\d*)(ll|l|h|hh|z)?([diuxXcsp%])")


def _err(errno: int) -> int:
    return -errno & M64


def _s32(value: int) -> int:
    return ((value & M32) ^ 0x80000000) - 0x80000000


# include/net/checksum.h, 32-bit ones'-complement arithmetic on native values
def csum_add(csum: int, addend: int) -> int:
    res = (csum + addend) & M32
    return (res + (res < addend)) & M32


def csum_sub(csum: int, addend: int) -> int:
    return csum_add(csum, ~addend & M32)


def csum_fold(csum: int) -> int:
    csum = (csum & 0xFFFF) + (csum >> 16)
    csum = (csum & 0xFFFF) + (csum >> 16)
    return ~csum & 0xFFFF


def csum_replace4(check: int, old: int, new: int) -> int:
    """csum_replace4(): the checksum `check` after a 32-bit word of what it
    covers went from `old` to `new`, i.e. csum_fold(csum_add(csum_sub(~check,
    old), new)). Those end-around-carry sums keep the value modulo 0xffff (a
    divisor of 2**32 - 1) and give 0 only for all-zero terms, which ~check
    never is: so the fold is the residue in 1..0xffff, computed directly
    (multi-digit integer steps are slow in CPython)."""
    return 0xFFFE - (new - old - check - 1) % 0xFFFF


def _word_sum(data: bytes) -> int:
    """The plain sum of `data` as little-endian u32 words (a short tail padded
    with zeros: modulo 0xffff the same as x86-64 adding its last 1-3 bytes)."""
    if len(data) & 3:
        data = bytes(data) + bytes(-len(data) & 3)
    return sum(struct.unpack(f"<{len(data) // 4}I", data))


def csum_partial(data: bytes, seed: int) -> int:
    """A 32-bit ones'-complement sum of little-endian words (x86-64 csum_partial)."""
    total = seed + _word_sum(data)
    while total >> 32:
        total = (total & M32) + (total >> 32)
    return total


def csum_from32to16(csum: int) -> int:
    """include/net/checksum.h: the 32-bit sum folded to 16 bits, not inverted."""
    return ((csum + ((csum >> 16) | (csum << 16))) & M32) >> 16


class Helpers:
    """The helpers of one BpfRuntime; `table(prog_type)` is what the
    translator binds calls to: {id: (name, callable)}."""

    def __init__(self, runtime: BpfRuntime) -> None:
        self.rt = runtime
        self.mem = runtime.mem
        self.regions = runtime.mem.regions
        common: dict[int, Callable] = {
            1: self.bpf_map_lookup_elem, 2: self.bpf_map_update_elem, 3: self.bpf_map_delete_elem,
            5: self.bpf_ktime_get_ns, 6: self.bpf_trace_printk, 7: self.bpf_get_prandom_u32,
            8: self.bpf_get_smp_processor_id, 125: self.bpf_ktime_get_boot_ns, 130: self.bpf_ringbuf_output,
            131: self.bpf_ringbuf_reserve, 132: self.bpf_ringbuf_submit, 133: self.bpf_ringbuf_discard,
        }
        packet = {12: self.bpf_tail_call, 25: self.bpf_perf_event_output, 28: self.bpf_csum_diff,
                  69: self.bpf_fib_lookup}
        self._tables = {
            "raw": common,
            "xdp": {**common, **packet, 23: self.bpf_xdp_redirect, 44: self.bpf_xdp_adjust_head,
                    51: self.bpf_xdp_redirect_map, 54: self.bpf_xdp_adjust_meta, 65: self.bpf_xdp_adjust_tail},
            "sched_cls": {**common, **packet, 9: self.bpf_skb_store_bytes, 10: self.bpf_l3_csum_replace,
                          11: self.bpf_l4_csum_replace, 23: self.bpf_redirect, 26: self.bpf_skb_load_bytes},
        }

    def table(self, prog_type: str) -> dict[int, tuple[str, Callable]]:
        names = {"bpf_xdp_redirect": "bpf_redirect", "bpf_xdp_redirect_map": "bpf_redirect_map"}
        return {hid: (names.get(fn.__name__, fn.__name__), fn) for hid, fn in self._tables[prog_type].items()}

    # argument access

    def _map(self, addr: int, helper: str, kind: type = BpfMap) -> BpfMap:
        obj = self.regions.get(addr >> SEG_SHIFT)
        if not isinstance(obj, kind) or addr & OFF_MASK:
            raise BpfFault(f"{helper}: R1 is not a pointer to a {kind.__name__} ({self.mem.describe(addr)})")
        return obj

    # maps

    def bpf_map_lookup_elem(self, r1, r2, r3, r4, r5) -> int:
        """The hottest helper: the map and key checks are inline (the slow paths fault)."""
        regions = self.regions
        bpf_map = regions.get(r1 >> SEG_SHIFT)
        if not isinstance(bpf_map, BpfMap) or r1 & OFF_MASK:
            bpf_map = self._map(r1, "bpf_map_lookup_elem")
        try:
            key = bpf_map.read_key(regions.get(r2 >> SEG_SHIFT), r2 & OFF_MASK)[0]
        except (struct.error, TypeError):  # past the region's end, or no buffer there: read() faults
            key = bpf_map.read_key(self.mem.read(r2, bpf_map.key_size), 0)[0]
        try:
            return bpf_map.lookup_addr(key)
        except MapError as exc:
            raise BpfFault(exc.strerror) from None

    def _writable_map(self, addr: int, helper: str) -> BpfMap:
        """check_map_func_compatibility(): maps a program may change."""
        bpf_map = self._map(addr, helper)
        if not bpf_map.prog_updates or bpf_map.map_flags & BPF_F_RDONLY_PROG:
            raise BpfFault(f"{helper}: programs cannot change {bpf_map.type_name} map {bpf_map.name}")
        return bpf_map

    def bpf_map_update_elem(self, r1, r2, r3, r4, r5) -> int:
        bpf_map = self._writable_map(r1, "bpf_map_update_elem")
        key = self.mem.read(r2, bpf_map.key_size)
        ncopies = self.rt.ncpus if bpf_map.percpu else 1
        value = self.mem.read(r3, bpf_map.value_size)
        if ncopies > 1:  # a program updates the current CPU's copy; the others keep theirs
            current = bpf_map.lookup(key)
            values = list(current) if current is not None else [bytes(bpf_map.value_size)] * ncopies
            values[self.rt.cpu] = value
        else:
            values = [value]
        return bpf_map.update(key, values, r4) & M64

    def bpf_map_delete_elem(self, r1, r2, r3, r4, r5) -> int:
        bpf_map = self._writable_map(r1, "bpf_map_delete_elem")
        return bpf_map.delete(self.mem.read(r2, bpf_map.key_size)) & M64

    # time, randomness, tracing

    def bpf_ktime_get_ns(self, r1, r2, r3, r4, r5) -> int:
        return round(self.rt.clock.now * 1_000_000_000)

    def bpf_ktime_get_boot_ns(self, r1, r2, r3, r4, r5) -> int:
        return self.bpf_ktime_get_ns(r1, r2, r3, r4, r5)  # no suspend in virtual time

    def bpf_get_prandom_u32(self, r1, r2, r3, r4, r5) -> int:
        return self.rt.random.getrandbits(32)

    def bpf_get_smp_processor_id(self, r1, r2, r3, r4, r5) -> int:
        return self.rt.cpu

    def bpf_trace_printk(self, r1, r2, r3, r4, r5) -> int:
        """bpf_trace_printk(fmt, fmt_size, arg1, arg2, arg3): the line goes to runtime.trace_pipe."""
        fmt = self.mem.read(r1, r2)
        if not fmt or fmt[-1] != 0:
            return _err(EINVAL)
        text = fmt[:fmt.index(0)].decode("latin-1")
        args = iter((r3, r4, r5))
        out = []
        pos = 0
        for match in _PRINTK_SPEC.finditer(text):
            out.append(text[pos:match.start()])
            pos = match.end()
            flags, length, conv = match.groups()
            if conv == "%":
                out.append("%")
                continue
            value = next(args, None)
            if value is None:
                return _err(EINVAL)
            out.append(self._printk_arg(flags, length or "", conv, value))
        out.append(text[pos:])
        line = "".join(out)
        self.rt.trace_pipe.append(line)
        return len(line)

    def _printk_arg(self, flags: str, length: str, conv: str, value: int) -> str:
        if conv == "s":
            return self._c_string(value)
        if conv == "c":
            return chr(value & 0xFF)
        if conv == "p":
            return f"{value:#x}"
        bits = 64 if length in ("l", "ll", "z") else 32
        value &= (1 << bits) - 1
        if conv in "di" and value >> (bits - 1):
            value -= 1 << bits
        return ("%" + flags + {"i": "d", "u": "d"}.get(conv, conv)) % value

    def _c_string(self, addr: int) -> str:
        region, off = self.mem.region(addr, 1, "read")
        end = bytes(region[off:]).find(b"\0")
        if end < 0:
            raise BpfFault(f"bpf_trace_printk: string at {self.mem.describe(addr)} is not NUL-terminated")
        return bytes(region[off:off + end]).decode("latin-1")

    # ring buffer and perf events

    def bpf_ringbuf_output(self, r1, r2, r3, r4, r5) -> int:
        ringbuf = self._map(r1, "bpf_ringbuf_output", RingBufMap)
        if r4 & ~(BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP):
            return _err(EINVAL)
        return ringbuf.output(self.mem.read(r2, r3)) & M64

    def bpf_ringbuf_reserve(self, r1, r2, r3, r4, r5) -> int:
        ringbuf = self._map(r1, "bpf_ringbuf_reserve", RingBufMap)
        return 0 if r3 else ringbuf.reserve(r2)  # no flags are defined: NULL

    def _ringbuf_commit(self, addr: int, discard: bool, helper: str) -> int:
        ringbuf = self.rt.ringbuf_records.get(addr)
        if ringbuf is None:
            raise BpfFault(f"{helper}: {self.mem.describe(addr)} is not a reserved ring buffer record")
        ringbuf.commit(addr, discard)
        return 0

    def bpf_ringbuf_submit(self, r1, r2, r3, r4, r5) -> int:
        return self._ringbuf_commit(r1, False, "bpf_ringbuf_submit")

    def bpf_ringbuf_discard(self, r1, r2, r3, r4, r5) -> int:
        return self._ringbuf_commit(r1, True, "bpf_ringbuf_discard")

    def bpf_perf_event_output(self, r1, r2, r3, r4, r5) -> int:
        """bpf_perf_event_output(ctx, map, flags, data, size); the upper 32 bits
        of flags ask for that many packet bytes after the data."""
        perf = self._map(r2, "bpf_perf_event_output", PerfEventArrayMap)
        if r3 & ~(BPF_F_CTXLEN_MASK | M32):
            return _err(EINVAL)
        index = r3 & M32
        if index == BPF_F_CURRENT_CPU:
            index = self.rt.cpu
        ctx_len = (r3 & BPF_F_CTXLEN_MASK) >> 32
        packet = self.rt.ctx.packet()
        if ctx_len > len(packet):
            return _err(EFAULT)
        return perf.output(index, self.mem.read(r4, r5) + packet[:ctx_len]) & M64

    # tail calls

    def bpf_tail_call(self, r1, r2, r3, r4, r5) -> int:
        progs = self._map(r2, "bpf_tail_call", ProgArrayMap)
        prog = progs.program(r3 & M32)
        if prog is None or self.rt.tail_calls >= MAX_TAIL_CALL_CNT:
            return _err(ENOENT)
        self.rt.tail_calls += 1
        raise TailCall(prog)

    # checksums

    def bpf_csum_diff(self, r1, r2, r3, r4, r5) -> int:
        """bpf_csum_diff(from, from_size, to, to_size, seed) as net/core/filter.c has
        it since 6.13 ("optimize and homogenize for all archs"): csum_partial() of
        `to` from the seed less csum_partial() of `from`, folded to 16 bits by
        csum_from32to16(); sizes of any length (the verifier bounds the memory).
        The lab (6.18) returns these 16-bit values and takes sizes of 3 and 5."""
        ret = r5 & M32
        if r2 and r4:
            ret = csum_sub(csum_partial(self.mem.read(r3, r4), ret), csum_partial(self.mem.read(r1, r2), 0))
        elif r4:
            ret = csum_partial(self.mem.read(r3, r4), ret)
        elif r2:
            ret = ~csum_partial(self.mem.read(r1, r2), ~ret & M32) & M32
        return csum_from32to16(ret)

    def _csum_field(self, offset: int) -> tuple[object, int, int] | None:
        """The context, the position in buf and the value of the 16-bit checksum
        at skb->data + offset; None when that is not a writable field (-EFAULT)."""
        ctx = self.rt.ctx
        if offset > 0xFFFF or offset & 1 or offset + 2 > ctx.tail - ctx.data:
            return None
        pos = ctx.data + offset
        return ctx, pos, _U16.unpack_from(ctx.buf, pos)[0]

    def bpf_l3_csum_replace(self, r1, r2, r3, r4, r5) -> int:
        """bpf_l3_csum_replace(skb, offset, from, to, flags): flags' low bits give
        the size of from/to (2 or 4) or 0 for `to` being a csum_diff() result."""
        if r5 & ~BPF_F_HDR_FIELD_MASK:
            return _err(EINVAL)
        field = self._csum_field(r2)
        if field is None:
            return _err(EFAULT)
        ctx, pos, check = field
        size = r5 & BPF_F_HDR_FIELD_MASK
        if size == 0:
            if r3:
                return _err(EINVAL)
            check = csum_fold(csum_add(r4 & M32, ~check & M32))
        elif size == 2:
            check = ~self._csum16_add(self._csum16_add(~check & 0xFFFF, ~r3 & 0xFFFF), r4 & 0xFFFF) & 0xFFFF
        elif size == 4:
            check = csum_replace4(check, r3 & M32, r4 & M32)
        else:
            return _err(EINVAL)
        _U16.pack_into(ctx.buf, pos, check)
        return 0

    @staticmethod
    def _csum16_add(csum: int, addend: int) -> int:
        res = (csum + addend) & 0xFFFF
        return (res + (res < addend)) & 0xFFFF

    def bpf_l4_csum_replace(self, r1, r2, r3, r4, r5) -> int:
        """bpf_l4_csum_replace(skb, offset, from, to, flags): as l3, plus
        BPF_F_PSEUDO_HDR (the field is in the pseudo header, so a CHECKSUM_PARTIAL
        skb's partial sum changes too) and BPF_F_MARK_MANGLED_0 (UDP: a zero
        checksum means none and stays zero; a result of zero becomes 0xffff)."""
        allowed = BPF_F_MARK_MANGLED_0 | BPF_F_MARK_ENFORCE | BPF_F_PSEUDO_HDR | BPF_F_HDR_FIELD_MASK | BPF_F_IPV6
        if r5 & ~allowed:
            return _err(EINVAL)
        field = self._csum_field(r2)
        if field is None:
            return _err(EFAULT)
        ctx, pos, check = field
        mangled_0 = r5 & BPF_F_MARK_MANGLED_0
        if mangled_0 and not r5 & BPF_F_MARK_ENFORCE and not check:
            return 0
        size, pseudo = r5 & BPF_F_HDR_FIELD_MASK, bool(r5 & BPF_F_PSEUDO_HDR)
        if size not in (0, 2, 4) or (size == 0 and r3):
            return _err(EINVAL)
        partial, complete = ctx.ip_summed == CHECKSUM_PARTIAL, ctx.ip_summed == CHECKSUM_COMPLETE
        if size == 0:  # inet_proto_csum_replace_by_diff()
            diff = r4 & M32
            if not partial:
                check = csum_fold(csum_add(diff, ~check & M32))
                if complete and pseudo:
                    ctx.csum = ~csum_sub(diff, ctx.csum) & M32
            elif pseudo:
                check = ~csum_fold(csum_add(check, diff)) & 0xFFFF
        else:  # inet_proto_csum_replace4() (replace2 zero-extends its 16-bit values)
            mask = 0xFFFF if size == 2 else M32
            old, new = r3 & mask, r4 & mask
            if not partial:
                check = csum_replace4(check, old, new)
                if complete and pseudo:
                    ctx.csum = ~csum_add(csum_sub(~ctx.csum & M32, old), new) & M32
            elif pseudo:
                check = ~csum_fold(csum_add(csum_sub(check, old), new)) & 0xFFFF
        if mangled_0 and not check:
            check = CSUM_MANGLED_0
        _U16.pack_into(ctx.buf, pos, check)
        return 0

    # skb data

    def bpf_skb_store_bytes(self, r1, r2, r3, r4, r5) -> int:
        """bpf_skb_store_bytes(skb, offset, from, len, flags)."""
        if r5 & ~(BPF_F_RECOMPUTE_CSUM | BPF_F_INVALIDATE_HASH):
            return _err(EINVAL)
        ctx = self.rt.ctx
        if r2 > 0x7FFFFFFF or r4 > MAX_BPF_STACK or r2 + r4 > ctx.len:
            return _err(EFAULT)
        data = self.mem.read(r3, r4)
        start = ctx.data + r2
        ctx.buf[start:start + r4] = data
        if r5 & BPF_F_INVALIDATE_HASH:
            ctx.hash = 0
        return 0

    def bpf_skb_load_bytes(self, r1, r2, r3, r4, r5) -> int:
        """bpf_skb_load_bytes(skb, offset, to, len): zeroes `to` on failure."""
        ctx = self.rt.ctx
        if r2 > 0x7FFFFFFF or r2 + r4 > ctx.len:
            try:  # the verifier proved `to` holds len bytes; a length past every region fails the call
                self.mem.region(r3, r4, "write")
            except BpfFault:
                return _err(EFAULT)
            self.mem.write(r3, bytes(r4))
            return _err(EFAULT)
        start = ctx.data + r2
        self.mem.write(r3, bytes(ctx.buf[start:start + r4]))
        return 0

    def ld_abs(self, offset: int, size: int) -> int:
        """Legacy BPF_LD_ABS/IND: big-endian bytes at skb->data + offset, or the
        program exits with 0 (bpf_skb_load_helper_*)."""
        ctx = self.rt.ctx
        offset = _s32(offset)
        if offset < 0 or offset + size > ctx.len:
            raise PacketLoadAbort()
        start = ctx.data + offset
        return int.from_bytes(ctx.buf[start:start + size], "big")

    # redirects

    def bpf_redirect(self, r1, r2, r3, r4, r5) -> int:
        """TC's bpf_redirect(ifindex, flags): BPF_F_INGRESS delivers into the target's receive path."""
        if r2 & ~BPF_F_INGRESS:
            return TC_ACT_SHOT
        self.rt.ctx.redirect = Redirect("dev", r1 & M32, bool(r2 & BPF_F_INGRESS))
        return TC_ACT_REDIRECT

    def bpf_xdp_redirect(self, r1, r2, r3, r4, r5) -> int:
        if r2:
            return XDP_ABORTED
        self.rt.ctx.redirect = Redirect("dev", r1 & M32)
        return XDP_REDIRECT

    def bpf_xdp_redirect_map(self, r1, r2, r3, r4, r5) -> int:
        """bpf_redirect_map(map, key, flags): the low bits of flags are the
        action when the key has no entry; BPF_F_BROADCAST sends to every entry."""
        target_map = self._map(r1, "bpf_redirect_map", RedirectMap)
        to_cpu = isinstance(target_map, CpuMap)  # cpumaps take no flags beyond the action
        if r3 & ~(XDP_ACTION_MASK if to_cpu else XDP_ACTION_MASK | BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS):
            return XDP_ABORTED
        ctx = self.rt.ctx
        if r3 & BPF_F_BROADCAST:
            targets = tuple(t for t in target_map.targets()
                            if not (r3 & BPF_F_EXCLUDE_INGRESS and t == ctx.ingress_ifindex))
            ctx.redirect = Redirect("broadcast", targets)
            return XDP_REDIRECT
        target = target_map.target(r2)
        if target is None:
            return r3 & XDP_ACTION_MASK
        ctx.redirect = Redirect("cpu" if to_cpu else "dev", target)
        return XDP_REDIRECT

    # xdp_buff geometry

    def bpf_xdp_adjust_head(self, r1, r2, r3, r4, r5) -> int:
        ctx = self.rt.ctx
        delta = _s32(r2)
        metalen = ctx.data - ctx.data_meta
        data = ctx.data + delta
        if data < XDP_FRAME_OVERHEAD + metalen or data > ctx.data_end - ETH_HLEN:
            return _err(EINVAL)
        if metalen:
            ctx.buf[ctx.data_meta + delta:data] = ctx.buf[ctx.data_meta:ctx.data]
        ctx.data_meta += delta
        ctx.data = data
        ctx.remap(self.mem.regions)
        return 0

    def bpf_xdp_adjust_meta(self, r1, r2, r3, r4, r5) -> int:
        ctx = self.rt.ctx
        meta = ctx.data_meta + _s32(r2)
        metalen = ctx.data - meta
        if meta < XDP_FRAME_OVERHEAD or meta > ctx.data:
            return _err(EINVAL)
        if metalen & 3 or metalen > 32:
            return _err(EACCES)
        ctx.data_meta = meta
        ctx.remap(self.mem.regions)
        return 0

    def bpf_xdp_adjust_tail(self, r1, r2, r3, r4, r5) -> int:
        ctx = self.rt.ctx
        delta = _s32(r2)
        end = ctx.data_end + delta
        if end > ctx.frame_end or end < ctx.data + ETH_HLEN:
            return _err(EINVAL)
        ctx.detach(self.mem.regions)
        if end > len(ctx.buf):
            ctx.buf.extend(bytes(end - len(ctx.buf)))
        if delta > 0:
            ctx.buf[ctx.data_end:end] = bytes(delta)
        ctx.data_end = end
        ctx.attach(self.mem.regions)
        return 0

    # routing

    def bpf_fib_lookup(self, r1, r2, r3, r4, r5) -> int:
        """bpf_fib_lookup(ctx, params, plen, flags) against the mock's FIB,
        neighbour table and devices (bpf_ipv4_fib_lookup)."""
        net = self.rt.net
        if net is None:
            raise BpfFault("bpf_fib_lookup: this runtime has no network namespace (BpfRuntime(net=...))")
        allowed = (BPF_FIB_LOOKUP_DIRECT | BPF_FIB_LOOKUP_OUTPUT | BPF_FIB_LOOKUP_SKIP_NEIGH | BPF_FIB_LOOKUP_TBID
                   | BPF_FIB_LOOKUP_SRC)
        if r3 < FIB_LOOKUP_SIZE or r4 & ~allowed:
            return _err(EINVAL)
        params = bytearray(self.mem.read(r2, FIB_LOOKUP_SIZE))
        family = params[0]
        check_mtu = self.rt.ctx.prog_type == "xdp"
        if family == AF_INET6:
            rc = self._fib_lookup_ipv6(net, params, r4, check_mtu)
        elif family == AF_INET:
            rc = self._fib_lookup_ipv4(net, params, r4, check_mtu)
        else:
            return _err(EAFNOSUPPORT)
        self.mem.write(r2, bytes(params))
        return rc & M64

    @staticmethod
    def _fib_lookup_ipv6(net, params: bytearray, flags: int, check_mtu: bool) -> int:
        """bpf_ipv6_fib_lookup(): the FIB6 (route.py) from params->ifindex, which
        is the flow's oif for the route choice either way; only unicast routes
        forward, and the nexthop's neighbour must be valid unless SKIP_NEIGH."""
        src, dst = bytes(params[16:32]), bytes(params[32:48])
        if route6.rt6_need_strict(dst) or route6.rt6_need_strict(src):
            return BPF_FIB_LKUP_RET_NOT_FWDED  # link-local (and multicast) addresses are never forwarded
        tot_len, ifindex = struct.unpack_from("<HI", params, 6)
        dev = net.devices.get(ifindex)
        if dev is None:
            return -ENODEV
        idev = in6_dev_get(dev)
        if idev is None or not idev.cnf.forwarding:
            return BPF_FIB_LKUP_RET_FWD_DISABLED
        key = int.from_bytes(dst, "big")
        if flags & BPF_FIB_LOOKUP_DIRECT:
            table_id = RT_TABLE_MAIN
            if flags & BPF_FIB_LOOKUP_TBID:
                table_id = struct.unpack_from("<I", params, 48)[0]
                struct.pack_into("<I", params, 48, 0)  # zeroed for the vlan output fields it shares
            table = net.ipv6.fib_tables.get(table_id)
            if table is None:
                return BPF_FIB_LKUP_RET_NOT_FWDED
            f6i = route6.fib6_table_lookup(net, table, key, ifindex, False)
        else:
            f6i = route6.fib6_lookup(net, dst, ifindex)
        if f6i is None or f6i.__class__ is int:
            return BPF_FIB_LKUP_RET_NOT_FWDED
        if f6i.type is not RTN_UNICAST:
            return _FIB6_TYPE_RESULTS.get(f6i.type, BPF_FIB_LKUP_RET_NOT_FWDED)
        out = net.devices[f6i.ifindex]
        mtu = 0
        if check_mtu:  # ip6_mtu_from_fib6(): the device's IPv6 mtu (a route's mtu metric only when locked)
            out_idev = in6_dev_get(out)
            mtu = min(max(IPV6_MIN_MTU, out_idev.cnf.mtu6 if out_idev else 0), IP6_MAX_MTU)
            if tot_len > mtu:
                struct.pack_into("<H", params, 6, mtu)
                return BPF_FIB_LKUP_RET_FRAG_NEEDED
        nexthop = f6i.gateway if f6i.gateway is not None else dst
        params[32:48] = nexthop
        struct.pack_into("<I", params, 12, f6i.metric)
        struct.pack_into("<I", params, 8, out.ifindex)
        if flags & BPF_FIB_LOOKUP_SRC:  # the route's prefsrc, else chosen for the flow's own destination
            src = f6i.prefsrc or ipv6_dev_get_saddr(net, out, dst)
            if src is None:
                return BPF_FIB_LKUP_RET_NO_SRC_ADDR
            params[16:32] = src
        if not flags & BPF_FIB_LOOKUP_SKIP_NEIGH:  # __ipv6_neigh_lookup_noref_stub(): never resolves
            neigh = net.nd_tbl.entries.get((out.ifindex, nexthop))
            if neigh is None or not neigh.state & NUD_VALID or neigh.lladdr is None:
                return BPF_FIB_LKUP_RET_NO_NEIGH
            params[52:58] = out.mac
            params[58:64] = neigh.lladdr
        struct.pack_into("<HH", params, 48, 0, 0)  # bpf_fib_set_fwd_params(): h_vlan_proto, h_vlan_TCI
        if mtu:
            struct.pack_into("<H", params, 6, mtu)
        return BPF_FIB_LKUP_RET_SUCCESS

    @staticmethod
    def _fib_lookup_ipv4(net, params: bytearray, flags: int, check_mtu: bool) -> int:
        tot_len, ifindex = struct.unpack_from("<HI", params, 6)
        tos = params[12]
        saddr, daddr = struct.unpack_from(">I", params, 16)[0], struct.unpack_from(">I", params, 32)[0]
        dev = net.devices.get(ifindex)
        if dev is None:
            return -ENODEV
        if not net.sysctl.conf(dev.name, "forwarding"):
            return BPF_FIB_LKUP_RET_FWD_DISABLED
        iif, oif = (route.LOOPBACK_IFINDEX, ifindex) if flags & BPF_FIB_LOOKUP_OUTPUT else (ifindex, None)
        if flags & BPF_FIB_LOOKUP_DIRECT:
            table = struct.unpack_from("<I", params, 48)[0] if flags & BPF_FIB_LOOKUP_TBID else RT_TABLE_MAIN
            found = route.fib_table_lookup(net, table, daddr, oif)
            if found is None:
                result: object = route.ENETUNREACH
            elif found.type in route.TYPE_ERRORS:
                result = route.TYPE_ERRORS[found.type]
            else:
                result = route.FibResult(found, table)
        else:
            result = route.fib_lookup(net, daddr, saddr, iif=iif, oif=oif, tos=tos & IPTOS_RT_MASK)
        if isinstance(result, int):
            return {route.EINVAL: BPF_FIB_LKUP_RET_BLACKHOLE, route.EHOSTUNREACH: BPF_FIB_LKUP_RET_UNREACHABLE,
                    route.EACCES: BPF_FIB_LKUP_RET_PROHIBIT}.get(result, BPF_FIB_LKUP_RET_NOT_FWDED)
        fib = result.route
        if fib.type is not RTN_UNICAST or fib.oif is None:
            return BPF_FIB_LKUP_RET_NOT_FWDED
        out = net.devices[fib.oif]
        # ip_mtu_from_fib_result(): a route's mtu metric counts only with ip_forward_use_pmtu
        # (or when locked, which this model has no way to say); else the device's
        use_pmtu = net.sysctl.values.get("net.ipv4.ip_forward_use_pmtu", 0) != 0
        mtu = (fib.mtu if use_pmtu else None) or out.mtu
        if check_mtu and tot_len > mtu:
            struct.pack_into("<H", params, 6, mtu)
            return BPF_FIB_LKUP_RET_FRAG_NEEDED
        struct.pack_into("<I", params, 12, fib.metric)
        struct.pack_into("<I", params, 8, out.ifindex)
        if flags & BPF_FIB_LOOKUP_SRC:
            scope = RT_SCOPE_LINK if fib.gateway is None else RT_SCOPE_UNIVERSE
            src = fib.prefsrc or route.inet_select_addr(net, out, fib.gateway or daddr, scope)
            struct.pack_into(">I", params, 16, src)
        if fib.gateway is not None:
            struct.pack_into(">I", params, 32, fib.gateway)
            daddr = fib.gateway
        if not flags & BPF_FIB_LOOKUP_SKIP_NEIGH:
            neigh = net.neighbours.get((out.ifindex, daddr))
            if neigh is None or not neigh.state & NUD_VALID or neigh.lladdr is None:
                return BPF_FIB_LKUP_RET_NO_NEIGH
            params[52:58] = out.mac
            params[58:64] = neigh.lladdr
        struct.pack_into("<H", params, 6, mtu)
        return BPF_FIB_LKUP_RET_SUCCESS

