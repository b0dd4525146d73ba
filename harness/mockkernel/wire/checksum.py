"""The Internet checksum (RFC 1071) over bytes, and Linux's incremental updates.

The ones'-complement sum of 16-bit big-endian words is congruent to the whole
buffer read as one big integer modulo 0xFFFF (2**16 = 1 mod 0xFFFF), which lets
Python sum a buffer with one int.from_bytes() instead of a loop.
"""
from __future__ import annotations


def checksum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """The Internet checksum field value for `data` (odd length padded with a
    zero byte), plus `initial`: the complement of the folded ones'-complement
    sum, whose fold of a non-zero sum is never 0 (0xFFFF instead)."""
    if len(data) & 1:
        data = bytes(data) + b"\0"
    value = int.from_bytes(data, "big") + initial
    return 0xFFFF - (value % 0xFFFF or 0xFFFF) if value else 0xFFFF


def pseudo_header_sum(saddr: bytes, daddr: bytes, proto: int, length: int) -> int:
    """csum_tcpudp_nofold(): the IPv4 pseudo-header's contribution (the
    folded sum, i.e. the complement of its checksum)."""
    return 0xFFFF - checksum(saddr + daddr, proto + length)


def csum_replace(check: int, old: int, new: int, size: int) -> int:
    """RFC 1624 incremental update (csum_replace4/inet_proto_csum_replace*):
    the checksum field after `size` bytes of the covered data, read as the
    big-endian integer `old`, became `new` (`size` even).

    ~(~check + ~old + new) folded is congruent to check + old - new modulo
    0xFFFF; the only time the fold gives 0xFFFF where the congruence gives 0 is
    when all three terms are zero (check 0xFFFF, old all ones, new zero)."""
    if check == 0xFFFF and not new and old == (1 << (8 * size)) - 1:
        return 0xFFFF
    return (check + old - new) % 0xFFFF
