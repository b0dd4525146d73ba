"""`ethtool` for the mock's NIC ports: rings (-g/-G), coalescing (-c/-C),
features (-k/-K), statistics (-S), driver (-i)."""
from __future__ import annotations

from harness.target import CommandError

FEATURE_ALIASES = {"rx": "rx-checksumming", "tx": "tx-checksumming", "sg": "scatter-gather",
                   "tso": "tcp-segmentation-offload", "gso": "generic-segmentation-offload",
                   "gro": "generic-receive-offload", "lro": "large-receive-offload",
                   "rxvlan": "rx-vlan-offload", "txvlan": "tx-vlan-offload", "ntuple": "ntuple-filters",
                   "rxhash": "receive-hashing"}


def run(net, argv: list[str], stdin: str | None = None) -> str:
    if len(argv) < 3:
        raise CommandError(argv, "ethtool: bad command line argument(s); need an option and a device")
    option, devname, rest = argv[1], argv[2], argv[3:]
    dev = net.dev_by_name(devname)
    if dev is None:
        raise CommandError(argv, f"netlink error: no device matches name ({devname})")
    handler = {"-g": _show_rings, "--show-ring": _show_rings, "-G": _set_rings, "--set-ring": _set_rings,
               "-k": _show_features, "--show-features": _show_features, "-K": _set_features,
               "--features": _set_features, "-c": _show_coalesce, "--show-coalesce": _show_coalesce,
               "-C": _set_coalesce, "--coalesce": _set_coalesce, "-S": _stats, "--statistics": _stats,
               "-i": _driver, "--driver": _driver}.get(option)
    if handler is None:
        raise CommandError(argv, f"ethtool: option {option} is not supported on the mock target")
    return handler(argv, dev, rest)


def _pairs(argv, rest: list[str]) -> list[tuple[str, str]]:
    if len(rest) % 2:
        raise CommandError(argv, f'ethtool: "{rest[-1]}" needs a value')
    return list(zip(rest[::2], rest[1::2]))


def _show_rings(argv, dev, rest) -> str:
    return (f"Ring parameters for {dev.name}:\nPre-set maximums:\nRX:\t\t{dev.rx_ring_max}\n"
            f"TX:\t\t{dev.tx_ring_max}\nCurrent hardware settings:\nRX:\t\t{dev.rx_ring}\nTX:\t\t{dev.tx_ring}\n")


def _set_rings(argv, dev, rest) -> str:
    for key, value in _pairs(argv, rest):
        if key not in ("rx", "tx"):
            raise CommandError(argv, f'ethtool: ring parameter "{key}" is not supported on the mock target')
        size = int(value)
        if not 1 <= size <= getattr(dev, f"{key}_ring_max"):
            raise CommandError(argv, "Cannot set device ring parameters: Invalid argument")
        setattr(dev, f"{key}_ring", size)
    return ""


def _show_features(argv, dev, rest) -> str:
    lines = [f"Features for {dev.name}:"]
    lines += [f"{name}: {'on' if on else 'off'}" for name, on in dev.features.items()]
    return "\n".join(lines) + "\n"


def _set_features(argv, dev, rest) -> str:
    for key, value in _pairs(argv, rest):
        name = FEATURE_ALIASES.get(key, key)
        if name not in dev.features or value not in ("on", "off"):
            raise CommandError(argv, f'ethtool: feature "{key} {value}" is not supported on the mock target')
        dev.features[name] = value == "on"
    return ""


def _show_coalesce(argv, dev, rest) -> str:
    return f"Coalesce parameters for {dev.name}:\n" + "".join(f"{k}: {v}\n" for k, v in dev.coalesce.items())


def _set_coalesce(argv, dev, rest) -> str:
    for key, value in _pairs(argv, rest):
        if key not in dev.coalesce:
            raise CommandError(argv, f'ethtool: coalesce parameter "{key}" is not supported on the mock target')
        dev.coalesce[key] = int(value)
    return ""


def _stats(argv, dev, rest) -> str:
    return "NIC statistics:\n" + "".join(f"     {k}: {v}\n" for k, v in vars(dev.stats).items())


def _driver(argv, dev, rest) -> str:
    return f"driver: {'veth' if dev.kind == 'veth' else dev.kind}\nversion: 1.0\nbus-info: \n"
