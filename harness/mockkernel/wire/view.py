"""What every header view shares: a buffer and the header's offset in it, and
check_len() through its module's check (smoltcp's `new_checked()`)."""
from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Self


class HeaderView:
    __slots__ = ("buf", "off")
    # the header module's check_len(buf, off, end): raises a WireError
    _check: ClassVar[Callable[[bytearray, int, int], object]]

    def __init__(self, buf: bytearray, off: int = 0):
        self.buf, self.off = buf, off

    def check_len(self, end: int | None = None) -> Self:
        """The view, once the header's own rules hold up to `end` (the buffer's end by default)."""
        type(self)._check(self.buf, self.off, len(self.buf) if end is None else end)
        return self
