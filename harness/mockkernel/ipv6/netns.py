"""struct netns_ipv6 (include/net/netns/ipv6.h): a namespace's IPv6 state,
`net.ipv6`, made by inet6_init() (af_inet6.py).

`fib_tables` by id (ipv6/ip6_fib.py Fib6Table; fib6_net_init() makes local
and main), `fib6_has_custom_rules` (ipv6/fib6_rules.py), `fib6_sernum`,
bumped by every FIB change (fib6_update_sernum()):
the input routes cached on the routes (route.py) are stale once it moved;
`devconf_all`/`devconf_dflt` and DAD's `ndisc_send_ns` (addrconf.py, ndisc.py);
`ndisc_send_redirect`, which ip6_forward() calls (ip6_output.py, ndisc.py);
`icmpv6_send`, ICMPv6's sender for the modules below it (icmpv6_init(),
inet6_register_icmp_sender()); `frags`, the reassembly queues (reassembly.py);
`flowlabel_secret`, the key of automatic flow labels (icmp.py), drawn at first use.
"""
from __future__ import annotations

from harness.mockkernel.ipv6.ip6_fib import Fib6Table

RT6_TABLE_MAIN, RT6_TABLE_LOCAL = 254, 255


class NetnsIpv6:
    def __init__(self) -> None:
        self.fib_tables: dict[int, Fib6Table] = {RT6_TABLE_MAIN: Fib6Table(RT6_TABLE_MAIN),
                                                 RT6_TABLE_LOCAL: Fib6Table(RT6_TABLE_LOCAL)}
        self.fib6_sernum = 0
        self.fib6_has_custom_rules = False  # set by the first `ip -6 rule add` (ipv6/fib6_rules.py)
        # ipv6_devconf of conf/all and conf/default (ipv6/addrconf.py addrconf_init())
        self.devconf_all = self.devconf_dflt = None
        # neighbour discovery's solicitation sender, for DAD, and the neighbour output
        # ip6_finish_output2() hands packets to, fn(skb, nexthop) (ipv6/ndisc.py ndisc_init())
        self.ndisc_send_ns = self.neigh_output = None
        # fn(skb, target): the redirect ip6_forward() sends (ipv6/ndisc.py ndisc_init())
        self.ndisc_send_redirect = None
        self.icmpv6_send = None
        self.frags: dict = {}
        self.flowlabel_secret: bytes | None = None
        # the multipath hash's key while net.ipv4.fib_multipath_hash_seed is 0, drawn at first use (route.py)
        self.multipath_random_seed: int | None = None
