"""glibc's number readers as the tools call them (stdlib/strtod.c,
stdlib/atoi.c, stdlib/atoll.c in the C locale): blanks and digits are
ASCII only, what follows the number is left for the caller."""
from __future__ import annotations

import re

# strtod(): leading white space, a sign, then a hex float, a decimal one, inf(inity) or nan(chars)
_STRTOD = re.compile(r"\s*[+-]?(?:0x(?:[0-9a-f]+\.?[0-9a-f]*|\.[0-9a-f]+)(?:p[+-]?[0-9]+)?"
                     r"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?|inf(?:inity)?|nan(?:\([0-9a-z_]*\))?)",
                     re.I | re.ASCII)
_ATOLL = re.compile(r"\s*([+-]?[0-9]+)", re.ASCII)
_STRTOUMAX = re.compile(r"\s*([+-]?)(0x[0-9a-f]+|0[0-7]*|[1-9][0-9]*)", re.I | re.ASCII)
C_SPACE = " \t\n\v\f\r"  # isspace() in the C locale


def strtod(text: str) -> tuple[float, str] | None:
    """strtod(): the leading number and the rest, None when there is none."""
    m = _STRTOD.match(text)
    if m is None:
        return None
    number = m.group().strip().lower()
    sign = -1.0 if number.startswith("-") else 1.0
    digits = number.lstrip("+-")
    value = float.fromhex(digits) if digits.startswith("0x") else float(digits.partition("(")[0])
    return sign * value, text[m.end():]


def atoll(text: str) -> int:
    """atoll(): the leading decimal number (after blanks and a sign), 0 if
    none, held to 64 bits (strtoll() saturates)."""
    found = _ATOLL.match(text)
    number = int(found.group(1)) if found else 0
    return max(-(1 << 63), min(number, (1 << 63) - 1))


def atoi(text: str) -> int:
    """atoi(): (int) strtol(): atoll() then kept in a 32-bit int."""
    number = atoll(text) & 0xFFFFFFFF
    return number - (1 << 32) if number >= 1 << 31 else number


def strtoumax(text: str, at: int = 0) -> tuple[int, int] | None:
    """strtoumax(text + at, &end, 0): (value, end), after blanks and a sign,
    0x hex, 0 octal or decimal, a `-` negating it modulo 2^64; None when it
    reads no digit or the number does not fit 64 bits (ERANGE)."""
    found = _STRTOUMAX.match(text, at)
    if found is None:
        return None
    sign, digits = found.groups()
    value = int(digits, 16 if digits[:2].lower() == "0x" else 8 if digits[0] == "0" else 10)
    if value >= 1 << 64:
        return None
    return (-value & (1 << 64) - 1 if sign == "-" else value), found.end()
