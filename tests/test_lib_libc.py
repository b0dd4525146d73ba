"""lib/libc.py against glibc itself (through ctypes): strtod(), strtoumax(),
atoll() and atoi() on random text read the same number and leave the same
rest, blanks and digits being ASCII only."""
from __future__ import annotations

import ctypes
import errno
import ctypes.util
import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from harness.mockkernel.lib import libc
from harness.mockkernel.target import MockTarget
from harness.target import CommandError

GLIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
GLIBC.strtod.restype, GLIBC.strtod.argtypes = ctypes.c_double, [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p)]
GLIBC.atoll.restype, GLIBC.atoll.argtypes = ctypes.c_longlong, [ctypes.c_char_p]
GLIBC.atoi.restype, GLIBC.atoi.argtypes = ctypes.c_int, [ctypes.c_char_p]
GLIBC.strtoumax.restype = ctypes.c_uint64
GLIBC.strtoumax.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int]

TEXT = st.text(alphabet=" \t\n\v+-.0123456789aAbcdefxXpPeEiInNfFtTyY(_)k\u00a0\u00b2\u0663\u0131", max_size=14)


def glibc_strtod(text: str) -> tuple[float, str] | None:
    data = ctypes.create_string_buffer(text.encode())
    end = ctypes.c_char_p()
    value = GLIBC.strtod(data, ctypes.byref(end))
    used = ctypes.cast(end, ctypes.c_void_p).value - ctypes.addressof(data)
    return None if used == 0 else (value, data.value[used:].decode())


@settings(max_examples=600, deadline=None, database=None)
@given(TEXT)
@example("0x1.8p1k")
@example(" +inf")
@example("nan(12_ab)x")
@example("1e999")
@example("0xp1")
@example("\u0663")
def test_strtod_reads_what_glibcs_reads(text):
    ours, theirs = libc.strtod(text), glibc_strtod(text)
    assert (ours is None) == (theirs is None)
    if ours is not None:
        assert ours[1] == theirs[1]
        assert ours[0] == theirs[0] or math.isnan(ours[0]) and math.isnan(theirs[0])


@settings(max_examples=600, deadline=None, database=None)
@given(st.one_of(TEXT, st.integers(-(1 << 70), 1 << 70).map(str)))
@example("4294967297")
@example(" -2147483649x")
@example("\u00b2")
@example("99999999999999999999")
def test_atoi_and_atoll_read_what_glibcs_read(text):
    data = text.encode()
    assert (libc.atoi(text), libc.atoll(text)) == (GLIBC.atoi(data), GLIBC.atoll(data))


def test_a_bridge_vlan_id_is_read_as_atoi_reads_it():
    """bridge/vlan.c vlan_modify(): `vid = atoi(*argv)`: a digit outside ASCII is no digit (vid 0, which the
    kernel refuses), not a Python exception."""
    target = MockTarget()
    target.sh("ip link add br0 type bridge vlan_filtering 1")
    target.sh("ip link set p1 master br0")
    with pytest.raises(CommandError, match="Vlan id is invalid"):
        target.sh("bridge vlan add dev p1 vid \u00b2")


@settings(max_examples=600, deadline=None, database=None)
@given(st.one_of(TEXT, st.integers(-(1 << 66), 1 << 66).map(lambda n: f" {n:#x}" if n % 3 else str(n))))
@example("0x")
@example("09")
@example("-1")
@example("18446744073709551616")
def test_strtoumax_reads_what_glibcs_reads(text):
    data = ctypes.create_string_buffer(text.encode())
    end = ctypes.c_char_p()
    ctypes.set_errno(0)
    value = GLIBC.strtoumax(data, ctypes.byref(end), 0)
    used = ctypes.cast(end, ctypes.c_void_p).value - ctypes.addressof(data)
    erange = ctypes.get_errno() == errno.ERANGE
    theirs = None if used == 0 or erange else (value, len(data.value[:used].decode()))
    assert libc.strtoumax(text) == theirs
