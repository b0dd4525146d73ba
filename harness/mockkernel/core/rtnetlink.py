"""The kernel side of `ip link` and `ip neigh`: each rtnetlink
request as this kernel (6.18) handles it; addresses are ipv4/devinet.py's,
routes ipv4/fib_frontend.py's.

Functions keep the names of the kernel functions they model:
- links (net/core/dev.c, rtnetlink.c do_setlink): dev_set_mac_address(),
  dev_set_mtu(), dev_change_flags() and the netdevice notifier chain it runs
  (register_netdevice_notifier(), call_netdevice_notifiers()): devinet's
  inetdev_event() and fib_frontend's fib_netdev_event() register there.
- neighbours (net/core/neighbour.c neigh_table_init, neigh_add/neigh_delete,
  neigh_ifdown).
Errors are RtnlError(errno, extack) (core/errors.py). Left out: neighbour
timers started by `ip neigh` (the datapath's ARP state machine starts its own).
"""
from __future__ import annotations

import errno

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.core.errors import RtnlError, not_modelled
from harness.mockkernel.core.neighbour import neigh_output
from harness.mockkernel.core.skbuff import kfree_skb
from harness.mockkernel.net import NUD_VALID, Net, NetDevice

# include/uapi/linux/netlink.h request flags
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE, NLM_F_APPEND = 0x100, 0x200, 0x400, 0x800
IPV4_MIN_MTU = 68
# include/linux/netdevice.h netdev_cmd
NETDEV_UP, NETDEV_DOWN, NETDEV_CHANGE, NETDEV_REGISTER, NETDEV_UNREGISTER = 1, 2, 4, 5, 6
NETDEV_CHANGEMTU, NETDEV_CHANGEADDR = 7, 8
# dev->min_mtu / max_mtu (0: no maximum), by kind
MTU_BOUNDS = {"loopback": (0, 0), "veth": (IPV4_MIN_MTU, 65535), "bridge": (IPV4_MIN_MTU, 65535)}
IFNAMSIZ = 16
LINK_LOCAL_GROUP_PREFIX = b"\x01\x80\xc2\x00\x00"  # is_link_local_ether_addr(): 01:80:c2:00:00:0X

# rtnl_link_register(): the link kinds `ip link add ... type KIND` can create, by kind
rtnl_link_ops: dict = {}


# links ------------------------------------------------------------------------
def dev_set_mac_address(net: Net, dev: NetDevice, mac: bytes) -> None:
    if len(mac) != 6:
        raise RtnlError(errno.EINVAL)
    if mac[0] & 1 or not any(mac):  # is_valid_ether_addr()
        raise RtnlError(errno.EADDRNOTAVAIL)
    if dev.netdev_ops is not None:
        dev.netdev_ops.ndo_set_mac_address(net, dev, mac)
    dev.mac = mac
    call_netdevice_notifiers(net, NETDEV_CHANGEADDR, dev)


def dev_set_mtu(net: Net, dev: NetDevice, mtu: int) -> None:
    """dev_validate_mtu(), then NETDEV_CHANGEMTU (IPv6 takes the new MTU); a
    device whose MTU drops below 68 loses IPv4 (inetdev_destroy), which the
    mock does not model."""
    low, high = MTU_BOUNDS[dev.kind]
    if mtu < low:
        raise RtnlError(errno.EINVAL, "mtu less than device minimum")
    if high and mtu > high:
        raise RtnlError(errno.EINVAL, "mtu greater than device maximum")
    if mtu < IPV4_MIN_MTU:
        raise not_modelled(f"mtu {mtu} (below {IPV4_MIN_MTU}, IPv4 leaves {dev.name})")
    dev.mtu = mtu
    if dev.netdev_ops is not None:
        dev.netdev_ops.ndo_change_mtu(dev)
    call_netdevice_notifiers(net, NETDEV_CHANGEMTU, dev)


def rtnl_link_register(ops) -> None:
    """rtnl_link_register(): `ops` (its `kind`) creates devices, as a module's init
    registers them. `ops.newlink(net, name, data) -> NetDevice` registers a device of
    its kind, `ops.changelink(net, dev, data)` applies options, `ops.dellink(net, dev)`
    takes it down to be unregistered, `ops.add_slave(net, master, dev)` and
    `ops.del_slave(net, master, dev)` are its ndo_add_slave/ndo_del_slave,
    `ops.slave_changelink(net, master, dev, data)` sets a slave's options."""
    rtnl_link_ops[ops.kind] = ops


def rtnl_newlink(net: Net, name: str, kind: str, data: dict) -> NetDevice:
    """rtnl_newlink(): a device of a registered kind (EEXIST for a taken name)."""
    if any(dev.name == name for dev in net.devices.values()):
        raise RtnlError(errno.EEXIST)
    ops = rtnl_link_ops.get(kind)
    if ops is None:
        raise RtnlError(errno.EOPNOTSUPP, "Unknown device type")
    return ops.newlink(net, name, data)


def rtnl_changelink(net: Net, dev: NetDevice, kind: str, data: dict) -> None:
    """rtnl_changelink(): `ip link set DEV type KIND ...` on a device of that kind."""
    ops = rtnl_link_ops.get(kind)
    if ops is None or dev.kind != kind:
        raise RtnlError(errno.EOPNOTSUPP)
    ops.changelink(net, dev, data)


def rtnl_slave_changelink(net: Net, dev: NetDevice, data: dict) -> None:
    """rtnl_changelink()'s slave part: the master's slave_changelink (EOPNOTSUPP
    for a device that is no link kind's slave)."""
    ops = rtnl_link_ops.get(dev.master.kind) if dev.master is not None else None
    if ops is None:
        raise RtnlError(errno.EOPNOTSUPP)
    ops.slave_changelink(net, dev.master, dev, data)
    call_netdevice_notifiers(net, NETDEV_CHANGE, dev)  # do_setlink()'s netdev_state_change()


def register_netdevice(net: Net, dev: NetDevice) -> None:
    """register_netdevice(): the device joins the namespace, then NETDEV_REGISTER."""
    net.add_device(dev)
    call_netdevice_notifiers(net, NETDEV_REGISTER, dev)


def rtnl_dellink(net: Net, dev: NetDevice) -> None:
    """rtnl_dellink(): only devices created by a link kind can go (EOPNOTSUPP for
    the ports and lo); unregister_netdevice(): down first (dev_close()), then the
    NETDEV_UNREGISTER notifiers drop what refers to it, and its sysctls go."""
    ops = rtnl_link_ops.get(dev.kind)
    if ops is None:
        raise RtnlError(errno.EOPNOTSUPP)
    ops.dellink(net, dev)
    dev_change_flags(net, dev, False)
    call_netdevice_notifiers(net, NETDEV_UNREGISTER, dev)
    neigh_ifdown(net, net.arp_tbl, dev)
    net.remove_device(dev)


def do_set_master(net: Net, dev: NetDevice, master: NetDevice | None) -> None:
    """do_set_master(): leave the current upper device (ndo_del_slave), then join
    `master` (ndo_add_slave; EOPNOTSUPP for a device that takes no slaves)."""
    if dev.master is master:
        return
    if dev.master is not None:
        rtnl_link_ops[dev.master.kind].del_slave(net, dev.master, dev)
    if master is not None:
        ops = rtnl_link_ops.get(master.kind)
        if ops is None:
            raise RtnlError(errno.EOPNOTSUPP)
        ops.add_slave(net, master, dev)


def dev_change_flags(net: Net, dev: NetDevice, up: bool) -> None:
    """__dev_open() runs the driver's ndo_open before IFF_UP and the NETDEV_UP
    notifiers, __dev_close_many() its ndo_stop before NETDEV_DOWN's."""
    if dev.up == up:
        return
    if dev.netdev_ops is not None:
        (dev.netdev_ops.ndo_open if up else dev.netdev_ops.ndo_stop)(net, dev)
    dev.up = up
    if dev.netdev_ops is None and not dev.is_loopback:  # lo's carrier is always on; a bridge's follows its ports
        dev.carrier_changes += 1
    call_netdevice_notifiers(net, NETDEV_UP if up else NETDEV_DOWN, dev)


def netif_carrier_on(dev: NetDevice) -> None:
    if not dev.carrier:
        dev.carrier, dev.operstate_unknown = True, False
        dev.carrier_changes += 1


def netif_carrier_off(dev: NetDevice) -> None:
    if dev.carrier:
        dev.carrier, dev.operstate_unknown = False, False
        dev.carrier_changes += 1


def register_netdevice_notifier(net: Net, notifier) -> None:
    """`notifier(net, event, dev)` runs at every device event, in registration order."""
    net.netdev_chain.append(notifier)


def call_netdevice_notifiers(net: Net, event: int, dev: NetDevice) -> None:
    for notifier in net.netdev_chain:
        notifier(net, event, dev)


# a device's own fdb ("bridge fdb ... self" on a device that is not a bridge) ---------
def ndo_dflt_fdb_add(dev: NetDevice, addr: bytes, permanent: bool, vid: int | None, flags: int) -> None:
    """ndo_dflt_fdb_add(): a permanent address without VLAN joins the device's
    unicast list (a link-local one too) or its multicast list; one already there is
    EEXIST only with NLM_F_EXCL (`bridge fdb add`, not `append`)."""
    if not permanent or vid is not None:
        raise RtnlError(errno.EINVAL)
    addresses = dev.mc if addr[0] & 1 and not addr.startswith(LINK_LOCAL_GROUP_PREFIX) else dev.uc
    if addr in addresses:
        if flags & NLM_F_EXCL:
            raise RtnlError(errno.EEXIST)
        return
    addresses.append(addr)


def ndo_dflt_fdb_del(dev: NetDevice, addr: bytes) -> None:
    addresses = dev.mc if addr[0] & 1 and not addr.startswith(LINK_LOCAL_GROUP_PREFIX) else dev.uc
    if addr not in addresses:
        raise RtnlError(errno.ENOENT)
    addresses.remove(addr)


# neighbours -------------------------------------------------------------------
def neigh_table_init(net: Net, name: str, tbl) -> None:
    """neigh_table_init(): `name` is arp_tbl or nd_tbl (core/neighbour.py NeighTable)."""
    setattr(net, name, tbl)


def neigh_add(net: Net, tbl, dev: NetDevice, ip, lladdr: bytes | None, state: int, flags: int) -> None:
    """neigh_add() + __neigh_update() as an administrator. States that need an
    address (NUD_VALID) take the given one or keep the entry's; without either
    the update fails, leaving a new entry behind in no state, as the kernel does."""
    if lladdr is not None and len(lladdr) < len(dev.mac):
        raise RtnlError(errno.EINVAL, "Invalid link address")
    neigh = tbl.entries.get((dev.ifindex, ip))
    if neigh is None:
        if not flags & NLM_F_CREATE:
            raise RtnlError(errno.ENOENT)
        neigh = tbl.create(net, dev.ifindex, ip)
    elif flags & NLM_F_EXCL:
        raise RtnlError(errno.EEXIST)
    if state & NUD_VALID:
        lladdr = lladdr or (neigh.lladdr if neigh.state & NUD_VALID else None)
        if lladdr is None:
            raise RtnlError(errno.EINVAL, "No link layer address given")
        neigh.lladdr = lladdr
    neigh.state, neigh.updated = state, net.clock.now
    if state & NUD_VALID:  # a now-valid entry sends what waited for it
        queued, neigh.queue = neigh.queue, []
        for skb in queued:
            neigh_output(net, neigh, skb)


def neigh_delete(net: Net, tbl, dev: NetDevice, ip) -> None:
    if (dev.ifindex, ip) not in tbl.entries:
        raise RtnlError(errno.ENOENT)
    _neigh_destroy(tbl, (dev.ifindex, ip))


def pneigh_add(tbl, dev: NetDevice, ip, router: bool) -> None:
    """neigh_add() with NTF_PROXY: the proxy entry made (the table's pconstructor
    run), or its flags set anew."""
    if (dev.ifindex, ip) not in tbl.proxies and tbl.pconstructor is not None:
        tbl.pconstructor(dev, ip)
    tbl.proxies[(dev.ifindex, ip)] = router


def pneigh_delete(tbl, dev: NetDevice, ip) -> None:
    if tbl.proxies.pop((dev.ifindex, ip), None) is None:
        raise RtnlError(errno.ENOENT)
    if tbl.pdestructor is not None:
        tbl.pdestructor(dev, ip)


def neigh_ifdown(net: Net, tbl, dev: NetDevice) -> None:
    """Every entry on the device goes, permanent ones and proxy entries too."""
    for key in [k for k in tbl.entries if k[0] == dev.ifindex]:
        _neigh_destroy(tbl, key)
    for ifindex, ip in [k for k in tbl.proxies if k[0] == dev.ifindex]:
        pneigh_delete(tbl, dev, ip)


def _neigh_destroy(tbl, key: tuple) -> None:
    """The entry dies: its timers see no state left to work on, and what was
    queued for it is dropped."""
    neigh = tbl.entries.pop(key)
    neigh.state = 0
    for skb in neigh.queue:
        kfree_skb(skb, DropReason.NEIGH_DEAD, Stage.NEIGH, "neigh_flush_dev")
    neigh.queue = []
