"""iproute2 6.1 `nstat` (misc/nstat.c) over the mock's /proc/net/snmp, snmp6
and netstat: the counters whose value changed since the last nstat run (its
history file), or with -a their absolute values; -z shows zeros too, -s leaves
the history as it was, -r resets it, -n prints nothing, PATTERNs (shell
globs, case-insensitive) choose counters. Each line is "%-32s%-16llu%6.1f":
name, value, and the rate, 0.0 without the nstat daemon. nstat reads
netstat, snmp6, then snmp, each put in front of the ones before, so the
output starts with Ip and ends with MPTcpExt. The history file is per DUT
here (the lab gives each DUT its own NSTAT_HISTORY); nstat's first run has
none, so it prints absolute values.
"""
from __future__ import annotations

import fnmatch
import weakref

from harness.mockkernel.cmd.args import ToolError, not_modelled

OPTIONS = {"-a": "ignore", "--ignore": "ignore", "-z": "zeros", "--zeros": "zeros", "-s": "noupdate",
           "--noupdate": "noupdate", "-r": "reset", "--reset": "reset", "-n": "nooutput", "--nooutput": "nooutput"}
NOT_MODELLED = ("-j", "--json", "-p", "--pretty", "-d", "--scan", "-t", "--interval", "-V", "-v", "--version",
                "-h", "--help")
# nstat.c useless_numbers: constants, not counters, never shown
USELESS_NUMBERS = ("IpForwarding", "IpDefaultTTL", "TcpRtoAlgorithm", "TcpRtoMin", "TcpRtoMax", "TcpMaxConn",
                   "TcpCurrEstab")
USAGE = ToolError("Usage: nstat [OPTION] [ PATTERN [ PATTERN ] ]", 255)

_histories: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # the DUT's history file: {name: value}


def main(net, argv: list[str], stdin: str | None = None) -> str:
    opts, patterns = _options(argv[1:])
    if "reset" in opts:
        _histories.pop(net, None)
    history = None if "ignore" in opts else _histories.get(net)
    counters = kernel_counters(net)
    shown = [(name, value - history.get(name, 0) if history is not None else value)
             for name, value in counters if _matches(name, patterns)]
    out = "" if "nooutput" in opts else "#kernel\n" + "".join(
        f"{name:<32}{value:<16}{0.0:6.1f}\n" for name, value in shown if value or "zeros" in opts)
    if "noupdate" not in opts:
        old = _histories.get(net, {})
        # dump_kern_db(to_hist): a counter the patterns leave out keeps its recorded value, if any
        _histories[net] = {name: value if _matches(name, patterns) else old.get(name, value)
                           for name, value in counters if value or "zeros" in opts}
    return out


def _options(tokens: list[str]) -> tuple[set[str], list[str]]:
    opts, patterns = set(), []
    for token in tokens:
        if token in NOT_MODELLED:
            raise not_modelled(f"nstat {token}")
        if token.startswith("--") or (token.startswith("-") and len(token) == 2):
            if token not in OPTIONS:
                raise USAGE
            opts.add(OPTIONS[token])
        elif token.startswith("-"):
            opts |= {*_options([f"-{letter}" for letter in token[1:]])[0]}
        else:
            patterns.append(token)
    return opts, patterns


def _matches(name: str, patterns: list[str]) -> bool:
    return not patterns or any(fnmatch.fnmatch(name.lower(), pattern.lower()) for pattern in patterns)


def kernel_counters(net) -> list[tuple[str, int]]:
    """load_snmp(), load_snmp6(), load_netstat() in the order nstat lists them."""
    return (_ugly_table(net.proc_net["snmp"](net)) + _good_table(net.proc_net["snmp6"](net))
            + _ugly_table(net.proc_net["netstat"](net)))


def _ugly_table(text: str) -> list[tuple[str, int]]:
    """load_ugly_table(): line pairs "Prefix: names" / "Prefix: values"."""
    lines = text.splitlines()
    counters = []
    for names, values in zip(lines[::2], lines[1::2]):
        prefix, _, names = names.partition(": ")
        counters += [(prefix + name, int(value)) for name, value in zip(names.split(), values.split()[1:])]
    return [(name, value) for name, value in counters if name not in USELESS_NUMBERS]


def _good_table(text: str) -> list[tuple[str, int]]:
    return [(name, int(value)) for name, value in (line.split() for line in text.splitlines())]
