"""struct netns_ipv6 (include/net/netns/ipv6.h): a namespace's IPv6 state,
`net.ipv6`, made by inet6_init() (af_inet6.py).

`fib_tables` by id (ipv6/ip6_fib.py Fib6Table; fib6_net_init() makes local
and main), `fib6_sernum`, bumped by every FIB change (fib6_update_sernum()):
the input routes cached on the routes (route.py) are stale once it moved.
"""
from __future__ import annotations

from harness.mockkernel.ipv6.ip6_fib import Fib6Table

RT6_TABLE_MAIN, RT6_TABLE_LOCAL = 254, 255


class NetnsIpv6:
    def __init__(self) -> None:
        self.fib_tables: dict[int, Fib6Table] = {RT6_TABLE_MAIN: Fib6Table(RT6_TABLE_MAIN),
                                                 RT6_TABLE_LOCAL: Fib6Table(RT6_TABLE_LOCAL)}
        self.fib6_sernum = 0
