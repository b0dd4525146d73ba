"""The errors a header view's check_len() raises (smoltcp's wire::Error, typed).

A view only says which of the header's own rules the bytes break; the caller
maps that to the drop reason of the kernel function it models (ip_rcv_core():
IP_INHDR or PKT_TOO_SMALL, __udp4_lib_rcv(): PKT_TOO_SMALL, ...), because the
same broken rule costs a different reason in different places.
"""
from __future__ import annotations


class WireError(ValueError):
    """check_len() refused a header. `field` names the field whose rule the
    bytes break; None when the buffer ends inside the fixed header."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field


class Truncated(WireError):
    """The buffer ends before the header does, or before the length a field declares."""


class Malformed(WireError):
    """A field breaks the header's own rules (version, a length shorter than the header)."""
