"""tc's number parsing and printing (iproute2 6.1 lib/utils.c, lib/utils_math.c,
lib/json_print.c, lib/json_print_math.c, tc/tc_util.c, tc/tc_core.c): rates, sizes,
times, handles and class ids, read and printed as tc reads and prints them.

tc's time unit is the microsecond (TIME_UNITS_PER_SEC); its "ticks" come from
/proc/net/psched (000003e8 00000040 000f4240 on the lab): 15.625 ticks per
microsecond, the kernel's 64 ns PSCHED tick.
"""
from __future__ import annotations

import math
import re

from harness.mockkernel.lib.utils_math import TIME_UNITS_PER_SEC, c_uint64, rate_bytes, scaled_number

TICK_IN_USEC = 1000 / 64  # tc_core_init(): t2us / us2t * clock_factor
TC_H_ROOT = 0xFFFFFFFF
_STRTOUL16 = re.compile(r"[+-]?(?:0[xX])?[0-9a-fA-F]+")
SIZE_SUFFIXES = {"kb": 1024, "k": 1024, "gb": 1024 ** 3, "g": 1024 ** 3, "gbit": 1024 ** 3 // 8,
                 "mb": 1024 ** 2, "m": 1024 ** 2, "mbit": 1024 ** 2 // 8, "kbit": 1024 // 8, "b": 1}


def get_rate64(text: str) -> int | None:
    """get_rate64(): bytes per second, None when malformed."""
    rate = rate_bytes(text)
    return None if rate is None else c_uint64(rate)


def get_size(text: str) -> int | None:
    """get_size() (get_size64() and a u32 check): bytes, None when malformed
    or not a whole u32 (the __u64 stored differs from floor() of the double:
    a fraction, a negative, NaN or infinity)."""
    size = scaled_number(text, SIZE_SUFFIXES)
    if size is None:
        return None
    stored = c_uint64(size)
    if not math.isfinite(size) or stored != math.floor(size) or stored > 0xFFFFFFFF:
        return None
    return stored


def strtoul16(text: str) -> tuple[int, str] | None:
    m = _STRTOUL16.match(text)
    return (int(m.group(), 16), text[m.end():]) if m else None


def get_qdisc_handle(text: str) -> int | None:
    """get_qdisc_handle(): "1:" or "1" (hex) is 0x10000."""
    if text == "none":
        return 0
    parsed = strtoul16(text)
    if parsed is None or parsed[0] >= 1 << 16 or not (parsed[1] == "" or parsed[1].startswith(":")):
        return None
    return parsed[0] << 16  # a minor after the colon is ignored


def get_tc_classid(text: str) -> int | None:
    """get_tc_classid(): "root", "none", "M:m", ":m" or "M" (hex)."""
    if text == "root":
        return TC_H_ROOT
    if text == "none":
        return 0
    parsed = strtoul16(text)
    if parsed is None:
        if not text.startswith(":"):
            return None
        parsed = (0, text)
    major, rest = parsed
    if rest.startswith(":"):
        if major >= 1 << 16:
            return None
        minor = strtoul16(rest[1:]) if rest[1:] else (0, "")
        if minor is None or minor[1] or minor[0] >= 1 << 16:
            return None
        return major << 16 | minor[0]
    return None if rest else major


def sprint_tc_classid(h: int) -> str:
    if h == TC_H_ROOT:
        return "root"
    if h == 0:
        return "none"
    if h >> 16 == 0:
        return f":{h & 0xFFFF:x}"
    if h & 0xFFFF == 0:
        return f"{h >> 16:x}:"
    return f"{h >> 16:x}:{h & 0xFFFF:x}"


def sprint_size(size: int) -> str:
    """sprint_size(): whole Mb or Kb when within a KiB (or 16 bytes) of one."""
    size &= 0xFFFFFFFF
    kilo, mega = 1024, 1024 * 1024
    if size >= mega and abs(mega * _rint(size / mega) - size) < 1024:
        return f"{_rint(size / mega):g}Mb"
    if size >= kilo and abs(kilo * _rint(size / kilo) - size) < 16:
        return f"{_rint(size / kilo):g}Kb"
    return f"{size}b"


def _rint(x: float) -> float:
    return float(round(x))  # rint(): to nearest, ties to even, as Python's round()


def sprint_rate(rate_bytes: int) -> str:
    """print_color_rate() without -iec: bits/s, scaled while a whole multiple of 1000
    (or at least a million of the unit)."""
    rate = (rate_bytes << 3) & 0xFFFFFFFFFFFFFFFF
    units = ("", "K", "M", "G", "T")
    i = 0
    while i < len(units) - 1:
        if rate < 1000 or (rate % 1000 and rate < 1000 * 1000):
            break
        rate //= 1000
        i += 1
    return f"{float(rate):.0f}{units[i]}bit"


def sprint_time(usecs: int) -> str:
    """print_time(): "%.3gs", "%.3gms" or whole microseconds."""
    usecs &= 0xFFFFFFFF
    if usecs >= TIME_UNITS_PER_SEC:
        return f"{usecs / TIME_UNITS_PER_SEC:.3g}s"
    if usecs >= TIME_UNITS_PER_SEC // 1000:
        return f"{usecs / 1000:.3g}ms"
    return f"{usecs}us"


def tick2time(ticks: int) -> int:
    """tc_core_tick2time(): microseconds (unsigned, truncated)."""
    return int(ticks / TICK_IN_USEC)


def time2tick(usecs: int) -> int:
    return int(usecs * TICK_IN_USEC) & 0xFFFFFFFF


def calc_xmittime(rate: int, size: int) -> int:
    """tc_calc_xmittime(): ticks to send `size` bytes at `rate` bytes/s."""
    return time2tick(int(TIME_UNITS_PER_SEC * (size / rate)) & 0xFFFFFFFF)


def calc_xmitsize(rate: int, ticks: int) -> int:
    """tc_calc_xmitsize(): the bytes `ticks` carry at `rate`, as the u32 print_size() takes."""
    return int(rate * tick2time(ticks) / TIME_UNITS_PER_SEC) & 0xFFFFFFFF


def rtable_cell_log(mtu: int) -> int:
    """tc_calc_rtable(): the cell size covering `mtu` (2047 when unset) in 256 slots."""
    mtu = mtu or 2047
    cell_log = 0
    while (mtu >> cell_log) > 255:
        cell_log += 1
    return cell_log
