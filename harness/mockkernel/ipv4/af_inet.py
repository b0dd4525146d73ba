"""IPv4's initialisation (net/ipv4/af_inet.c inet_init()), run at boot.

What IPv4 hooks into the core it registers here, in the kernel's order:
ARP's receive function (arp_init()), the netdevice notifiers of devinet and
the FIB (ip_init() -> ip_rt_init(): devinet_init(), ip_fib_init()), and
ip_rcv() for ETH_P_IP last (dev_add_pack(&ip_packet_type)).
"""
from __future__ import annotations

from harness.mockkernel.core.dev import dev_add_pack
from harness.mockkernel.ipv4.arp import arp_init
from harness.mockkernel.ipv4.devinet import devinet_init
from harness.mockkernel.ipv4.fib_frontend import ip_fib_init
from harness.mockkernel.ipv4.ip_input import ip_rcv
from harness.mockkernel.wire.ethernet import ETH_P_IP


def inet_init(net) -> None:
    arp_init(net)
    devinet_init(net)  # ip_init() -> ip_rt_init()
    ip_fib_init(net)
    dev_add_pack(net, ETH_P_IP, ip_rcv)
