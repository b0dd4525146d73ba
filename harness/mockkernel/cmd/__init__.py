"""Command front ends: the operators' own commands, parsed into the mock's configuration.

`run(net, argv)` dispatches on the program name. Every front end accepts the
real tool's syntax for what it supports and raises CommandError naming the
token it does not understand; nothing is silently ignored.
"""
from __future__ import annotations

from harness.mockkernel.cmd import ethtool, ip, sysctl
from harness.target import CommandError

PROGRAMS = {"ip": ip.run, "sysctl": sysctl.run, "ethtool": ethtool.run}


def run(net, argv: list[str], stdin: str | None = None) -> str:
    program = PROGRAMS.get(argv[0])
    if program is None:
        raise CommandError(argv, f"{argv[0]!r} is not supported on the mock target yet; "
                                 f"supported: {', '.join(sorted(PROGRAMS))}")
    return program(net, argv, stdin)
