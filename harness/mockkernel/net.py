"""`struct net`: one network namespace's configuration, as plain data.

Models include/net/net_namespace.h and the per-namespace state it points to:
devices (include/linux/netdevice.h), IPv4 addresses (include/linux/inetdevice.h),
FIB tables and rules (net/ipv4/fib_*.c), the ARP neighbour table
(net/core/neighbour.c) and the sysctl tree (core/sysctl.py). The command front ends (`cmd/`) write
this data; the datapath only reads it (and updates neighbour entries and counters,
as the kernel does).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from ipaddress import IPv4Address, IPv4Network
from weakref import WeakValueDictionary

from harness.mockkernel.clock import Clock
from harness.mockkernel.core.snmp import NetnsMib
from harness.mockkernel.core.sysctl import Sysctls
from harness.mockkernel.wire.ipv4 import ip_str

RT_TABLE_LOCAL = 255
RT_TABLE_MAIN = 254
RT_TABLE_DEFAULT = 253
TABLE_NAMES = {"local": RT_TABLE_LOCAL, "main": RT_TABLE_MAIN, "default": RT_TABLE_DEFAULT}

# include/uapi/linux/rtnetlink.h scopes
RT_SCOPE_UNIVERSE, RT_SCOPE_SITE, RT_SCOPE_LINK, RT_SCOPE_HOST, RT_SCOPE_NOWHERE = 0, 200, 253, 254, 255
SCOPE_NAMES = {"global": 0, "universe": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}


class RouteType(IntEnum):
    """include/uapi/linux/rtnetlink.h route types (rtm_type, fib_alias.fa_type,
    rtable.rt_type). `keyword` is the name iproute2's rtnl_rtntype_n2a() prints,
    which journeys show too."""

    RTN_UNSPEC = 0, "none"
    RTN_UNICAST = 1, "unicast"
    RTN_LOCAL = 2, "local"
    RTN_BROADCAST = 3, "broadcast"
    RTN_ANYCAST = 4, "anycast"
    RTN_MULTICAST = 5, "multicast"
    RTN_BLACKHOLE = 6, "blackhole"
    RTN_UNREACHABLE = 7, "unreachable"
    RTN_PROHIBIT = 8, "prohibit"
    RTN_THROW = 9, "throw"
    RTN_NAT = 10, "nat"
    RTN_XRESOLVE = 11, "xresolve"

    def __new__(cls, value: int, keyword: str) -> RouteType:
        member = int.__new__(cls, value)
        member._value_ = value
        member.keyword = keyword  # a plain attribute: read on the multicast path, per packet
        return member


# the members by their kernel names, for module-level imports: cheaper per packet than RouteType.X
RTN_UNICAST, RTN_LOCAL, RTN_BROADCAST = RouteType.RTN_UNICAST, RouteType.RTN_LOCAL, RouteType.RTN_BROADCAST
RTN_ANYCAST, RTN_MULTICAST, RTN_BLACKHOLE = RouteType.RTN_ANYCAST, RouteType.RTN_MULTICAST, RouteType.RTN_BLACKHOLE
RTN_UNREACHABLE, RTN_PROHIBIT, RTN_THROW = RouteType.RTN_UNREACHABLE, RouteType.RTN_PROHIBIT, RouteType.RTN_THROW


def ip_to_int(text: str) -> int:
    return int(IPv4Address(text))


def int_to_ip(value: int) -> str:
    return ip_str(value)


def prefix_mask(plen: int) -> int:
    return (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF if plen else 0


@dataclass
class InAddr:
    """struct in_ifaddr: one IPv4 address on a device."""

    local: int
    prefixlen: int
    broadcast: int | None = None
    scope: int = RT_SCOPE_UNIVERSE
    label: str = ""
    secondary: bool = False

    @property
    def network(self) -> IPv4Network:
        return IPv4Network((self.local & prefix_mask(self.prefixlen), self.prefixlen))


@dataclass
class DevStats:
    """struct rtnl_link_stats64 fields `ip -s link` shows, plus driver counters."""

    rx_packets: int = 0
    rx_bytes: int = 0
    rx_dropped: int = 0
    rx_missed_errors: int = 0
    tx_packets: int = 0
    tx_bytes: int = 0
    tx_dropped: int = 0
    rx_otherhost_dropped: int = 0  # the core's (dev_core_stats), not the driver's: ethtool -S leaves it out


# ethtool -l: the mock's NIC has this many combined channels (RX/TX queue pairs)
# at most, as a virtio-net device offering 8 queue pairs does
CHANNELS_MAX = 8


@dataclass
class NetDevice:
    """struct net_device, the parts this model uses."""

    name: str
    ifindex: int
    kind: str  # "loopback" or "veth" (a NIC port wired to a tester port)
    mac: bytes
    mtu: int = 1500
    up: bool = False
    group: int = 0  # dev->group (`ip link set dev X group N`; INIT_NETDEV_GROUP)
    xdp_prog: object | None = None  # the attached native XDP program (core/xdp.py)
    xdp_generic_prog: object | None = None  # dev->xdp_prog: generic (skb) XDP (core/xdp.py)
    clsact: object | None = None  # the clsact qdisc and its filters (sched/sch_ingress.py)
    addrs: list[InAddr] = field(default_factory=list)
    ip6_ptr: object | None = None  # its struct inet6_dev (ipv6/addrconf.py), from registration on
    stats: DevStats = field(default_factory=DevStats)
    # dev->qdisc, the root Qdisc (sched/sch_generic.py): None (the noop qdisc) until the
    # device first comes up and dev_activate() attaches the default, noqueue for lo and veth
    qdisc: object | None = None
    tx_queue_len: int = 1000  # DEFAULT_TX_QUEUE_LEN (ether_setup()): the default FIFO limit
    gso_max_segs: int = 65535  # GSO_MAX_SEGS: the most segments a GSO skb to this device may have
    # ethtool -g / -G (rings), -c / -C (coalescing), -k / -K (features)
    rx_ring: int = 256
    tx_ring: int = 256
    rx_ring_max: int = 4096
    tx_ring_max: int = 4096
    # ethtool -s (link settings: Mb/s), -l/-L (channels: RX/TX queue pairs, one
    # NAPI context each), -x/-X (RSS: Toeplitz key and indirection table; the line-rate
    # model fills them in, mockkernel/linerate/)
    speed: int = 10000
    channels: int = 1
    channels_max: int = CHANNELS_MAX
    duplex: str = "full"  # ethtool -s duplex half|full
    rss_key: bytes = b""
    rss_indir: list[int] = field(default_factory=list)
    rxfh_configured: bool = False  # IFF_RXFH_CONFIGURED: the table is the user's (ethtool -X)
    coalesce: dict[str, int] = field(default_factory=lambda: {"adaptive-rx": 0, "adaptive-tx": 0,
                                                              "rx-usecs": 0, "rx-frames": 0,
                                                              "tx-usecs": 0, "tx-frames": 0})
    features: dict[str, bool] = field(default_factory=lambda: {
        "rx-checksumming": True, "tx-checksumming": True, "scatter-gather": True,
        "tcp-segmentation-offload": True, "generic-segmentation-offload": True,
        "generic-receive-offload": False, "large-receive-offload": False,  # veth_setup(): GRO off
        "rx-vlan-offload": True, "tx-vlan-offload": True, "ntuple-filters": False,
        "receive-hashing": False,
    })

    # carrier transitions (IFLA_CARRIER_CHANGES): a new veth starts with one, veth_newlink()'s
    # netif_carrier_off(); the tester's end is always up, so a port's carrier follows its own state
    carrier_changes: int = 0
    # IFF_LOOPBACK, from the kind at creation: a field, as the transmit path reads it per packet
    is_loopback: bool = field(init=False, repr=False, compare=False)
    # netif_carrier_ok(): a NIC port's follows its own state (module doc of kernel.py); a
    # bridge's is on while one of its ports forwards (bridge/br_stp.py)
    carrier: bool = True
    # dev->operstate stays IF_OPER_UNKNOWN until the first link event (a new bridge's, till a port joins)
    operstate_unknown: bool = False
    # netdev_rx_handler_register(): what gets the device's frames before the protocol
    # handlers (a bridge port's br_handle_frame()), and its data (the port)
    rx_handler: object | None = field(default=None, repr=False, compare=False)
    rx_handler_data: object | None = field(default=None, repr=False, compare=False)
    master: NetDevice | None = field(default=None, repr=False, compare=False)  # the upper device (a bridge)
    # a software device's netdev_ops (ndo_open, ndo_stop, ndo_start_xmit: a bridge's
    # br_dev_open(), br_dev_stop(), br_dev_xmit()); None for the NIC ports (nic.py) and lo
    netdev_ops: object | None = field(default=None, repr=False, compare=False)
    priv: object | None = field(default=None, repr=False, compare=False)  # netdev_priv(): a bridge's NetBridge
    mc: list[bytes] = field(default_factory=list, repr=False, compare=False)  # dev->mc: link multicast addresses
    uc: list[bytes] = field(default_factory=list, repr=False, compare=False)  # dev->uc: secondary unicast addresses

    def __post_init__(self) -> None:
        self.is_loopback = self.kind == "loopback"
        if self.kind == "veth":
            self.carrier_changes = 1

    def primary_addr(self) -> InAddr | None:
        return next((a for a in self.addrs if not a.secondary), None)


class FibNh:
    """struct fib_nh_common, the part the input route uses: nhc_rth_input, the
    route (ipv4/route.py Rtable) made for received packets through this
    nexthop, reused while its rt_genid is current."""

    __slots__ = ("rth_input", "__weakref__")

    def __init__(self) -> None:
        self.rth_input = None


@dataclass(slots=True)
class FibRoute:
    """struct fib_alias + fib_info: one route in one table (slotted: a full
    table holds a million of them)."""

    table: int
    dst: int
    plen: int
    type: RouteType = RTN_UNICAST
    oif: int | None = None  # ifindex
    gateway: int | None = None
    prefsrc: int | None = None
    metric: int = 0
    scope: int = RT_SCOPE_UNIVERSE
    protocol: str = "boot"
    tos: int = 0
    mtu: int | None = None  # `mtu N` metric: overrides the device MTU for this path
    advmss: int | None = None  # `advmss N` metric: the MSS TCP advertises on this path
    # the nexthop, shared with the routes that have the same one (fib_find_info())
    nh: FibNh = field(default_factory=FibNh, compare=False, repr=False)

    def contains(self, addr: int) -> bool:
        return (addr & prefix_mask(self.plen)) == self.dst


@dataclass
class FibRule:
    """struct fib_rule (ip rule, ip -6 rule): selectors and an action; `src`
    and `dst` are (address as an int of the family's width, prefix length)."""

    priority: int
    table: int = RT_TABLE_MAIN
    action: str = "lookup"  # lookup | blackhole | unreachable | prohibit | goto | nop
    src: tuple[int, int] | None = None  # (addr, plen)
    dst: tuple[int, int] | None = None
    iif: str | None = None
    oif: str | None = None
    fwmark: int | None = None
    fwmask: int = 0xFFFFFFFF
    tos: int | None = None
    invert: bool = False  # `ip rule add not ...`
    goto: int | None = None
    suppress_prefixlength: int = -1
    protocol: str = "unspec"  # who added it: "kernel" for the default rules


# include/net/neighbour.h NUD_* states
NUD_INCOMPLETE, NUD_REACHABLE, NUD_STALE, NUD_DELAY = 0x01, 0x02, 0x04, 0x08
NUD_PROBE, NUD_FAILED, NUD_NOARP, NUD_PERMANENT = 0x10, 0x20, 0x40, 0x80
NUD_CONNECTED = NUD_PERMANENT | NUD_NOARP | NUD_REACHABLE
NUD_VALID = NUD_CONNECTED | NUD_STALE | NUD_DELAY | NUD_PROBE
NUD_NAMES = {NUD_INCOMPLETE: "INCOMPLETE", NUD_REACHABLE: "REACHABLE", NUD_STALE: "STALE",
             NUD_DELAY: "DELAY", NUD_PROBE: "PROBE", NUD_FAILED: "FAILED", NUD_NOARP: "NOARP",
             NUD_PERMANENT: "PERMANENT"}


@dataclass
class Neighbour:
    """struct neighbour: an ARP entry (`ip` an int) or an ND one (`ip` 16 bytes),
    in its table `tbl` (core/neighbour.py NeighTable)."""

    ip: int | bytes
    ifindex: int
    lladdr: bytes | None
    state: int
    updated: float = 0.0  # virtual time of the last state change
    probes: int = 0
    queue: list = field(default_factory=list)  # skbs waiting for resolution (arp_queue)
    tbl: object = field(default=None, repr=False)
    router: bool = False  # NTF_ROUTER: an IPv6 neighbour that said it is a router


class Net:
    """struct net: one namespace. `devices` by ifindex, FIB `tables` by id."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.sysctl = Sysctls()
        self.mib = NetnsMib()
        self.proc_net: dict = {}  # /proc/net/NAME: its seq_show(net) -> text, proc_create_net_single()
        self.devices: dict[int, NetDevice] = {}
        self.last_ifindex = 0  # net->ifindex: the last index a device got
        self.tables: dict = {}  # FIB tables by id (ipv4/fib_trie.py), made by ip_fib_init()
        # net->rules_ops: each family's policy routing rules by family (core/fib_rules.py
        # FibRulesOps), registered by fib4_rules_init() and fib6_rules_net_init()
        self.rules_ops: dict = {}
        self.neighbours: dict[tuple[int, int], Neighbour] = {}  # arp_tbl's entries by (ifindex, ip)
        self.netdev_chain: list = []  # register_netdevice_notifier() (core/rtnetlink.py)
        self.inetaddr_chain: list = []  # register_inetaddr_notifier() (ipv4/devinet.py)
        # the neighbour tables (core/neighbour.py NeighTable), neigh_table_init() (core/rtnetlink.py)
        self.arp_tbl = self.nd_tbl = None
        self.icmp_send = None  # ICMP's sender for the modules it sends through, icmp_init() (ipv4/icmp.py)
        self.ipv6 = None  # struct netns_ipv6 (ipv6/netns.py), made by inet6_init()
        self.synproxy = None  # struct synproxy_net (netfilter/nf_synproxy.py), made on first use
        # the line-rate engine's `xmit_hook(dev, skb)`: when set, transmit hands it every
        # packet after TC egress (and XDP's), instead of the qdisc and the driver (core/dev.py)
        self.xmit_hook = None
        self.qdisc_autohandle = 0x80000000  # the last automatic qdisc handle (sched/sch_api.py)
        # net->ipv4.rt_genid: bumped by rt_cache_flush() on every configuration change, it
        # retires the nexthops' cached routes; rt_input_conf is what ip_route_input_slow()
        # reads of the configuration besides the FIB, parsed again after a flush (ipv4/route.py)
        self.rt_genid = 0
        self.rt_input_conf = None
        # fib_info_hash: one nexthop for the routes that have the same (fib_find_info())
        self.fib_info_hash: WeakValueDictionary = WeakValueDictionary()

    def add_device(self, dev: NetDevice) -> NetDevice:
        self.devices[dev.ifindex] = dev
        self.last_ifindex = max(self.last_ifindex, dev.ifindex)
        self.sysctl.add_device(dev.name)
        return dev

    def remove_device(self, dev: NetDevice) -> None:
        del self.devices[dev.ifindex]
        self.sysctl.remove_device(dev.name)

    def dev_new_index(self) -> int:
        """dev_index_reserve(): the next index after the last one given (cyclic in
        the kernel; a namespace here never wraps)."""
        return self.last_ifindex + 1

    def dev_by_name(self, name: str) -> NetDevice | None:
        return next((d for d in self.devices.values() if d.name == name), None)
