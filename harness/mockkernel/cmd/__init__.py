"""Command front ends: the operators' own commands, parsed into the mock's configuration.

`run(net, argv)` dispatches on the program name to ip.py (iproute2 6.1, whose
kernel side is core/rtnetlink.py, ipv4/devinet.py and ipv4/fib_frontend.py), nft.py (nftables 1.0.6), iptables.py
(iptables-nft 1.8.9: iptables, iptables-save, iptables-restore and the ip6tables ones), conntrack.py
(conntrack-tools 1.4.7), sysctl.py (procps-ng 4.0.2), ethtool.py (ethtool 6.1),
bpftool.py (bpftool 7.1.0), nstat.py, ss.py and bridge.py (iproute2 6.1) and cat.py (the
/proc files). Each accepts the real tool's syntax for what
the mock models and prints what the real tool prints; a failure is a
CommandError with the real tool's message and exit status, and syntax the mock
does not model is an error naming the token, never silently ignored.
"""
from __future__ import annotations

from harness.mockkernel.cmd import bpftool, bridge, cat, conntrack, ethtool, ip, iptables, nft, nstat, ss, sysctl, tc
from harness.mockkernel.cmd.args import ToolError
from harness.target import CommandError

PROGRAMS = {"ip": ip.main, "sysctl": sysctl.main, "ethtool": ethtool.main, "conntrack": conntrack.run,
            "nft": nft.main, "iptables": iptables.iptables, "iptables-save": iptables.iptables_save,
            "iptables-restore": iptables.iptables_restore, "ip6tables": iptables.ip6tables,
            "ip6tables-save": iptables.ip6tables_save, "ip6tables-restore": iptables.ip6tables_restore,
            "bpftool": bpftool.main,
            "tc": tc.main, "nstat": nstat.main, "ss": ss.main, "cat": cat.main, "bridge": bridge.main}


def run(net, argv: list[str], stdin: str | None = None) -> str:
    if not argv:
        raise CommandError(argv, "empty command")
    program = PROGRAMS.get(argv[0])
    if program is None:
        raise CommandError(argv, f"{argv[0]!r} is not supported on the mock target yet; "
                                 f"supported: {', '.join(sorted(PROGRAMS))}")
    try:
        return program(net, argv, stdin)
    except ToolError as err:
        raise CommandError(argv, err.message, err.returncode) from None
