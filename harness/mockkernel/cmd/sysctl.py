"""procps `sysctl` over the mock's sysctl tree: `-w k=v`, `k`, `-n k`, `-a`, `-q`."""
from __future__ import annotations

from harness.target import CommandError

RANGES = {"rp_filter": (0, 2), "forwarding": (0, 1), "ip_forward": (0, 1), "accept_local": (0, 1),
          "route_localnet": (0, 1), "accept_source_route": (0, 1), "disable_ipv6": (0, 1)}


def run(net, argv: list[str], stdin: str | None = None) -> str:
    values_only = quiet = write = False
    out = []
    for token in argv[1:]:
        if token in ("-n", "--values"):
            values_only = True
        elif token in ("-q", "--quiet"):
            quiet = True
        elif token in ("-w", "--write"):
            write = True
        elif token in ("-a", "--all", "-A"):
            out += [_line(k, v, values_only) for k, v in sorted(net.sysctl.values.items())]
        elif token.startswith("-"):
            raise CommandError(argv, f'sysctl: invalid option -- "{token.lstrip("-")}"')
        elif "=" in token:
            key, value = token.split("=", 1)
            key = _known(net, argv, key.strip())
            value = _validate(argv, key, value.strip())
            net.sysctl.set(key, value)
            if not quiet:
                out.append(_line(key, value, values_only))
        elif write:
            raise CommandError(argv, f'sysctl: "{token}" must be of the form name=value')
        else:
            key = _known(net, argv, token)
            out.append(_line(key, net.sysctl.get(key), values_only))
    return "\n".join(out) + ("\n" if out else "")


def _known(net, argv, key: str) -> str:
    key = key.replace("/", ".")
    if key not in net.sysctl.values:
        raise CommandError(argv, f"sysctl: cannot stat /proc/sys/{key.replace('.', '/')}: "
                                 "No such file or directory")
    return key


def _validate(argv, key: str, value: str) -> str:
    parts = value.split()
    if not parts or not all(p.lstrip("-").isdigit() for p in parts):
        raise CommandError(argv, f'sysctl: setting key "{key}": Invalid argument')
    low_high = RANGES.get(key.rsplit(".", 1)[-1])
    if low_high and not low_high[0] <= int(parts[0]) <= low_high[1]:
        raise CommandError(argv, f'sysctl: setting key "{key}": Invalid argument')
    return "\t".join(parts)


def _line(key: str, value: str, values_only: bool) -> str:
    return value if values_only else f"{key} = {value}"
