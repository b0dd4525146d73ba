"""IPv6's initialisation (net/ipv6/af_inet6.c inet6_init()), run at boot after
IPv4's: the namespace's IPv6 state (net->ipv6, ipv6/netns.py) with the FIB's
local and main tables (ip6_route_init() -> fib6_net_init()), then addrconf
(addrconf_init(): conf/all and conf/default, the netdevice notifier that gives
each device its inet6_dev) and neighbour discovery (ndisc_init(): nd_tbl)."""
from __future__ import annotations

from harness.mockkernel.ipv6.addrconf import addrconf_init
from harness.mockkernel.ipv6.ndisc import ndisc_init
from harness.mockkernel.ipv6.netns import NetnsIpv6


def inet6_init(net) -> None:
    net.ipv6 = NetnsIpv6()
    addrconf_init(net)
    ndisc_init(net)
