"""The errors a configuration request fails with, wherever in the model it is refused.

`RtnlError(errno, extack)` is a netlink request the kernel refused
(net/netlink/af_netlink.c netlink_ack() with struct netlink_ext_ack); iproute2
and tc print "Error: <extack>." or "RTNETLINK answers: <strerror>".
`ToolError` carries the text a front end prints (on stderr) and its exit
status. `not_modelled()` is the one error the real tool never prints: the
syntax is valid but the mock kernel has no model of it. A leaf module, so the
kernel's layers raise these without importing the front ends or rtnetlink.
"""
from __future__ import annotations

import os


class RtnlError(Exception):
    def __init__(self, err: int, extack: str | None = None):
        super().__init__(err, extack)
        self.errno, self.extack = err, extack

    def __str__(self) -> str:
        if self.extack:
            return f"Error: {self.extack}."
        return f"RTNETLINK answers: {os.strerror(self.errno)}"


class ToolError(Exception):
    def __init__(self, message: str, returncode: int = 1):
        super().__init__(message)
        self.message = message
        self.returncode = returncode


def not_modelled(what: str) -> ToolError:
    return ToolError(f"{what} is not modelled by the mock kernel", 1)
