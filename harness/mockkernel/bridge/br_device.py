"""The bridge device (net/bridge/br_device.c, br_netlink.c): `ip link add NAME type
bridge [options]`, its netdev ops, and `ip link del`.

br_dev_newlink() registers a device with a random address (eth_hw_addr_random())
and no carrier, its own address local in the fdb, the default PVID entry
(br_vlan_init()), its multicast context (br_multicast_init()), then applies the
options (br_changelink()). br_dev_open() starts the fdb gc and STP, enables the
ports that are up, opens snooping's own queriers (br_multicast_open()) and joins
the multicast router discovery groups 224.0.0.106 and ff02::6a
(br_multicast_join_snoopers(), IGMP snooping on by default); br_dev_stop() undoes
it. Left out: the IGMPv3/MLD reports the kernel then sends of those groups.
br_dev_xmit() is how the host sends out of the bridge: the frame's VLAN as if it
came in on a port, then broadcast floods, multicast is snooped and goes by the
mdb while a querier is known (br_multicast.py), else floods, unicast goes to its
fdb entry's port or floods.
Options (IFLA_BR_*, in clock_t where they are times, kept in whole jiffies):
forward_delay, hello_time, max_age (each range-checked while STP is on, ERANGE),
ageing_time, stp_state, priority, vlan_filtering, vlan_default_pvid,
group_fwd_mask, the mcast_* options (snooping, querier, router, intervals, counts;
IGMPv2/MLDv1 only) and nf_call_iptables/ip6tables/arptables. The others iproute2
accepts are "not modelled" by the front end.
"""
from __future__ import annotations

import errno

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.bridge.br_fdb import br_fdb_add_local, br_fdb_find
from harness.mockkernel.bridge.br_forward import BR_PKT_BROADCAST, BR_PKT_MULTICAST, BR_PKT_UNICAST, br_flood, \
    br_forward, br_multicast_flood
from harness.mockkernel.bridge.br_if import br_add_if, br_del_if, br_device_event
from harness.mockkernel.bridge.br_multicast import (br_mdb_entry_skb_get, br_multicast_enable_port,
                                                    br_multicast_init, br_multicast_open, br_multicast_querier_exists,
                                                    br_multicast_rcv, br_multicast_set_querier, br_multicast_stop)
from harness.mockkernel.bridge.br_netlink import PORT_FLAGS, br_setport
from harness.mockkernel.bridge.br_private import (BR_NO_STP, BRIDGE_VLAN_INFO_PVID, BRIDGE_VLAN_INFO_UNTAGGED, HZ,
                                                  MDB_RTR_TYPE_DISABLED, MDB_RTR_TYPE_PERM, MDB_RTR_TYPE_TEMP_QUERY,
                                                  USER_HZ, NetBridge)
from harness.mockkernel.bridge.br_stp import (br_is_root_bridge, br_stp_change_bridge_id, br_stp_disable_bridge,
                                              br_stp_enable_bridge, br_stp_set_bridge_priority, br_stp_set_enabled,
                                              llc_rcv)
from harness.mockkernel.bridge.br_vlan import (br_allowed_ingress, br_vlan_add, br_vlan_delete, br_vlan_init,
                                               nbp_vlan_add, nbp_vlan_delete)
from harness.mockkernel.core.dev import dev_add_pack, dev_mc_add, dev_mc_del
from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.core.rtnetlink import register_netdevice, register_netdevice_notifier, rtnl_link_register
from harness.mockkernel.core.skbuff import SkBuff, kfree_skb
from harness.mockkernel.ipv4.igmp import ip_mc_dec_group, ip_mc_inc_group
from harness.mockkernel.net import NetDevice
from harness.mockkernel.wire import ethernet
from harness.mockkernel.wire.ethernet import BROADCAST, ETH_HLEN, ETH_P_802_2

INADDR_ALLSNOOPERS_GROUP = 0xE000006A  # 224.0.0.106, RFC 4286 multicast router discovery
IN6ADDR_ALLSNOOPERS_MAC = b"\x33\x33\x00\x00\x00\x6a"  # ipv6_eth_mc_map(ff02::6a)
# br_stp_if.c/br_private.h limits, in seconds, enforced while STP is on
BR_MIN_FORWARD_DELAY, BR_MAX_FORWARD_DELAY = 2.0, 30.0
BR_MIN_HELLO_TIME, BR_MAX_HELLO_TIME = 1.0, 10.0
BR_MIN_MAX_AGE, BR_MAX_MAX_AGE = 6.0, 40.0


def eth_hw_addr_random(net) -> bytes:
    """A random locally administered unicast address (from the kernel's seeded
    generator: the mock's runs repeat)."""
    addr = bytearray(net.random.randbytes(6))
    addr[0] = (addr[0] & 0xFE) | 0x02
    return bytes(addr)


def br_multicast_join_snoopers(dev: NetDevice) -> None:
    """The snoopers' groups, 224.0.0.106 then ff02::6a (its link address joined as
    ipv6_dev_mc_inc() does, IPv6 disabled or not)."""
    ip_mc_inc_group(dev, INADDR_ALLSNOOPERS_GROUP)
    dev_mc_add(dev, IN6ADDR_ALLSNOOPERS_MAC)


def br_multicast_leave_snoopers(dev: NetDevice) -> None:
    ip_mc_dec_group(dev, INADDR_ALLSNOOPERS_GROUP)
    dev_mc_del(dev, IN6ADDR_ALLSNOOPERS_MAC)


def br_dev_open(net, dev: NetDevice) -> None:
    br = dev.priv
    br.running = True
    br_stp_enable_bridge(br)
    br_multicast_open(br)
    if br.multicast_enabled:
        br_multicast_join_snoopers(dev)


def br_dev_stop(net, dev: NetDevice) -> None:
    br = dev.priv
    br_stp_disable_bridge(br)
    br_multicast_stop(br)
    if br.multicast_enabled:
        br_multicast_leave_snoopers(dev)
    br.running = False


def br_multicast_toggle(br: NetBridge, enabled: bool) -> None:
    """br_multicast_toggle(): snooping turned on in an open bridge starts its
    queriers and its ports'; either way the snoopers' groups are joined or left."""
    if enabled == br.multicast_enabled:
        return
    br.multicast_enabled = enabled
    if not br.running:
        return
    if enabled:
        br_multicast_open(br)
        for port in br.ports:
            br_multicast_enable_port(port)
    (br_multicast_join_snoopers if enabled else br_multicast_leave_snoopers)(br.dev)


def br_dev_xmit(skb: SkBuff) -> None:
    """The host's frame out of the bridge (the skb's data at its Ethernet header)."""
    dev = skb.dev
    br: NetBridge = dev.priv
    dev.stats.tx_packets += 1
    dev.stats.tx_bytes += skb.tail - skb.data
    cb = skb.cb = {"brdev": dev}
    skb.mac_header = skb.data
    skb.data += ETH_HLEN
    vid = br_allowed_ingress(br, br.vlgrp, skb, cb)
    if vid is None:
        return
    dest = ethernet.HEADER.unpack_from(skb.buf, skb.mac_header)[0]
    skb.net.tracer.hop(skb, Stage.BRIDGE, "br_dev_xmit", dev.name)
    if dest == BROADCAST:
        br_flood(br, skb, BR_PKT_BROADCAST, False, True, "br_dev_xmit")
    elif dest[0] & 1:
        mcast = br_multicast_rcv(br, None, skb, vid)
        if mcast is None:
            kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.BRIDGE, "br_dev_xmit")
            return
        mdst = br_mdb_entry_skb_get(br, skb, mcast, vid)
        if (mdst is not None or mcast.mrouters_only) and br_multicast_querier_exists(br, skb.protocol):
            br_multicast_flood(br, mdst, skb, False, True, "br_dev_xmit")
        else:
            br_flood(br, skb, BR_PKT_MULTICAST, False, True, "br_dev_xmit")
    elif (entry := br_fdb_find(br, dest, vid)) is not None:
        br_forward(entry.dst, skb, False, True, "br_dev_xmit")
    else:
        br_flood(br, skb, BR_PKT_UNICAST, False, True, "br_dev_xmit")


def br_set_mac_address(net, dev: NetDevice, addr: bytes) -> None:
    """br_set_mac_address(): the user's address, kept from then on (NET_ADDR_SET)."""
    br: NetBridge = dev.priv
    br.addr_set_by_user = True
    if addr != dev.mac:
        br_stp_change_bridge_id(br, addr)


def br_change_mtu(dev: NetDevice) -> None:
    """br_change_mtu(): from now on the user's (BROPT_MTU_SET_BY_USER)."""
    dev.priv.mtu_set_by_user = True


class BridgeNetdevOps:
    """br_netdev_ops."""

    ndo_open = staticmethod(br_dev_open)
    ndo_stop = staticmethod(br_dev_stop)
    ndo_start_xmit = staticmethod(br_dev_xmit)
    ndo_set_mac_address = staticmethod(br_set_mac_address)
    ndo_change_mtu = staticmethod(br_change_mtu)


def _seconds(clock_t: int) -> float:
    """clock_t_to_jiffies(): whole jiffies, truncated (999 cs is 2497 jiffies at HZ 250, 998 cs read back)."""
    return (clock_t * HZ // USER_HZ) / HZ


def _set_time(br: NetBridge, name: str, clock_t: int, low: float, high: float) -> None:
    """br_set_forward_delay(), br_set_hello_time(), br_set_max_age(): ERANGE outside
    the 802.1D limits while STP runs; the bridge's own value, and the one in use
    while it is root (another root's BPDUs bring theirs)."""
    seconds = _seconds(clock_t)
    if br.stp_enabled != BR_NO_STP and not low <= seconds <= high:
        raise RtnlError(errno.ERANGE)
    setattr(br, f"bridge_{name}", seconds)
    if br_is_root_bridge(br):
        setattr(br, name, seconds)


def br_vlan_set_default_pvid(br: NetBridge, pvid: int) -> None:
    """__br_vlan_set_default_pvid(): the bridge and each port whose PVID is still
    the old default (PVID and untagged) move to the new one; 0 takes it away."""
    if pvid >= 0xFFF:
        raise RtnlError(errno.EINVAL)
    old = br.default_pvid
    if pvid == old:
        return
    flags = BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED

    def still_default(group) -> bool:
        vlan = group.vlans.get(old)
        return vlan is not None and group.pvid == old and vlan.flags & BRIDGE_VLAN_INFO_UNTAGGED

    if (not old or still_default(br.vlgrp)) and pvid not in br.vlgrp.vlans:
        if pvid:
            br_vlan_add(br, pvid, flags)
        if old:
            br_vlan_delete(br, old)
    for port in br.ports:
        if (old and not still_default(port.vlgrp)) or pvid in port.vlgrp.vlans:
            continue
        if pvid:
            nbp_vlan_add(port, pvid, flags)
        if old:
            nbp_vlan_delete(port, old)
    br.default_pvid = pvid


# (IFLA_BR option, struct net_bridge_mcast field) of the intervals, in br_changelink()'s order
MCAST_INTERVALS = (("mcast_last_member_interval", "last_member_interval"),
                   ("mcast_membership_interval", "membership_interval"),
                   ("mcast_querier_interval", "querier_interval"), ("mcast_query_interval", "query_interval"),
                   ("mcast_query_response_interval", "query_response_interval"),
                   ("mcast_startup_query_interval", "startup_query_interval"))
BR_MULTICAST_QUERY_INTVL_MIN, BR_MULTICAST_QUERY_INTVL_MAX = 1.0, 86400.0


def br_multicast_interval(attribute: str, clock_t: int) -> float:
    """In whole jiffies (_seconds()); the query intervals clamped to [1 s, 1 day]
    (br_multicast_set_query_intvl(), br_multicast_set_startup_query_intvl())."""
    seconds = _seconds(clock_t)
    if attribute in ("query_interval", "startup_query_interval"):
        seconds = min(max(seconds, BR_MULTICAST_QUERY_INTVL_MIN), BR_MULTICAST_QUERY_INTVL_MAX)
    return seconds


def br_multicast_set_router(br: NetBridge, value: int) -> None:
    """br_multicast_set_router(): disabled, temporary by queries, or permanent;
    the temporary router timers stop with either of the others."""
    if value not in (MDB_RTR_TYPE_DISABLED, MDB_RTR_TYPE_TEMP_QUERY, MDB_RTR_TYPE_PERM):
        raise RtnlError(errno.EINVAL)
    mctx = br.multicast_ctx
    if value != MDB_RTR_TYPE_TEMP_QUERY:
        for family in (mctx.ip4, mctx.ip6):
            family.router_timer.del_timer()
    mctx.multicast_router = value


def br_changelink(net, dev: NetDevice, data: dict) -> None:
    """br_changelink(): in the kernel's order (STP state before the times it checks)."""
    br: NetBridge = dev.priv
    if "stp_state" in data:
        br_stp_set_enabled(br, data["stp_state"])
    if "forward_delay" in data:
        _set_time(br, "forward_delay", data["forward_delay"], BR_MIN_FORWARD_DELAY, BR_MAX_FORWARD_DELAY)
    if "hello_time" in data:
        _set_time(br, "hello_time", data["hello_time"], BR_MIN_HELLO_TIME, BR_MAX_HELLO_TIME)
    if "max_age" in data:
        _set_time(br, "max_age", data["max_age"], BR_MIN_MAX_AGE, BR_MAX_MAX_AGE)
    if "ageing_time" in data:
        br.ageing_time = _seconds(data["ageing_time"])
    if "priority" in data:
        br_stp_set_bridge_priority(br, data["priority"])
    if "vlan_filtering" in data:
        br.vlan_enabled = bool(data["vlan_filtering"])
    if "group_fwd_mask" in data:
        if data["group_fwd_mask"] & 0x0007:  # BR_GROUPFWD_RESTRICTED: STP, MAC control, 802.3ad
            raise RtnlError(errno.EINVAL)
        br.group_fwd_mask = data["group_fwd_mask"]
    if "vlan_default_pvid" in data:
        br_vlan_set_default_pvid(br, data["vlan_default_pvid"])
    if "mcast_router" in data:
        br_multicast_set_router(br, data["mcast_router"])
    if "mcast_snooping" in data:
        br_multicast_toggle(br, bool(data["mcast_snooping"]))
    mctx = br.multicast_ctx
    if "mcast_query_use_ifaddr" in data:
        mctx.query_use_ifaddr = bool(data["mcast_query_use_ifaddr"])
    if "mcast_querier" in data:
        br_multicast_set_querier(br, bool(data["mcast_querier"]))
    for name, attribute in (("mcast_hash_max", "hash_max"), ("mcast_last_member_count", "last_member_count"),
                            ("mcast_startup_query_count", "startup_query_count")):
        if name in data:
            setattr(mctx, attribute, data[name])
    for name, attribute in MCAST_INTERVALS:
        if name in data:
            setattr(mctx, attribute, br_multicast_interval(attribute, data[name]))
    if "mcast_stats_enabled" in data:
        mctx.stats_enabled = bool(data["mcast_stats_enabled"])
    for name, accepted in (("mcast_igmp_version", (2, 3)), ("mcast_mld_version", (1, 2))):
        if name in data:
            if data[name] not in accepted:  # br_multicast_set_igmp_version(), ..._mld_version()
                raise RtnlError(errno.EINVAL)
            setattr(mctx, name.removeprefix("mcast_"), data[name])
    for name in ("nf_call_iptables", "nf_call_ip6tables", "nf_call_arptables"):
        if name in data:
            setattr(br, name, bool(data[name]))


class BridgeLinkOps:
    """br_link_ops: `ip link add/set/del ... type bridge`, and the bridge as a master."""

    kind = "bridge"

    @staticmethod
    def newlink(net, name: str, data: dict) -> NetDevice:
        dev = NetDevice(name, net.dev_new_index(), "bridge", eth_hw_addr_random(net))
        dev.operstate_unknown = True
        dev.netdev_ops = BridgeNetdevOps
        br = dev.priv = NetBridge(dev, net)
        br_multicast_init(br)
        register_netdevice(net, dev)
        br_fdb_add_local(br, None, dev.mac, 0)
        br_vlan_init(br)
        br_changelink(net, dev, data)
        return dev

    changelink = staticmethod(br_changelink)

    @staticmethod
    def dellink(net, dev: NetDevice) -> None:
        """br_dev_delete(): every port leaves first."""
        br: NetBridge = dev.priv
        for port in list(br.ports):
            br_del_if(net, br, port.dev)

    @staticmethod
    def add_slave(net, master: NetDevice, dev: NetDevice) -> None:
        br_add_if(net, master.priv, dev)

    @staticmethod
    def del_slave(net, master: NetDevice, dev: NetDevice) -> None:
        br_del_if(net, master.priv, dev)

    @staticmethod
    def slave_changelink(net, master: NetDevice, dev: NetDevice, data: dict) -> None:
        """br_port_slave_changelink() -> br_setport()."""
        br_setport(master.priv.port_of(dev), {PORT_FLAGS[name]: on for name, on in data.items() if name in PORT_FLAGS},
                   data.get("cost"), data.get("priority"), data.get("state"))


def br_init(net) -> None:
    """br_init(): the spanning tree SAP (stp_proto_register(): LLC's 802.2
    receive), the bridge link kind and the port events."""
    dev_add_pack(ETH_P_802_2, llc_rcv)
    rtnl_link_register(BridgeLinkOps)
    register_netdevice_notifier(net, br_device_event)
