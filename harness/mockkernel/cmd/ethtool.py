"""ethtool 6.1 for the mock's ports: link settings (`ethtool DEV`, -s), -i
(driver), -g/-G (rings), -c/-C (coalescing), -k/-K (features), -l/-L
(channels), -x/-X (RSS indirection table and key), -S (NIC statistics), with
ethtool's output.

ethtool 6.1 sets rings and coalescing over netlink (net/ethtool/rings.c,
coalesce.c), so refusals are the kernel's extack plus the errno ("netlink
error: requested ring size exceeds maximum (offset N)" / "netlink error:
Invalid argument"); the offset is that of the refused attribute in the request
ethtool built. The mock's ports are a NIC with rings and interrupt coalescing
(rx/tx usecs and frames, adaptive rx/tx); lo has neither, nor driver
information or statistics. The lab's veth ports support neither rings nor
coalescing: there ethtool -g/-G/-c/-C say "Operation not supported".

Link settings print as the lab's veth reports them (10000Mb/s, full duplex, no
autonegotiation, twisted pair); -s sets speed and duplex as a virtual NIC does
(drivers/net/virtio_net.c, net/ethtool/ioctl.c ethtool_virtdev_set_link_ksettings():
any speed, autoneg refused with EINVAL; -s exits 75 on a kernel refusal, as
netlink/settings.c nl_sset() does). veth has no link setter: there -s says
"Operation not supported". Channels are combined RX/TX queue pairs, at most
NetDevice.channels_max (8, a virtio-net device's queue pairs), checked as
net/ethtool/channels.c ethnl_set_channels() checks them. -x/-X are the ioctl
ones of ethtool 6.1 (do_grxfh(), do_srxfh()): a 128-entry table, a 40-byte
Toeplitz key (core/ethtool.py); the kernel refuses an entry past the RX rings
(ethtool_copy_validate_indir()). veth has neither channels beyond its queues'
nor RSS ("Cannot get RX ring count: Operation not supported"). -S prints the
device's counters, then per RX queue in use the line-rate model's
rx_queue_N_packets, _bytes and _drops (virtio_net.c's per-queue names).
"""
from __future__ import annotations

from harness.mockkernel.cmd.args import ToolError, c_uint, not_modelled
from harness.mockkernel.core.ethtool import (FEATURE_ALIASES, RSS_INDIR_SIZE, ethtool_get_max_rxfh_channel,
                                             ethtool_rxfh_indir_default, ethtool_set_channels, rss_defaults)

BAD_COMMAND_LINE = "ethtool: bad command line argument(s)\nFor more information run ethtool -h"
MODES = {"-i": "driver", "--driver": "driver", "-g": "show_ring", "--show-ring": "show_ring",
         "-G": "set_ring", "--set-ring": "set_ring", "-c": "show_coalesce",
         "--show-coalesce": "show_coalesce", "-C": "set_coalesce", "--coalesce": "set_coalesce",
         "-k": "show_features", "--show-features": "show_features", "--show-offload": "show_features",
         "-K": "set_features", "--features": "set_features", "--offload": "set_features", "-S": "stats",
         "--statistics": "stats", "-s": "set_link", "--change": "set_link", "-l": "show_channels",
         "--show-channels": "show_channels", "-L": "set_channels", "--set-channels": "set_channels",
         "-x": "show_rxfh", "--show-rxfh-indir": "show_rxfh", "--show-rxfh": "show_rxfh", "-X": "set_rxfh",
         "--set-rxfh-indir": "set_rxfh", "--rxfh": "set_rxfh"}
SETTERS = ("set_ring", "set_coalesce", "set_features", "set_link", "set_channels")
OTHER_OPTIONS = ("-a", "--show-pause", "-A", "--pause", "-p", "--identify", "-t", "--test", "-d", "--register-dump", "-e",
                 "--eeprom-dump", "-E", "--change-eeprom", "-r", "--negotiate", "-T", "--show-time-stamping",
                 "-f", "--flash",
                 "-P", "--show-permaddr", "-w", "--get-dump", "-W", "--set-dump", "-n", "-u", "--show-nfc",
                 "--show-ntuple", "-N", "-U", "--config-nfc", "--config-ntuple", "-m", "--dump-module-eeprom",
                 "--module-info", "--show-eee", "--set-eee", "--show-priv-flags", "--set-priv-flags",
                 "--show-fec", "--set-fec", "--phy-statistics", "--reset", "--show-tunnels", "--cable-test",
                 "--cable-test-tdr", "--monitor", "--show-module", "--set-module", "-h", "--help",
                 "--version", "--json", "-I", "--include-statistics", "-Q", "--per-queue", "--debug")
LINK_PARAMS = ("speed", "duplex", "autoneg", "port", "mdix", "advertise", "phyad", "xcvr", "wol", "sopass",
               "msglvl", "lanes", "master-slave")
CHANNEL_PARAMS = ("rx", "tx", "other", "combined")
RSS_HASH_FUNCS = ("toeplitz", "xor", "crc32")  # ETH_SS_RSS_HASH_FUNCS, bit i each
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
VETH_DRVINFO = ("driver: veth\nversion: 1.0\nfirmware-version: \nexpansion-rom-version: \nbus-info: \n"
                "supports-statistics: yes\nsupports-test: no\nsupports-eeprom-access: no\n"
                "supports-register-dump: no\nsupports-priv-flags: no\n")


def main(net, argv: list[str], stdin: str | None = None) -> str:
    tokens = argv[1:]
    if not tokens:
        raise ToolError(BAD_COMMAND_LINE, 1)
    option = tokens[0]
    if not option.startswith("-"):
        return _link_settings(net, option)
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
    if mode == "set_rxfh":
        return _set_rxfh(net, dev, params)
    if mode in SETTERS:
        return HANDLERS[mode](net, dev, _pairs(params))
    if params:
        raise ToolError(BAD_COMMAND_LINE, 1)
    return HANDLERS[mode](net, dev)


NO_DEVICE = "netlink error: no device matches name (offset 24)\nnetlink error: No such device"


def _no_device(mode: str) -> ToolError:
    if mode == "driver":
        return ToolError("Cannot get driver information: No such device", 71)
    if mode == "stats":
        return ToolError("Cannot get stats strings information: No such device", 96)
    if mode in ("show_rxfh", "set_rxfh"):
        return ToolError("Cannot get RX ring count: No such device", 1)
    return ToolError(NO_DEVICE, 75 if mode == "set_link" else 1)


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


def _driver(net, dev) -> str:
    if dev.is_loopback:
        raise ToolError("Cannot get driver information: Operation not supported", 71)
    return VETH_DRVINFO


def _show_ring(net, dev) -> str:
    if dev.is_loopback:
        raise _not_supported(1)
    return (f"Ring parameters for {dev.name}:\nPre-set maximums:\nRX:\t\t{dev.rx_ring_max}\n"
            f"RX Mini:\tn/a\nRX Jumbo:\tn/a\nTX:\t\t{dev.tx_ring_max}\nCurrent hardware settings:\n"
            f"RX:\t\t{dev.rx_ring}\nRX Mini:\tn/a\nRX Jumbo:\tn/a\nTX:\t\t{dev.tx_ring}\n"
            "RX Buf Len:\t\tn/a\nCQE Size:\t\tn/a\nTX Push:\toff\nTCP data split:\tn/a\n")


def _set_ring(net, dev, pairs: list[tuple[str, str]]) -> str:
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


def _show_coalesce(net, dev) -> str:
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


def _set_coalesce(net, dev, pairs: list[tuple[str, str]]) -> str:
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


def _show_features(net, dev) -> str:
    return f"Features for {dev.name}:\n" + "".join(f"{name}: {'on' if on else 'off'}\n"
                                                   for name, on in dev.features.items())


def _set_features(net, dev, pairs: list[tuple[str, str]]) -> str:
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


def _stats(net, dev) -> str:
    """-S: a NIC port's driver and per-queue counters. Loopback and a bridge have
    no get_ethtool_stats(): "no stats available" (EOPNOTSUPP); a device of another
    kind created with ip link add has driver counters the mock does not keep."""
    if dev.is_loopback or dev.kind == "bridge":
        raise ToolError("no stats available", 94)
    nic = net.nics.get(dev.name)
    if nic is None:
        raise ToolError(f"ethtool -S of a {dev.kind} device ({dev.name}) is not modelled by the mock kernel", 1)
    queues = [(f"rx_queue_{i}_{name}", getattr(nic.rx_queue(i), name))
              for i in range(dev.channels) for name in ("packets", "bytes", "drops")]
    driver = [(name, value) for name, value in vars(dev.stats).items() if name != "rx_otherhost_dropped"]
    return "NIC statistics:\n" + "".join(f"     {name}: {value}\n" for name, value in [*driver, *queues])


LINK_SETTINGS = ("\tSupported ports: [  ]\n\tSupported link modes:   Not reported\n"
                 "\tSupported pause frame use: No\n\tSupports auto-negotiation: No\n"
                 "\tSupported FEC modes: Not reported\n\tAdvertised link modes:  Not reported\n"
                 "\tAdvertised pause frame use: No\n\tAdvertised auto-negotiation: No\n"
                 "\tAdvertised FEC modes: Not reported\n")


def _link_settings(net, name: str) -> str:
    """nl_gset(): link modes, then link info, then whether the link is up;
    extra words after the device are ignored, as ethtool does. A missing
    device fails each of its five requests (and "No data available" goes to
    stdout, which a failed command does not return)."""
    dev = net.dev_by_name(name)
    if dev is None:
        raise ToolError("\n".join([NO_DEVICE] * 5), 75)
    link = f"\tLink detected: {'yes' if dev.up else 'no'}\n"
    if dev.is_loopback:
        return f"Settings for {name}:\n{link}"
    return (f"Settings for {name}:\n{LINK_SETTINGS}\tSpeed: {dev.speed}Mb/s\n\tDuplex: {dev.duplex.title()}\n"
            "\tAuto-negotiation: off\n\tPort: Twisted Pair\n\tPHYAD: 0\n\tTransceiver: internal\n"
            f"\tMDI-X: Unknown\n{link}")


def _set_link(net, dev, pairs: list[tuple[str, str]]) -> str:
    """ethnl_set_linkmodes() into the driver's set_link_ksettings()."""
    wanted: dict[str, object] = {}
    for name, value in pairs:
        if name not in LINK_PARAMS:
            raise ToolError(f"ethtool (-s): unknown parameter '{name}'", 1)
        if name in wanted:
            raise ToolError(f"ethtool (-s): duplicate parameter '{name}'", 1)
        if name == "speed":
            wanted[name] = _u32("-s", name, value)
        elif name in ("duplex", "autoneg"):
            choices = ("half", "full") if name == "duplex" else ("on", "off")
            if value not in choices:
                raise ToolError(f"ethtool (-s): {'no' if not value else 'invalid'} value "
                                f"{'' if not value else repr(value) + ' '}for parameter '{name}'", 1)
            wanted[name] = value
        else:
            raise not_modelled(f"ethtool -s {name}")
    if not wanted:
        return ""
    if dev.is_loopback:
        raise ToolError("netlink error: Operation not supported", 75)
    if wanted.get("autoneg") == "on":
        raise ToolError("netlink error: Invalid argument", 75)
    dev.speed = wanted.get("speed", dev.speed)
    dev.duplex = wanted.get("duplex", dev.duplex)
    return ""


def _show_channels(net, dev) -> str:
    if dev.is_loopback:
        raise _not_supported(1)
    return (f"Channel parameters for {dev.name}:\nPre-set maximums:\nRX:\t\tn/a\nTX:\t\tn/a\nOther:\t\tn/a\n"
            f"Combined:\t{dev.channels_max}\nCurrent hardware settings:\nRX:\t\tn/a\nTX:\t\tn/a\n"
            f"Other:\t\tn/a\nCombined:\t{dev.channels}\n")


def _set_channels(net, dev, pairs: list[tuple[str, str]]) -> str:
    """ethnl_set_channels(): each count within its maximum (this NIC has only
    combined channels), at least one RX and one TX channel, no fewer than a
    configured indirection table uses (ethtool_check_max_channel())."""
    wanted: dict[str, tuple[int, int]] = {}
    for index, (name, value) in enumerate(pairs):
        if name not in CHANNEL_PARAMS:
            raise ToolError(f"ethtool (-L): unknown parameter '{name}'", 1)
        if name in wanted:
            raise ToolError(f"ethtool (-L): duplicate parameter '{name}'", 1)
        wanted[name] = (index, _u32("-L", name, value))
    if dev.is_loopback:
        raise _not_supported(1)
    if not wanted:
        return ""
    limits = {"rx": 0, "tx": 0, "other": 0, "combined": dev.channels_max}
    for name, limit in limits.items():
        if name in wanted and wanted[name][1] > limit:
            raise _netlink_error(dev, wanted[name][0], "requested channel count exceeds maximum", "Invalid argument", 1)
    combined = wanted.get("combined", (None, dev.channels))[1]
    if not combined:
        refused = "combined" if "combined" in wanted else "rx"
        raise _netlink_error(dev, wanted[refused][0] if refused in wanted else len(wanted),
                             "requested channel counts would result in no RX or TX channel being configured",
                             "Invalid argument", 1)
    in_use = ethtool_get_max_rxfh_channel(dev)
    if combined <= in_use:
        raise ToolError(f"netlink error: requested channel counts are too low for existing indirection table "
                        f"({in_use})\nnetlink error: Invalid argument", 1)
    ethtool_set_channels(net, dev, combined)
    return ""


def _show_rxfh(net, dev) -> str:
    """do_grxfh(): the table eight entries a line, the key, the hash function."""
    if dev.is_loopback:
        raise ToolError("Cannot get RX ring count: Operation not supported", 1)
    rss_defaults(net, dev)
    lines = [f"RX flow hash indirection table for {dev.name} with {dev.channels} RX ring(s):"]
    for start in range(0, len(dev.rss_indir), 8):
        lines.append(f"{start:5}: " + "".join(f" {queue:5}" for queue in dev.rss_indir[start:start + 8]))
    lines += ["RSS hash key:", ":".join(f"{byte:02x}" for byte in dev.rss_key), "RSS hash function:"]
    lines += [f"    {name}: {'on' if name == 'toeplitz' else 'off'}" for name in RSS_HASH_FUNCS]
    return "\n".join(lines) + "\n"


def _set_rxfh(net, dev, params: list[str]) -> str:
    """do_srxfh(): equal N, weight W..., start N, hkey, hfunc, default, parsed
    and checked as ethtool does, then the kernel's ethtool_set_rxfh()."""
    equal = start = None
    weights: list[str] = []
    key = hfunc = None
    default = False
    tokens = list(params)
    if not tokens:
        raise ToolError(BAD_COMMAND_LINE, 1)
    while tokens:
        word = tokens.pop(0)
        if word in ("equal", "start"):
            number = c_uint(tokens.pop(0), 10) if tokens else None
            if number is None or number > 0x7FFFFFFF or (word == "equal" and number < 1):
                raise ToolError(BAD_COMMAND_LINE, 1)
            equal, start = (number, start) if word == "equal" else (equal, number)
        elif word == "weight":
            while tokens and tokens[0][:1].isdigit():
                weights.append(tokens.pop(0))
            if not weights:
                raise ToolError(BAD_COMMAND_LINE, 1)
        elif word in ("hkey", "hfunc"):
            if not tokens:
                raise ToolError(BAD_COMMAND_LINE, 1)
            key, hfunc = (tokens.pop(0), hfunc) if word == "hkey" else (key, tokens.pop(0))
        elif word == "default":
            default = True
        elif word in ("context", "delete"):
            raise not_modelled(f"ethtool -X {word} (RSS contexts)")
        else:
            raise ToolError(BAD_COMMAND_LINE, 1)
    for first, second, both in ((equal, weights, "Equal and weight"), (equal, default, "Equal and default"),
                                (weights, default, "Weight and default"), (start, default, "Start and default")):
        if first and second:
            raise ToolError(f"{both} options are mutually exclusive", 1)
    if start and not (equal or weights):
        raise ToolError("Start must be used with equal or weight options", 1)
    if dev.is_loopback:
        raise ToolError("Cannot get RX ring count: Operation not supported", 1)
    rss_defaults(net, dev)
    new_key = _hash_key(key, len(dev.rss_key)) if key is not None else None
    if hfunc is not None and hfunc not in RSS_HASH_FUNCS:
        raise ToolError(f"Unknown hash function: {hfunc}", 1)
    table = None
    if equal or weights:
        table = _fill_indir_table(start or 0, equal, weights)
        if max(table) >= dev.channels:  # ethtool_copy_validate_indir()
            raise ToolError("Cannot set RX flow hash configuration: Invalid argument", 1)
    if hfunc not in (None, "toeplitz"):  # the NIC hashes with Toeplitz only
        raise ToolError("Cannot set RX flow hash configuration: Operation not supported", 1)
    if new_key is not None:
        dev.rss_key = new_key
    if default:
        dev.rxfh_configured = False
        dev.rss_indir = [ethtool_rxfh_indir_default(i, dev.channels) for i in range(RSS_INDIR_SIZE)]
    elif table is not None:
        dev.rxfh_configured = True
        dev.rss_indir = table
    return ""


def _fill_indir_table(start: int, equal: int | None, weights: list[str]) -> list[int]:
    """fill_indir_table(): round robin over `equal` queues from `start`, or each
    queue a share of the table in proportion to its weight."""
    if equal:
        return [start + i % equal for i in range(RSS_INDIR_SIZE)]
    values = [c_uint(weight) or 0 for weight in weights]
    total = sum(values)
    if total == 0:
        raise ToolError("At least one weight must be non-zero", 2)
    if total > RSS_INDIR_SIZE:
        raise ToolError("Total weight exceeds the size of the indirection table", 2)
    table, queue, partial = [], -1, 0
    for i in range(RSS_INDIR_SIZE):
        while i >= RSS_INDIR_SIZE * partial // total:
            queue += 1
            partial += values[queue]
        table.append(start + queue)
    return table


def _hash_key(text: str, key_size: int) -> bytes:
    """convert_string_to_hashkey(): xx:xx:... exactly the device's key size."""
    octets = text.split(":")
    if any(len(octet) != 2 or c_uint(octet, 16) is None for octet in octets):
        raise ToolError("Invalid RSS hash key format", 2)
    if len(octets) > key_size:
        raise ToolError(f"Key is too long for device ({key_size + 1} > {key_size})", 2)
    if len(octets) < key_size:
        raise ToolError(f"Key is too short for device ({len(octets)} < {key_size})", 2)
    return bytes(int(octet, 16) for octet in octets)


HANDLERS = {"driver": _driver, "show_ring": _show_ring, "set_ring": _set_ring,
            "show_coalesce": _show_coalesce, "set_coalesce": _set_coalesce,
            "show_features": _show_features, "set_features": _set_features, "stats": _stats,
            "set_link": _set_link, "show_channels": _show_channels, "set_channels": _set_channels,
            "show_rxfh": _show_rxfh}
