"""The kernel's side of ethtool for the mock's NIC (net/ethtool/: channels.c,
ioctl.c ethtool_set_rxfh(), common.c; include/linux/ethtool.h): RSS defaults
a driver applies at probe, and what a channel or indirection table change
leaves behind.

The RSS key is netdev_rss_key_fill()'s (net/core/ethtool.c: random bytes, drawn
once per boot: here from the kernel's seeded random, so a run is reproducible);
the table ethtool_rxfh_indir_default() (entry i -> queue i % RX rings). The
table has 128 entries, the 82599's RETA (drivers/net/ethernet/intel/ixgbe);
other NICs size it differently. A table the user set (ethtool -X equal/weight)
is the device's IFF_RXFH_CONFIGURED; `ethtool -X default` gives the default
back, and a channel change rebuilds only a default table, as drivers do.
"""
from __future__ import annotations

# ethtool's short and legacy names of the features `ethtool -K` sets (ethtool's
# off_flag_def[] and the kernel's netdev_features_strings[])
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


RSS_KEY_LEN = 40  # the Toeplitz key most NICs take (netdev_rss_key holds 52 bytes)
RSS_INDIR_SIZE = 128


def netdev_rss_key_fill(kernel) -> bytes:
    """The boot's RSS key, drawn once per kernel."""
    if kernel.rss_key is None:
        kernel.rss_key = kernel.random.randbytes(RSS_KEY_LEN)
    return kernel.rss_key


def ethtool_rxfh_indir_default(index: int, n_rx_rings: int) -> int:
    return index % n_rx_rings


def rss_defaults(kernel, dev) -> None:
    """What a driver sets up when nothing was configured: the boot's key, and
    the default table over the device's channels."""
    if not dev.rss_key:
        dev.rss_key = netdev_rss_key_fill(kernel)
    if not dev.rss_indir:
        dev.rss_indir = [ethtool_rxfh_indir_default(i, dev.channels) for i in range(RSS_INDIR_SIZE)]


def ethtool_set_channels(kernel, dev, combined: int) -> None:
    """The driver takes the new queue count; a table nobody configured follows it."""
    dev.channels = combined
    if not dev.rxfh_configured:
        dev.rss_indir = []
        rss_defaults(kernel, dev)


def ethtool_get_max_rxfh_channel(dev) -> int:
    """The highest queue a configured table sends to (0 for a default one)."""
    return max(dev.rss_indir) if dev.rxfh_configured else 0


def ethtool_set_features(dev, argv: tuple[str, ...]) -> None:
    """`ethtool -K dev` with `argv` ("tx", "off", ...): the features by any of
    their names, each turned on or off."""
    for name, value in zip(argv[::2], argv[1::2]):
        dev.features[FEATURE_ALIASES.get(name, name)] = value == "on"
