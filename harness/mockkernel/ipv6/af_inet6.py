"""IPv6's initialisation (net/ipv6/af_inet6.c inet6_init()), run at boot after
IPv4's: the namespace's IPv6 state (net->ipv6, ipv6/netns.py) with the FIB's
local and main tables (ip6_route_init() -> fib6_net_init()), the rules that
look them up (fib6_rules_init() -> fib6_rules_net_init()), /proc/net/ipv6_route, and the
net.ipv6.* sysctls outside conf/ (ipv6_sysctl_register()), ICMPv6
(icmpv6_init()), addrconf (addrconf_init(): conf/all and conf/default, the
netdevice notifier that gives each device its inet6_dev), neighbour
discovery (ndisc_init(): nd_tbl), the extension headers' and fragments'
handlers, UDP, TCP (tcpv6_init()), and ipv6_rcv() for ETH_P_IPV6 last
(ipv6_packet_init())."""
from __future__ import annotations

from harness.mockkernel.core.dev import dev_add_pack
from harness.mockkernel.core.sysctl import CtlTable, proc_dointvec_jiffies
from harness.mockkernel.ipv6.addrconf import addrconf_init
from harness.mockkernel.ipv6.exthdrs import ipv6_exthdrs_init
from harness.mockkernel.ipv6.fib6_rules import fib6_rules_net_init
from harness.mockkernel.ipv6.icmp import icmpv6_init
from harness.mockkernel.ipv6.ip6_fib import fib6_proc_init
from harness.mockkernel.ipv6.ip6_input import ipv6_rcv
from harness.mockkernel.ipv6.ndisc import ndisc_init
from harness.mockkernel.ipv6.netns import NetnsIpv6
from harness.mockkernel.ipv6.reassembly import ipv6_frag_init
from harness.mockkernel.ipv6.route import proc_rt6_multipath_hash_policy
from harness.mockkernel.ipv6.tcp_ipv6 import tcpv6_init
from harness.mockkernel.ipv6.udp import udpv6_init
from harness.mockkernel.wire.ethernet import ETH_P_IPV6

# net/ipv6/sysctl_net_ipv6.c ipv6_table_template, the entries the model reads
IPV6_SYSCTL_TABLE = {
    "net.ipv6.ip6frag_time": CtlTable(60, proc_dointvec_jiffies),  # IPV6_FRAG_TIMEOUT
    "net.ipv6.fib_multipath_hash_policy": CtlTable(0, proc_rt6_multipath_hash_policy, 0, 3),
}


def inet6_init(net) -> None:
    net.ipv6 = NetnsIpv6()
    fib6_rules_net_init(net)
    fib6_proc_init(net)
    net.sysctl.register(IPV6_SYSCTL_TABLE)
    icmpv6_init(net)
    addrconf_init(net)
    ndisc_init(net)
    ipv6_exthdrs_init()
    ipv6_frag_init()
    udpv6_init()
    tcpv6_init(net)
    dev_add_pack(ETH_P_IPV6, ipv6_rcv)
