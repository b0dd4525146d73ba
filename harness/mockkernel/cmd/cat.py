"""GNU coreutils `cat FILE...` over the mock's /proc: /proc/net/NAME is the
text of the seq_show function registered for it (net.proc_net: snmp, netstat,
snmp6, softnet_stat, ipv6_route), /proc/sys/KEY a sysctl's value as its proc handler prints
it. The target allows only /proc/net/* and /proc/sys/* (harness/target.py
check_readable()); cat's options are not modelled.
"""
from __future__ import annotations

from harness.mockkernel.cmd.args import ToolError, not_modelled


def main(net, argv: list[str], stdin: str | None = None) -> str:
    paths = argv[1:]
    options = [path for path in paths if path.startswith("-")]
    if options:
        raise not_modelled(f"cat option {options[0]}")
    out, errors = [], []
    for path in paths:
        try:
            out.append(_read(net, path))
        except ToolError as err:
            errors.append(err.message)
    if errors:
        raise ToolError("\n".join(errors), 1)
    return "".join(out)


def _read(net, path: str) -> str:
    if path.startswith("/proc/net/"):
        show = net.proc_net.get(path.removeprefix("/proc/net/"))
        if show is None:
            raise not_modelled(f"{path} (the mock's /proc/net has {', '.join(sorted(net.proc_net))})")
        return show(net)
    key = path.removeprefix("/proc/sys/").strip("/").replace("/", ".")
    if key in net.sysctl.values:
        return net.sysctl.show(key) + "\n"
    if any(name.startswith(key + ".") for name in net.sysctl.values):
        raise ToolError(f"cat: {path}: Is a directory", 1)
    raise ToolError(f"cat: {path}: No such file or directory", 1)
