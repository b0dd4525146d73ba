"""Rates and times as iproute2 reads them (lib/utils_math.c get_rate64() and
its suffixes[], lib/utils.c get_time()), and as iptables' RATEEST and rateest
read them with their copies of that code (extensions/libxt_RATEEST.c
RATEEST_get_time(), libxt_rateest.c rateest_get_rate()): glibc's strtod(),
a suffix matched with strcasecmp(), and the double stored in an integer as
gcc does it on x86-64. Each front end keeps its own error wording.
"""
from __future__ import annotations

import math

from harness.mockkernel.lib.libc import strtod

TIME_UNITS_PER_SEC = 1_000_000  # microseconds
TIME_SUFFIXES = {"s": TIME_UNITS_PER_SEC, "sec": TIME_UNITS_PER_SEC, "secs": TIME_UNITS_PER_SEC,
                 "ms": 1000, "msec": 1000, "msecs": 1000, "us": 1, "usec": 1, "usecs": 1}
# lib/utils_math.c suffixes[], bits per unit (matched case-insensitively, first match wins)
RATE_SUFFIXES = (("bit", 1.), ("Kibit", 1024.), ("kbit", 1000.), ("mibit", 1024. ** 2), ("mbit", 1e6),
                 ("gibit", 1024. ** 3), ("gbit", 1e9), ("tibit", 1024. ** 4), ("tbit", 1e12), ("Bps", 8.),
                 ("KiBps", 8. * 1024), ("KBps", 8000.), ("MiBps", 8. * 1024 ** 2), ("MBps", 8e6),
                 ("GiBps", 8. * 1024 ** 3), ("GBps", 8e9), ("TiBps", 8. * 1024 ** 4), ("TBps", 8e12))
_RATE_SCALE = {name.lower(): scale for name, scale in RATE_SUFFIXES}  # no two names differ only in case


def c_uint32(value: float) -> int:
    """A double stored in an unsigned int as gcc does it on x86-64 (through a
    64-bit signed conversion; what is out of its range becomes 0)."""
    if math.isnan(value) or abs(value) >= 2.0 ** 63:
        return 0
    return int(value) & 0xFFFFFFFF


def c_uint64(value: float) -> int:
    """A double stored in a __u64 as gcc does it on x86-64: below 2^63 a
    signed conversion (NaN compares unordered and takes it too), above it one
    of the value less 2^63 with the top bit put back; what is out of range
    becomes the integer indefinite, 2^63 (0 above 2^64)."""
    indefinite = 1 << 63
    if math.isnan(value):
        return indefinite
    if value < 2.0 ** 63:
        return int(value) & 0xFFFFFFFFFFFFFFFF if value > -2.0 ** 63 else indefinite
    value -= 2.0 ** 63
    return (int(value) if value < 2.0 ** 63 else indefinite) ^ indefinite


def scaled_number(text: str, suffixes: dict[str, float]) -> float | None:
    """strtod() and what follows it: nothing (the number as it is) or a
    suffix of `suffixes` (lower-case names, matched as strcasecmp() does in
    the C locale: ASCII letters only),
    the number times its scale; None when malformed."""
    parsed = strtod(text)
    if parsed is None:
        return None
    number, rest = parsed
    if not rest:
        return number
    scale = suffixes.get(rest.lower()) if rest.isascii() else None
    return None if scale is None else number * scale


def get_time(text: str) -> int | None:
    """get_time() (RATEEST_get_time() the same): microseconds, a number with
    no suffix being microseconds too; None when malformed."""
    usecs = scaled_number(text, TIME_SUFFIXES)
    return None if usecs is None else c_uint32(usecs)


def rate_bytes(text: str) -> float | None:
    """The double get_rate64() and rateest_get_rate() store: bytes per second
    from bits per second (no suffix) or a suffixed rate; None when malformed.
    The caller stores it in its integer (c_uint64(), c_uint32())."""
    bps = scaled_number(text, _RATE_SCALE)
    return None if bps is None else bps / 8
