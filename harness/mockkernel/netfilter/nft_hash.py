"""nft_hash: `jhash EXPR mod N [seed N] [offset N]` and `symhash mod N [offset N]`
(net/netfilter/nft_hash.c, include/linux/jhash.h; nftables src/hash.c
hash_expr_print(), json.c hash_expr_json()).

nft_jhash_eval(): Bob Jenkins' jhash() of the source registers (`len` bytes:
each part of a concatenation in a 4-byte register, a single field its own
bytes, in the byte order it is loaded in) with the seed, scaled to the modulus
with reciprocal_scale(), plus the offset. Without `seed` the kernel draws a
random one (nft_jhash_init()); the mock takes 0 then. nft_symhash_eval():
skb_get_hash_symmetric() (the flow dissector's addresses and ports, siphash
with the boot's random key): the mock hashes the same fields with jhash and
seed 0, so its values are its own.
"""
from __future__ import annotations

from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.nft_exprs import CompileCtx, Concat, PrintCtx, Selector
from harness.mockkernel.netfilter.nft_json import selector_json
from harness.mockkernel.wire.ipv4 import DADDR, SADDR, Ipv4Packet
from harness.mockkernel.wire.udp import DEST, SOURCE

JHASH_INITVAL = 0xDEADBEEF
M32 = 0xFFFFFFFF


def _rol32(word: int, shift: int) -> int:
    return ((word << shift) | (word >> (32 - shift))) & M32


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    """__jhash_mix()."""
    a = (a - c) & M32; a ^= _rol32(c, 4); c = (c + b) & M32  # noqa: E702
    b = (b - a) & M32; b ^= _rol32(a, 6); a = (a + c) & M32  # noqa: E702
    c = (c - b) & M32; c ^= _rol32(b, 8); b = (b + a) & M32  # noqa: E702
    a = (a - c) & M32; a ^= _rol32(c, 16); c = (c + b) & M32  # noqa: E702
    b = (b - a) & M32; b ^= _rol32(a, 19); a = (a + c) & M32  # noqa: E702
    c = (c - b) & M32; c ^= _rol32(b, 4); b = (b + a) & M32  # noqa: E702
    return a, b, c


def _final(a: int, b: int, c: int) -> int:
    """__jhash_final(): c."""
    c ^= b; c = (c - _rol32(b, 14)) & M32  # noqa: E702
    a ^= c; a = (a - _rol32(c, 11)) & M32  # noqa: E702
    b ^= a; b = (b - _rol32(a, 25)) & M32  # noqa: E702
    c ^= b; c = (c - _rol32(b, 16)) & M32  # noqa: E702
    a ^= c; a = (a - _rol32(c, 4)) & M32  # noqa: E702
    b ^= a; b = (b - _rol32(a, 14)) & M32  # noqa: E702
    c ^= b; c = (c - _rol32(b, 24)) & M32  # noqa: E702
    return c


def jhash(key: bytes, initval: int) -> int:
    """include/linux/jhash.h jhash(): words read little-endian (x86's cpu order)."""
    length = len(key)
    a = b = c = (JHASH_INITVAL + length + initval) & M32
    k = 0
    while length > 12:
        a = (a + int.from_bytes(key[k:k + 4], "little")) & M32
        b = (b + int.from_bytes(key[k + 4:k + 8], "little")) & M32
        c = (c + int.from_bytes(key[k + 8:k + 12], "little")) & M32
        a, b, c = _mix(a, b, c)
        length -= 12
        k += 12
    if length == 0:
        return c
    tail = key[k:] + bytes(12 - length)
    a = (a + int.from_bytes(tail[0:4], "little")) & M32
    b = (b + int.from_bytes(tail[4:8], "little")) & M32
    c = (c + int.from_bytes(tail[8:12], "little")) & M32
    return _final(a, b, c)


def jhash_3words(a: int, b: int, c: int, initval: int) -> int:
    """include/linux/jhash.h jhash_3words(): __jhash_nwords(), three words and the seed, then __jhash_final()."""
    initval = (initval + JHASH_INITVAL + (3 << 2)) & M32
    return _final((a + initval) & M32, (b + initval) & M32, (c + initval) & M32)


def jhash_1word(a: int, initval: int) -> int:
    """include/linux/jhash.h jhash_1word()."""
    initval = (initval + JHASH_INITVAL + (1 << 2)) & M32
    return _final((a + initval) & M32, initval, initval)


def reciprocal_scale(value: int, ep_ro: int) -> int:
    return (value * ep_ro) >> 32


def register_bytes(source: Selector):
    """The source's loaded value as the bytes nft_jhash_eval() hashes: pkt -> bytes | None."""
    parts = source.parts if isinstance(source, Concat) else [source]
    pad = len(parts) > 1  # a concatenation's parts each take whole 4-byte registers

    def encode(part, value) -> bytes:
        size = (part.dtype.size + 7) // 8
        order = "little" if part.dtype.byteorder == types.HOST else "big"
        data = value.to_bytes(size, order) if isinstance(value, int) else bytes(value)
        return data + bytes(-len(data) % 4) if pad else data
    return parts, encode


class Jhash(Selector):
    dtype = types.integer

    def __init__(self, source: Selector, mod: int, seed: int | None = None, offset: int = 0):
        self.source, self.mod, self.seed, self.offset = source, mod, seed, offset

    def text(self, pctx: PrintCtx) -> str:
        seed = f" seed 0x{self.seed:x}" if self.seed is not None else ""
        offset = f" offset {self.offset}" if self.offset else ""
        return f"jhash {self.source.text(pctx)} mod {self.mod}{seed}{offset}"

    def json(self, pctx: PrintCtx) -> dict:
        out = {"mod": self.mod}
        if self.seed is not None:
            out["seed"] = self.seed
        if self.offset:
            out["offset"] = self.offset
        out["expr"] = selector_json(self.source, pctx)
        return {"jhash": out}

    def load(self, ctx: CompileCtx):
        parts, encode = register_bytes(self.source)
        loads = [(part, part.load(ctx)) for part in parts]
        mod, seed, offset = self.mod, self.seed or 0, self.offset

        def jhash_eval(pkt):
            data = b""
            for part, load in loads:
                value = load(pkt)
                if value is None:
                    return None
                data += encode(part, value)
            return reciprocal_scale(jhash(data, seed), mod) + offset
        return jhash_eval


class Symhash(Selector):
    dtype = types.integer

    def __init__(self, mod: int, offset: int = 0):
        self.mod, self.offset = mod, offset

    def text(self, pctx: PrintCtx) -> str:
        return f"symhash mod {self.mod}" + (f" offset {self.offset}" if self.offset else "")

    def json(self, pctx: PrintCtx) -> dict:
        return {"symhash": {"mod": self.mod, **({"offset": self.offset} if self.offset else {})}}

    def load(self, ctx: CompileCtx):
        mod, offset = self.mod, self.offset

        def symhash_eval(pkt):
            """The flow's addresses and ports in a fixed order, so both directions agree."""
            buf, nh = pkt.buf, pkt.nh
            if pkt.tprot is None or Ipv4Packet(buf, nh).version != 4:
                return reciprocal_scale(jhash(b"", 0), mod) + offset
            addrs = sorted((bytes(buf[nh + SADDR:nh + SADDR + 4]), bytes(buf[nh + DADDR:nh + DADDR + 4])))
            ports = b""
            if pkt.tprot in (6, 17) and pkt.thoff >= 0 and pkt.thoff + 4 <= pkt.end:
                ports = b"".join(sorted((bytes(buf[pkt.thoff + SOURCE:pkt.thoff + SOURCE + 2]),
                                          bytes(buf[pkt.thoff + DEST:pkt.thoff + DEST + 2]))))
            return reciprocal_scale(jhash(addrs[0] + addrs[1] + ports, 0), mod) + offset
        return symhash_eval
