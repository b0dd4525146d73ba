"""IGMP header view (include/uapi/linux/igmp.h, struct igmphdr)."""
from __future__ import annotations

from harness.mockkernel.wire.checksum import checksum
from harness.mockkernel.wire.errors import Truncated

IGMP_HOST_MEMBERSHIP_QUERY = 0x11
IGMP_HOST_MEMBERSHIP_REPORT = 0x12
IGMPV2_HOST_MEMBERSHIP_REPORT = 0x16
IGMP_HLEN = 8
IGMPV3_QUERY_LEN = 12
# field offsets of struct igmphdr
TYPE, CODE, CSUM, GROUP = 0, 1, 2, 4


def check_len(buf: bytearray, off: int, end: int) -> None:
    """igmp_rcv(): pskb_may_pull(sizeof(struct igmphdr))."""
    if end - off < IGMP_HLEN:
        raise Truncated(None, f"IGMP header needs {IGMP_HLEN} bytes, have {end - off}")


def checksum_ok(buf: bytearray, off: int, end: int) -> bool:
    return not checksum(memoryview(buf)[off:end])


def igmp_type(buf: bytearray, off: int) -> int:
    return buf[off + TYPE]
