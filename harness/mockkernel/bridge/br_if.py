"""Ports (net/bridge/br_if.c): br_add_if() (`ip link set DEV master BR`),
br_del_if() (`nomaster`, or the port or bridge going away), and the port events
of br_device_event() (net/bridge/br.c).

A new port gets the lowest free port number, a path cost from its speed
(port_cost()), the bridge's rx_handler, its own address as a local fdb entry
and the default PVID; it is added at the head of the port list (list_add_rcu(),
so a flood leaves the newest port first), the bridge id is recalculated, and the
port is enabled at once if it and the bridge are up. The bridge's MTU follows
its smallest port's unless the user set it (br_mtu_auto_adjust()). A port going
down is disabled; coming up, enabled; a change on it (NETDEV_CHANGE, as
`ip link set ... type bridge_slave` sends) enables it if it is up and disabled.
Left out: promiscuity counts, netpoll, switchdev, the bridge's features.
"""
from __future__ import annotations

import errno

from harness.mockkernel.bridge.br_fdb import br_fdb_add_local, br_fdb_delete_by_port, fdb_delete_local
from harness.mockkernel.bridge.br_input import br_handle_frame
from harness.mockkernel.bridge.br_multicast import br_multicast_add_port, br_multicast_del_port
from harness.mockkernel.bridge.br_private import (BR_ADMIN_COST, BR_MAX_PORTS, BR_STATE_DISABLED, NetBridge,
                                                  NetBridgePort)
from harness.mockkernel.bridge.br_stp import (br_init_port, br_set_state, br_stp_disable_port, br_stp_enable_port,
                                              br_stp_recalculate_bridge_id)
from harness.mockkernel.bridge.br_vlan import nbp_vlan_delete, nbp_vlan_init
from harness.mockkernel.core.dev import netdev_rx_handler_register, netdev_rx_handler_unregister
from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.core.rtnetlink import (NETDEV_CHANGE, NETDEV_CHANGEADDR, NETDEV_CHANGEMTU, NETDEV_DOWN,
                                              NETDEV_UNREGISTER, NETDEV_UP)
from harness.mockkernel.net import NetDevice

ETH_DATA_LEN = 1500
# port_cost(): the STP path cost by link speed (Mb/s); slower or unknown links cost 100
PORT_COSTS = {10000: 2, 5000: 3, 2500: 4, 1000: 4, 100: 19, 10: 100}


VETH_TSO_MAX_SIZE = 524280  # the ports' (veth's) tso_max_size, as `ip -d link` shows it on the lab


def port_cost(dev: NetDevice) -> int:
    if dev.speed in PORT_COSTS:
        return PORT_COSTS[dev.speed]
    return 1 if dev.speed > 10000 else 100


def find_portno(br: NetBridge) -> int:
    used = {port.port_no for port in br.ports}
    port_no = next((n for n in range(1, BR_MAX_PORTS) if n not in used), None)
    if port_no is None:
        raise RtnlError(errno.EXFULL)
    return port_no


def br_mtu_auto_adjust(br: NetBridge) -> None:
    """The bridge's MTU is its smallest port's (1500 with none), unless set by the user."""
    if not br.mtu_set_by_user:
        br.dev.mtu = min((port.dev.mtu for port in br.ports), default=ETH_DATA_LEN)


def br_add_if(net, br: NetBridge, dev: NetDevice) -> None:
    if dev.is_loopback:
        raise RtnlError(errno.EINVAL)
    if dev.kind == "bridge":
        raise RtnlError(errno.ELOOP, "Can not enslave a bridge to a bridge")
    if dev.master is not None:
        raise RtnlError(errno.EBUSY)
    port = NetBridgePort(br, dev, find_portno(br))
    port.path_cost = port_cost(dev)
    br_init_port(port)  # new_nbp(): designated, then disabled
    br_set_state(port, BR_STATE_DISABLED)
    br_multicast_add_port(port)
    netdev_rx_handler_register(dev, br_handle_frame, port)
    dev.master = br.dev
    br.dev.operstate_unknown = False  # the upper device's link event (netdev_upper_dev_link())
    br.ports.insert(0, port)
    br.tso_max_size = VETH_TSO_MAX_SIZE  # netif_inherit_tso_max(): the port's
    br_fdb_add_local(br, port, dev.mac, 0)
    nbp_vlan_init(port)
    br_stp_recalculate_bridge_id(br)
    if dev.up and br.dev.up:
        br_stp_enable_port(port)
    br_mtu_auto_adjust(br)


def br_del_if(net, br: NetBridge, dev: NetDevice) -> None:
    """del_nbp(): disabled, out of the list, its VLANs and fdb entries gone, the
    rx_handler unregistered; then the bridge id and MTU are recalculated."""
    port = br.port_of(dev)
    if port is None:
        raise RtnlError(errno.EINVAL)
    br_stp_disable_port(port)
    br.ports.remove(port)
    for vid in list(port.vlgrp.vlans):
        nbp_vlan_delete(port, vid)
    br_fdb_delete_by_port(br, port, 0, True)
    br_multicast_del_port(port)
    netdev_rx_handler_unregister(dev)
    dev.master = None
    br_stp_recalculate_bridge_id(br)
    br_mtu_auto_adjust(br)


def br_port_carrier_check(port: NetBridgePort) -> None:
    """br_port_carrier_check() at a port's NETDEV_CHANGE: its cost follows its speed
    unless the user set it; on an open bridge a port up is enabled if it was disabled
    (even by hand), one down disabled."""
    if not port.flags & BR_ADMIN_COST and port.dev.up:
        port.path_cost = port_cost(port.dev)
    if not port.br.dev.up:
        return
    if port.dev.up and port.state == BR_STATE_DISABLED:
        br_stp_enable_port(port)
    elif not port.dev.up and port.state != BR_STATE_DISABLED:
        br_stp_disable_port(port)


def br_device_event(net, event: int, dev: NetDevice) -> None:
    """br_device_event(): a port's own events."""
    master = dev.master
    if master is None or master.kind != "bridge":
        return
    br = master.priv
    port = br.port_of(dev)
    if event == NETDEV_UP and br.dev.up:
        br_stp_enable_port(port)
    elif event == NETDEV_DOWN and br.dev.up:
        br_stp_disable_port(port)
    elif event == NETDEV_CHANGE:
        br_port_carrier_check(port)
    elif event == NETDEV_CHANGEADDR:  # br_fdb_changeaddr(): the port's local entries follow it
        for entry in [e for e in br.fdb.values() if e.dst is port and e.local]:
            fdb_delete_local(br, port, entry)
        for vid in (0, *port.vlgrp.vlans):
            br_fdb_add_local(br, port, dev.mac, vid)
        br_stp_recalculate_bridge_id(br)
    elif event == NETDEV_CHANGEMTU:
        br_mtu_auto_adjust(br)
    elif event == NETDEV_UNREGISTER:
        br_del_if(net, br, dev)
