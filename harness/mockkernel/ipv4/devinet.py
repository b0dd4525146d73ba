"""IPv4 addresses (net/ipv4/devinet.c): `ip addr add/del` and loopback's own.

inet_rtm_newaddr() / __inet_insert_ifa() (secondaries, insertion order),
inet_rtm_deladdr() / __inet_del_ifa() (a primary takes its secondaries with
it: promote_secondaries off); each change runs the inetaddr notifier chain
(register_inetaddr_notifier()), where the FIB (fib_frontend.py) adds or
removes the address's routes. inetdev_event(NETDEV_UP): loopback coming up
gets 127.0.0.1/8.
Left out: promote_secondaries, address lifetimes, IPv4 leaving a device whose
MTU drops below 68.
"""
from __future__ import annotations

import errno

from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.core.rtnetlink import NETDEV_DOWN, NETDEV_UNREGISTER, NETDEV_UP, register_netdevice_notifier
from harness.mockkernel.ipv4.igmp import ip_mc_down, ip_mc_up
from harness.mockkernel.net import RT_SCOPE_HOST, InAddr, Net, NetDevice, ip_to_int, prefix_mask

LOOPBACK_ADDR = ip_to_int("127.0.0.1")


def inet_ifa_match(ifa: InAddr, addr: int) -> bool:
    """`addr` is in the subnet of `ifa`."""
    return not (addr ^ ifa.local) & prefix_mask(ifa.prefixlen)


def inet_ifa_byprefix(dev: NetDevice, addr: int, prefixlen: int) -> InAddr | None:
    """The primary address of that subnet."""
    return next((a for a in dev.addrs if not a.secondary and a.prefixlen == prefixlen
                 and inet_ifa_match(a, addr)), None)


def inetdev_event_up(net: Net, dev: NetDevice) -> None:
    """inetdev_event(NETDEV_UP): loopback always tries to get 127.0.0.1/8."""
    if dev.is_loopback:
        try:
            inet_rtm_newaddr(net, dev, InAddr(LOOPBACK_ADDR, 8, scope=RT_SCOPE_HOST, label=dev.name))
        except RtnlError:  # inet_insert_ifa() fails quietly when it is already there
            pass


def inet_rtm_newaddr(net: Net, dev: NetDevice, ifa: InAddr, replace: bool = False) -> None:
    """__inet_insert_ifa(): an address in the subnet of one already there is a
    secondary, appended; a primary goes after the last primary of equal or wider
    scope. `replace` (ip addr replace/change) keeps an existing equal address."""
    last_primary = 0
    for index, ifa1 in enumerate(dev.addrs):
        if not ifa1.secondary and ifa.scope <= ifa1.scope:
            last_primary = index + 1
        if ifa1.prefixlen == ifa.prefixlen and inet_ifa_match(ifa1, ifa.local):
            if ifa1.local == ifa.local:
                if replace:
                    return
                raise RtnlError(errno.EEXIST, "ipv4: Address already assigned")
            if ifa1.scope != ifa.scope:
                raise RtnlError(errno.EINVAL, "ipv4: Invalid scope value")
            ifa.secondary = True
    dev.addrs.insert(len(dev.addrs) if ifa.secondary else last_primary, ifa)
    _inetaddr_notify(net, NETDEV_UP, dev, ifa)


def inet_rtm_deladdr(net: Net, dev: NetDevice, local: int | None, prefixlen: int | None,
                     label: str | None = None) -> None:
    """The first address with that local address, prefix length and label, where
    the command gave them; a primary takes the secondaries of its subnet with it."""
    for ifa in dev.addrs:
        if local in (None, ifa.local) and prefixlen in (None, ifa.prefixlen) and label in (None, ifa.label):
            if not ifa.secondary:
                for sec in [a for a in dev.addrs if a.secondary and a.prefixlen == ifa.prefixlen
                            and inet_ifa_match(ifa, a.local)]:
                    _inet_del_ifa(net, dev, sec)
            _inet_del_ifa(net, dev, ifa)
            return
    raise RtnlError(errno.EADDRNOTAVAIL, "ipv4: Address not found")


def _inet_del_ifa(net: Net, dev: NetDevice, ifa: InAddr) -> None:
    """Unlink, then tell the inetaddr chain (the FIB drops the address's routes)."""
    dev.addrs.remove(ifa)
    _inetaddr_notify(net, NETDEV_DOWN, dev, ifa)


def register_inetaddr_notifier(net: Net, notifier) -> None:
    """`notifier(net, event, dev, ifa)` runs when an address is added (NETDEV_UP)
    or deleted (NETDEV_DOWN), in registration order."""
    net.inetaddr_chain.append(notifier)


def _inetaddr_notify(net: Net, event: int, dev: NetDevice, ifa: InAddr) -> None:
    """blocking_notifier_call_chain(&inetaddr_chain, event, ifa)."""
    for notifier in net.inetaddr_chain:
        notifier(net, event, dev, ifa)


def inetdev_event(net: Net, event: int, dev: NetDevice) -> None:
    if event == NETDEV_UP:
        inetdev_event_up(net, dev)
        ip_mc_up(dev)
    elif event == NETDEV_DOWN:
        ip_mc_down(dev)
    elif event == NETDEV_UNREGISTER:  # inetdev_destroy(): the addresses go, their routes with them
        while dev.addrs:
            _inet_del_ifa(net, dev, dev.addrs[-1])


def devinet_init(net: Net) -> None:
    register_netdevice_notifier(net, inetdev_event)
