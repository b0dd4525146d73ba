"""The Internet checksum (RFC 1071) over bytes, and Linux's incremental updates.

The ones'-complement sum of 16-bit big-endian words is congruent to the whole
buffer read as one big integer modulo 0xFFFF (2**16 = 1 mod 0xFFFF), which lets
Python sum a buffer with one int.from_bytes() instead of a loop.
"""
from __future__ import annotations


def ones_sum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """16-bit ones'-complement sum of `data` (odd length padded with a zero byte)."""
    if len(data) & 1:
        data = bytes(data) + b"\0"
    value = int.from_bytes(data, "big") + initial
    if not value:
        return 0
    folded = value % 0xFFFF
    return folded or 0xFFFF


def checksum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """The Internet checksum field value for `data` (csum_fold of the sum)."""
    return ~ones_sum(data, initial) & 0xFFFF


def pseudo_header_sum(saddr: bytes, daddr: bytes, proto: int, length: int) -> int:
    """csum_tcpudp_nofold(): the IPv4 pseudo-header's contribution."""
    return ones_sum(saddr + daddr, proto + length)


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
