"""The bridge's structures (net/bridge/br_private.h, include/uapi/linux/if_bridge.h):
struct net_bridge (NetBridge), struct net_bridge_port (NetBridgePort), struct
net_bridge_fdb_entry (FdbEntry), struct net_bridge_vlan (BridgeVlan), the
multicast snooping contexts (struct net_bridge_mcast, net_bridge_mcast_port),
struct net_bridge_mdb_entry (MdbEntry) and net_bridge_port_group (PortGroup),
and the constants the kernel and iproute2 share. Times are seconds of the virtual clock
(the kernel keeps jiffies; netlink speaks centiseconds, clock_t).
"""
from __future__ import annotations

from dataclasses import dataclass, field

# include/uapi/linux/if_bridge.h port states, as `bridge link` names them
BR_STATE_DISABLED, BR_STATE_LISTENING, BR_STATE_LEARNING, BR_STATE_FORWARDING, BR_STATE_BLOCKING = range(5)
BR_STATE_NAMES = ("disabled", "listening", "learning", "forwarding", "blocking")
# br->stp_enabled
BR_NO_STP, BR_KERNEL_STP, BR_USER_STP = 0, 1, 2

# include/linux/if_bridge.h port flags
BR_HAIRPIN_MODE = 1 << 0
BR_BPDU_GUARD = 1 << 1
BR_ROOT_BLOCK = 1 << 2
BR_MULTICAST_FAST_LEAVE = 1 << 3
BR_ADMIN_COST = 1 << 4  # the path cost is the user's, not port_cost()'s
BR_LEARNING = 1 << 5
BR_FLOOD = 1 << 6
BR_PROXYARP = 1 << 8
BR_MCAST_FLOOD = 1 << 11
BR_BCAST_FLOOD = 1 << 14
BR_ISOLATED = 1 << 16
# new_nbp(): what a new port does
BR_PORT_DEFAULT_FLAGS = BR_LEARNING | BR_FLOOD | BR_MCAST_FLOOD | BR_BCAST_FLOOD

# include/uapi/linux/if_bridge.h struct bridge_vlan_info flags
BRIDGE_VLAN_INFO_MASTER = 1 << 0
BRIDGE_VLAN_INFO_PVID = 1 << 1
BRIDGE_VLAN_INFO_UNTAGGED = 1 << 2
BRIDGE_VLAN_INFO_BRENTRY = 1 << 5
VLAN_N_VID = 4096

# br_private.h: BR_PORT_BITS, the port number's bits in a port id
BR_PORT_BITS = 10
BR_MAX_PORTS = 1 << BR_PORT_BITS
USER_HZ = 100  # netlink's times are clock_t: centiseconds
HZ = 250  # the lab kernel's CONFIG_HZ: intervals the kernel derives are whole jiffies of it

# include/uapi/linux/if_bridge.h enum mdb_rtr_type (mcast_router)
MDB_RTR_TYPE_DISABLED, MDB_RTR_TYPE_TEMP_QUERY, MDB_RTR_TYPE_PERM, MDB_RTR_TYPE_TEMP = range(4)

# br_device.c br_dev_setup() and br_stp_if.c defaults, in seconds
BR_DEFAULT_AGEING_TIME = 300.0
BR_DEFAULT_FORWARD_DELAY = 15.0
BR_DEFAULT_HELLO_TIME = 2.0
BR_DEFAULT_MAX_AGE = 20.0
BR_DEFAULT_PRIORITY = 0x8000
BR_PORT_DEFAULT_PRIORITY = 0x20


@dataclass
class McastOwnQuery:
    """struct bridge_mcast_own_query: the timer of this querier's next query."""

    timer: object
    startup_sent: int = 0


@dataclass
class McastOtherQuery:
    """struct bridge_mcast_other_query: pending while another querier is heard;
    the bridge counts it as there from delay_time on."""

    timer: object
    delay_time: float = 0.0


@dataclass
class McastFamily:
    """One address family's part of struct net_bridge_mcast: its own and the
    other querier, the querier's address and port (ip4_querier), the router
    ports (ip4_mc_router_list) and the bridge's own router timer."""

    own_query: McastOwnQuery
    other_query: McastOtherQuery
    router_timer: object
    querier_addr: int | bytes = 0
    querier_port: object = None
    router_ports: list = field(default_factory=list)


@dataclass(eq=False)
class NetBridgeMcast:
    """struct net_bridge_mcast with br_multicast_ctx_init()'s defaults (seconds)."""

    ip4: McastFamily
    ip6: McastFamily
    multicast_router: int = MDB_RTR_TYPE_TEMP_QUERY
    querier: bool = False  # BROPT_MULTICAST_QUERIER
    query_use_ifaddr: bool = False
    last_member_count: int = 2
    startup_query_count: int = 2
    last_member_interval: float = 1.0
    membership_interval: float = 260.0
    querier_interval: float = 255.0
    query_interval: float = 125.0
    query_response_interval: float = 10.0
    startup_query_interval: float = (125 * HZ // 4) / HZ
    igmp_version: int = 2
    mld_version: int = 1
    stats_enabled: bool = False
    hash_elasticity: int = 16  # RHT_ELASTICITY, fixed
    hash_max: int = 4096
    has_ipv6_addr: bool = True  # BROPT_HAS_IPV6_ADDR: cleared when an MLD query finds no source


@dataclass(eq=False)
class McastPortFamily:
    """A port's part for one family: its own query and its router timer."""

    own_query: McastOwnQuery
    router_timer: object


@dataclass(eq=False)
class NetBridgeMcastPort:
    """struct net_bridge_mcast_port."""

    ip4: McastPortFamily
    ip6: McastPortFamily
    multicast_router: int = MDB_RTR_TYPE_TEMP_QUERY


@dataclass(eq=False)
class PortGroup:
    """struct net_bridge_port_group: port `port` a member of the entry's group
    until `timer` expires (never for a permanent one)."""

    port: NetBridgePort
    timer: object
    permanent: bool = False
    rt_protocol: str = "kernel"  # RTPROT_KERNEL (a report) or RTPROT_STATIC (bridge mdb add)


@dataclass(eq=False)
class MdbEntry:
    """struct net_bridge_mdb_entry: a group (`proto` ETH_P_IP or ETH_P_IPV6) and
    its member ports, in the kernel's list order (by port, highest first); the
    host (the bridge device) a member too while host_joined."""

    proto: int
    group: int | bytes
    vid: int
    timer: object
    ports: list[PortGroup] = field(default_factory=list)
    host_joined: bool = False


@dataclass
class FdbEntry:
    """struct net_bridge_fdb_entry: `dst` is the port the address is behind (None:
    the bridge itself), `local` (BR_FDB_LOCAL: frames to it are the host's),
    `static` (BR_FDB_STATIC: never ages), `added_by_user`; `updated` is when
    learning last saw it (ageing counts from there), `used` when a frame last
    went to it."""

    addr: bytes
    vid: int
    dst: NetBridgePort | None
    local: bool = False
    static: bool = False
    added_by_user: bool = False
    sticky: bool = False
    updated: float = 0.0
    used: float = 0.0


@dataclass
class BridgeVlan:
    """struct net_bridge_vlan in a port's (or the bridge's) vlan group: its flags
    (BRIDGE_VLAN_INFO_*: UNTAGGED leaves the port without its tag)."""

    vid: int
    flags: int = 0


@dataclass
class VlanGroup:
    """struct net_bridge_vlan_group: the VLANs by vid (dumped sorted, as the
    kernel's vlan_list is) and the PVID (0: none)."""

    vlans: dict[int, BridgeVlan] = field(default_factory=dict)
    pvid: int = 0


@dataclass(eq=False)
class NetBridgePort:
    """struct net_bridge_port: a device enslaved to bridge `br`."""

    br: NetBridge
    dev: object
    port_no: int
    state: int = BR_STATE_DISABLED
    flags: int = BR_PORT_DEFAULT_FLAGS
    priority: int = BR_PORT_DEFAULT_PRIORITY
    path_cost: int = 100
    vlgrp: VlanGroup = field(default_factory=VlanGroup)
    # 802.1D: the best configuration heard on the port's segment (its own while designated)
    designated_root: bytes = bytes(8)
    designated_bridge: bytes = bytes(8)
    designated_cost: int = 0
    designated_port: int = 0
    designated_age: float = 0.0  # when that configuration's message age was 0
    topology_change_ack: bool = False
    config_pending: bool = False
    forward_delay_timer: object | None = None  # struct timer_list (br_stp_timer.c)
    message_age_timer: object | None = None
    hold_timer: object | None = None
    multicast_ctx: NetBridgeMcastPort | None = None  # br_multicast_add_port()

    @property
    def port_id(self) -> int:
        """br_make_port_id()."""
        return (self.priority << BR_PORT_BITS) | (self.port_no & (BR_MAX_PORTS - 1))


@dataclass(eq=False)
class NetBridge:
    """struct net_bridge: netdev_priv() of bridge device `dev`. `fdb` holds the
    entries by (address, vid), newest first as the kernel's fdb_list (an hlist
    each new entry is added at the head of) dumps them."""

    dev: object
    net: object
    ports: list[NetBridgePort] = field(default_factory=list)
    fdb: dict[tuple[bytes, int], FdbEntry] = field(default_factory=dict)
    stp_enabled: int = BR_NO_STP
    ageing_time: float = BR_DEFAULT_AGEING_TIME
    forward_delay: float = BR_DEFAULT_FORWARD_DELAY  # in use: the root's, from its BPDUs
    hello_time: float = BR_DEFAULT_HELLO_TIME
    max_age: float = BR_DEFAULT_MAX_AGE
    bridge_forward_delay: float = BR_DEFAULT_FORWARD_DELAY  # the bridge's own, used while it is root
    bridge_hello_time: float = BR_DEFAULT_HELLO_TIME
    bridge_max_age: float = BR_DEFAULT_MAX_AGE
    priority: int = BR_DEFAULT_PRIORITY
    designated_root: bytes = BR_DEFAULT_PRIORITY.to_bytes(2, "big") + bytes(6)  # 802.1D: the root's bridge id,
    # its path cost and the port towards it (br_dev_setup(): the bridge's own id)
    root_path_cost: int = 0
    root_port: int = 0
    topology_change_detected: bool = False
    bridge_id_addr: bytes = bytes(6)  # br->bridge_id.addr: set from the ports (br_stp_recalculate_bridge_id())
    addr_set_by_user: bool = False  # dev->addr_assign_type == NET_ADDR_SET
    mtu_set_by_user: bool = False  # BROPT_MTU_SET_BY_USER
    topology_change: bool = False
    vlan_enabled: bool = False  # BROPT_VLAN_ENABLED (vlan_filtering)
    vlan_proto: int = 0x8100
    default_pvid: int = 1
    vlgrp: VlanGroup = field(default_factory=VlanGroup)
    group_fwd_mask: int = 0
    multicast_enabled: bool = True  # BROPT_MULTICAST_ENABLED (mcast_snooping)
    multicast_ctx: NetBridgeMcast | None = None  # br_multicast_init()
    running: bool = False  # netif_running(): from ndo_open on (IFF_UP comes after it)
    nf_call_iptables: bool = False  # BROPT_NF_CALL_IPTABLES: br_netfilter for this bridge whatever the sysctl
    nf_call_ip6tables: bool = False
    nf_call_arptables: bool = False
    tso_max_size: int = 65536  # GSO_LEGACY_MAX_SIZE until a port lends its own (netif_inherit_tso_max())
    mdb: dict[tuple[int, int | bytes, int], MdbEntry] = field(default_factory=dict)  # oldest first
    gc_timer: object | None = None  # br->gc_work (br_fdb_cleanup())
    hello_timer: object | None = None  # br->hello_timer (kernel STP)
    topology_change_timer: object | None = None
    tcn_timer: object | None = None

    @property
    def bridge_id(self) -> bytes:
        """struct bridge_id as memcmp() orders it: the priority, then the address."""
        return self.priority.to_bytes(2, "big") + self.bridge_id_addr

    def hold_time(self) -> float:
        """hold_time(): entries age in forward_delay during a topology change."""
        return self.forward_delay if self.topology_change else self.ageing_time

    def port_of(self, dev) -> NetBridgePort | None:
        return next((p for p in self.ports if p.dev is dev), None)
