"""procps-ng 4.0.2 `sysctl` over the mock's sysctl tree (mockkernel/core/sysctl.py).

`sysctl k` reads (a directory lists everything under it), `k=v` writes with or
without -w (procps 4 writes whenever there is an "="), several at once; -n
values only, -N names only, -q quiet writes, -e ignore unknown keys, -a all.
Options may follow the keys (getopt permutes). Keys take dots or slashes. A
write echoes the value as given, not as stored. A bad key or value does not
stop the others; the command fails at the end with every message. Whether a
value is accepted, and what is stored, is the kernel's proc handler's call: a
refusal (EINVAL) prints "Invalid argument".
"""
from __future__ import annotations

import os

from harness.mockkernel.cmd.args import ToolError, not_modelled
from harness.mockkernel.core.sysctl import ProcError

USAGE = ToolError("Usage:\n sysctl [options] [variable[=value] ...]", 1)
SHORT_OPTIONS = {"a": "all", "A": "all", "X": "all", "n": "values", "N": "names", "q": "quiet",
                 "w": "write", "e": "ignore"}
LONG_OPTIONS = {"--all": "all", "--values": "values", "--names": "names", "--quiet": "quiet",
                "--write": "write", "--ignore": "ignore"}
NOT_MODELLED_OPTIONS = "bdfhpoxrVD"


class UnknownKey(ToolError):
    def __init__(self, key: str):
        super().__init__(f"sysctl: cannot stat /proc/sys/{key.replace('.', '/')}: No such file or directory")


def main(net, argv: list[str], stdin: str | None = None) -> str:
    opts, names = _options(argv[1:])
    if "all" in opts:
        return "".join(_show(key, net.sysctl.show(key), opts) for key in sorted(net.sysctl.values))
    if not names:
        raise USAGE
    out, errors = [], []
    for name in names:
        try:
            if "=" in name:
                out.append(_write(net, name, opts))
            elif "write" in opts:
                errors.append("sysctl: command line(0): invalid syntax, continuing...")
            else:
                out.append(_read(net, name, opts))
        except UnknownKey as err:
            if "ignore" not in opts:
                errors.append(err.message)
        except ToolError as err:
            errors.append(err.message)
    if errors:
        raise ToolError("\n".join(errors), 1)
    return "".join(out)


def _options(tokens: list[str]) -> tuple[set[str], list[str]]:
    opts, names = set(), []
    for token in tokens:
        if token.startswith("--"):
            if token not in LONG_OPTIONS:
                raise not_modelled(f"sysctl option {token}")
            opts.add(LONG_OPTIONS[token])
        elif token.startswith("-") and len(token) > 1:
            for letter in token[1:]:
                if letter in NOT_MODELLED_OPTIONS:
                    raise not_modelled(f"sysctl option -{letter}")
                if letter not in SHORT_OPTIONS:
                    raise ToolError(f"sysctl: invalid option -- '{letter}'", 1)
                opts.add(SHORT_OPTIONS[letter])
        else:
            names.append(token)
    return opts, names


def _key(name: str) -> str:
    return name.strip().replace("/", ".")


def _show(key: str, value: str, opts: set[str]) -> str:
    if "values" in opts:
        return value + "\n"
    if "names" in opts:
        return key + "\n"
    return f"{key} = {value}\n"


def _read(net, name: str, opts: set[str]) -> str:
    key, sysctl = _key(name), net.sysctl
    if key in sysctl.values:
        return _show(key, sysctl.show(key), opts)
    under = sorted(k for k in sysctl.values if k.startswith(key + "."))
    if not under:
        raise UnknownKey(key)
    return "".join(_show(k, sysctl.show(k), opts) for k in under)


def _write(net, setting: str, opts: set[str]) -> str:
    name, _, value = setting.partition("=")
    key, value = _key(name), value.lstrip()
    if key not in net.sysctl.values:
        raise UnknownKey(key)
    try:
        net.sysctl.write(key, value)
    except ProcError as err:
        raise ToolError(f'sysctl: setting key "{key}": {os.strerror(err.errno)}', 1) from None
    return "" if "quiet" in opts else _show(key, value, opts)
