"""ethtool 6.1 for the mock's ports: -i (driver), -g/-G (rings), -c/-C
(coalescing), -k/-K (features), -S (NIC statistics), with ethtool's output.

ethtool 6.1 sets rings and coalescing over netlink (net/ethtool/rings.c,
coalesce.c), so refusals are the kernel's extack plus the errno ("netlink
error: requested ring size exceeds maximum (offset N)" / "netlink error:
Invalid argument"); the offset is that of the refused attribute in the request
ethtool built. The mock's ports are a NIC with rings and interrupt coalescing
(rx/tx usecs and frames, adaptive rx/tx); lo has neither, nor driver
information or statistics. The lab's veth ports support neither rings nor
coalescing: there ethtool -g/-G/-c/-C say "Operation not supported".
"""
from __future__ import annotations

from harness.mockkernel.cmd.args import ToolError, c_uint, not_modelled

BAD_COMMAND_LINE = "ethtool: bad command line argument(s)\nFor more information run ethtool -h"
MODES = {"-i": "driver", "--driver": "driver", "-g": "show_ring", "--show-ring": "show_ring",
         "-G": "set_ring", "--set-ring": "set_ring", "-c": "show_coalesce",
         "--show-coalesce": "show_coalesce", "-C": "set_coalesce", "--coalesce": "set_coalesce",
         "-k": "show_features", "--show-features": "show_features", "--show-offload": "show_features",
         "-K": "set_features", "--features": "set_features", "--offload": "set_features", "-S": "stats",
         "--statistics": "stats"}
SETTERS = ("set_ring", "set_coalesce", "set_features")
OTHER_OPTIONS = ("-s", "--change", "-a", "--show-pause", "-A", "--pause", "-l", "--show-channels", "-L",
                 "--set-channels", "-p", "--identify", "-t", "--test", "-d", "--register-dump", "-e",
                 "--eeprom-dump", "-E", "--change-eeprom", "-r", "--negotiate", "-T", "--show-time-stamping",
                 "-x", "--show-rxfh-indir", "--show-rxfh", "-X", "--set-rxfh-indir", "--rxfh", "-f",
                 "--flash",
                 "-P", "--show-permaddr", "-w", "--get-dump", "-W", "--set-dump", "-n", "-u", "--show-nfc",
                 "--show-ntuple", "-N", "-U", "--config-nfc", "--config-ntuple", "-m", "--dump-module-eeprom",
                 "--module-info", "--show-eee", "--set-eee", "--show-priv-flags", "--set-priv-flags",
                 "--show-fec", "--set-fec", "--phy-statistics", "--reset", "--show-tunnels", "--cable-test",
                 "--cable-test-tdr", "--monitor", "--show-module", "--set-module", "-h", "--help",
                 "--version", "--json", "-I", "--include-statistics", "-Q", "--per-queue", "--debug")
RING_PARAMS = ("rx", "rx-mini", "rx-jumbo", "tx", "rx-buf-len", "cqe-size", "tx-push")
COALESCE_BOOLS = ("adaptive-rx", "adaptive-tx", "cqe-mode-rx", "cqe-mode-tx")
COALESCE_PARAMS = ("adaptive-rx", "adaptive-tx", "sample-interval", "stats-block-usecs", "pkt-rate-low",
                   "pkt-rate-high", "rx-usecs", "rx-frames", "rx-usecs-irq", "rx-frames-irq", "tx-usecs",
                   "tx-frames", "tx-usecs-irq", "tx-frames-irq", "rx-usecs-low", "rx-frames-low",
                   "tx-usecs-low", "tx-frames-low", "rx-usecs-high", "rx-frames-high", "tx-usecs-high",
                   "tx-frames-high", "cqe-mode-rx", "cqe-mode-tx")
# ethtool -c's lines after "Adaptive RX/TX": (label, parameter); None is a blank line
COALESCE_LINES = (("stats-block-usecs", "stats-block-usecs"), ("sample-interval", "sample-interval"),
                  ("pkt-rate-low", "pkt-rate-low"), ("pkt-rate-high", "pkt-rate-high"), None,
                  ("rx-usecs", "rx-usecs"), ("rx-frames", "rx-frames"), ("rx-usecs-irq", "rx-usecs-irq"),
                  ("rx-frames-irq", "rx-frames-irq"), None, ("tx-usecs", "tx-usecs"),
                  ("tx-frames", "tx-frames"), ("tx-usecs-irq", "tx-usecs-irq"),
                  ("tx-frames-irq", "tx-frames-irq"), None, ("rx-usecs-low", "rx-usecs-low"),
                  ("rx-frame-low", "rx-frames-low"), ("tx-usecs-low", "tx-usecs-low"),
                  ("tx-frame-low", "tx-frames-low"), None, ("rx-usecs-high", "rx-usecs-high"),
                  ("rx-frame-high", "rx-frames-high"), ("tx-usecs-high", "tx-usecs-high"),
                  ("tx-frame-high", "tx-frames-high"), None)
# -K names: ethtool's legacy short names and the kernel's feature strings, to
# the names ethtool -k prints (which -K takes too)
FEATURE_ALIASES = {"rx": "rx-checksumming", "tx": "tx-checksumming", "sg": "scatter-gather",
                   "tso": "tcp-segmentation-offload", "gso": "generic-segmentation-offload",
                   "gro": "generic-receive-offload", "lro": "large-receive-offload",
                   "rxvlan": "rx-vlan-offload", "txvlan": "tx-vlan-offload", "ntuple": "ntuple-filters",
                   "rxhash": "receive-hashing", "rx-checksum": "rx-checksumming",
                   "tx-scatter-gather": "scatter-gather", "tx-tcp-segmentation": "tcp-segmentation-offload",
                   "tx-generic-segmentation": "generic-segmentation-offload",
                   "rx-gro": "generic-receive-offload", "rx-lro": "large-receive-offload",
                   "rx-vlan-hw-parse": "rx-vlan-offload", "tx-vlan-hw-insert": "tx-vlan-offload",
                   "rx-ntuple-filter": "ntuple-filters", "rx-hashing": "receive-hashing"}
VETH_DRVINFO = ("driver: veth\nversion: 1.0\nfirmware-version: \nexpansion-rom-version: \nbus-info: \n"
                "supports-statistics: yes\nsupports-test: no\nsupports-eeprom-access: no\n"
                "supports-register-dump: no\nsupports-priv-flags: no\n")


def main(net, argv: list[str], stdin: str | None = None) -> str:
    tokens = argv[1:]
    if not tokens:
        raise ToolError(BAD_COMMAND_LINE, 1)
    option = tokens[0]
    if not option.startswith("-"):
        raise not_modelled("ethtool DEVNAME (link settings)")
    mode = MODES.get(option)
    if mode is None:
        if option in OTHER_OPTIONS:
            raise not_modelled(f"ethtool {option}")
        raise ToolError(f"ethtool: bad command line argument(s): unknown option {option}\n"
                        "For more information run ethtool -h", 1)
    if len(tokens) < 2:
        raise ToolError(BAD_COMMAND_LINE, 1)
    dev = net.dev_by_name(tokens[1])
    if dev is None:
        raise _no_device(mode)
    params = tokens[2:]
    if mode in SETTERS:
        return HANDLERS[mode](dev, _pairs(params))
    if params:
        raise ToolError(BAD_COMMAND_LINE, 1)
    return HANDLERS[mode](dev)


def _no_device(mode: str) -> ToolError:
    if mode == "driver":
        return ToolError("Cannot get driver information: No such device", 71)
    if mode == "stats":
        return ToolError("Cannot get stats strings information: No such device", 96)
    return ToolError("netlink error: no device matches name (offset 24)\nnetlink error: No such device", 1)


def _pairs(params: list[str]) -> list[tuple[str, str]]:
    """NAME VALUE pairs; a last NAME without one gets an empty value."""
    padded = params + [""] * (len(params) % 2)
    return list(zip(padded[::2], padded[1::2]))


def _netlink_error(dev, index: int, extack: str, errno_text: str, returncode: int) -> ToolError:
    """The kernel refused the `index`th parameter: its attribute follows the
    nlmsghdr (16), genlmsghdr (4) and the header nest holding the device name."""
    offset = 16 + 4 + 4 + (4 + len(dev.name) + 1 + 3) // 4 * 4 + 8 * index
    return ToolError(f"netlink error: {extack} (offset {offset})\nnetlink error: {errno_text}", returncode)


def _not_supported(returncode: int) -> ToolError:
    return ToolError("netlink error: Operation not supported", returncode)


def _u32(option: str, name: str, value: str) -> int:
    number = c_uint(value)
    if number is None or number > 0xFFFFFFFF:
        if not value:
            raise ToolError(f"ethtool ({option}): no value for parameter '{name}'", 1)
        raise ToolError(f"ethtool ({option}): invalid value '{value}' for parameter '{name}'", 1)
    return number


def _driver(dev) -> str:
    if dev.is_loopback:
        raise ToolError("Cannot get driver information: Operation not supported", 71)
    return VETH_DRVINFO


def _show_ring(dev) -> str:
    if dev.is_loopback:
        raise _not_supported(1)
    return (f"Ring parameters for {dev.name}:\nPre-set maximums:\nRX:\t\t{dev.rx_ring_max}\n"
            f"RX Mini:\tn/a\nRX Jumbo:\tn/a\nTX:\t\t{dev.tx_ring_max}\nCurrent hardware settings:\n"
            f"RX:\t\t{dev.rx_ring}\nRX Mini:\tn/a\nRX Jumbo:\tn/a\nTX:\t\t{dev.tx_ring}\n"
            "RX Buf Len:\t\tn/a\nCQE Size:\t\tn/a\nTX Push:\toff\nTCP data split:\tn/a\n")


def _set_ring(dev, pairs: list[tuple[str, str]]) -> str:
    """ethnl_set_rings(): every size within its maximum (rx-mini and rx-jumbo
    have none on this NIC), then the driver takes them (not 0)."""
    wanted: dict[str, tuple[int, int]] = {}
    for index, (name, value) in enumerate(pairs):
        if name not in RING_PARAMS:
            raise ToolError(f"ethtool (-G): unknown parameter '{name}'", 1)
        if name in ("rx-buf-len", "cqe-size", "tx-push"):
            raise not_modelled(f"ethtool -G {name}")
        wanted[name] = (index, _u32("-G", name, value))
    if dev.is_loopback:
        raise _not_supported(81)
    limits = {"rx": dev.rx_ring_max, "rx-mini": 0, "rx-jumbo": 0, "tx": dev.tx_ring_max}
    for name, limit in limits.items():
        if name in wanted and wanted[name][1] > limit:
            raise _netlink_error(dev, wanted[name][0], "requested ring size exceeds maximum",
                                 "Invalid argument", 81)
    if any(size == 0 for name, (_, size) in wanted.items() if name in ("rx", "tx")):
        raise ToolError("netlink error: Invalid argument", 81)
    for name in ("rx", "tx"):
        if name in wanted:
            setattr(dev, f"{name}_ring", wanted[name][1])
    return ""


def _show_coalesce(dev) -> str:
    if dev.is_loopback:
        raise _not_supported(1)
    c = dev.coalesce

    def value(param: str) -> str:
        if param not in c:
            return "n/a"
        return ("on" if c[param] else "off") if param in COALESCE_BOOLS else str(c[param])

    lines = [f"Coalesce parameters for {dev.name}:",
             f"Adaptive RX: {value('adaptive-rx')}  TX: {value('adaptive-tx')}"]
    lines += ["" if line is None else f"{line[0]}: {value(line[1])}" for line in COALESCE_LINES]
    lines += [f"CQE mode RX: {value('cqe-mode-rx')}  TX: {value('cqe-mode-tx')}", ""]
    return "\n".join(lines) + "\n"


def _set_coalesce(dev, pairs: list[tuple[str, str]]) -> str:
    """ethnl_set_coalesce(): a parameter this NIC lacks is refused."""
    wanted = {}
    for index, (name, value) in enumerate(pairs):
        if name not in COALESCE_PARAMS:
            raise ToolError(f"ethtool (-C): unknown parameter '{name}'", 1)
        if name in COALESCE_BOOLS:
            if value not in ("on", "off"):
                raise ToolError(f"ethtool (-C): invalid value '{value}' for parameter '{name}'", 1)
            wanted[name] = (index, int(value == "on"))
        else:
            wanted[name] = (index, _u32("-C", name, value))
    if dev.is_loopback:
        raise _not_supported(1)
    for name, (index, _) in wanted.items():
        if name not in dev.coalesce:
            raise _netlink_error(dev, index, "cannot modify an unsupported parameter", "Invalid argument", 1)
    for name, (_, value) in wanted.items():
        dev.coalesce[name] = value
    return ""


def _show_features(dev) -> str:
    return f"Features for {dev.name}:\n" + "".join(f"{name}: {'on' if on else 'off'}\n"
                                                   for name, on in dev.features.items())


def _set_features(dev, pairs: list[tuple[str, str]]) -> str:
    if not pairs:
        raise ToolError("Could not change any device features", 1)
    wanted = {}
    for name, value in pairs:
        if value not in ("on", "off"):
            raise ToolError(f"ethtool (-K): flag '{value}' for parameter '{name}' is not followed by "
                            "'on' or 'off'", 1)
        feature = FEATURE_ALIASES.get(name, name)
        if feature not in dev.features:
            raise ToolError(f"netlink error: bit name not found (feature '{name}')\n"
                            "netlink error: Operation not supported", 92)
        wanted[feature] = value == "on"
    dev.features.update(wanted)
    return ""


def _stats(dev) -> str:
    if dev.is_loopback:
        raise ToolError("no stats available", 94)
    return "NIC statistics:\n" + "".join(f"     {name}: {value}\n" for name, value in vars(dev.stats).items())


HANDLERS = {"driver": _driver, "show_ring": _show_ring, "set_ring": _set_ring,
            "show_coalesce": _show_coalesce, "set_coalesce": _set_coalesce,
            "show_features": _show_features, "set_features": _set_features, "stats": _stats}
