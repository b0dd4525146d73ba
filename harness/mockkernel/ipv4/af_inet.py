"""IPv4's initialisation (net/ipv4/af_inet.c inet_init()), run at boot.

What IPv4 hooks into the core it registers here, in the kernel's order: the
L4 receive functions (inet_add_protocol(): ICMP, UDP, TCP, IGMP) with TCP's
congestion-control modules, sysctls and socket tables, ARP's
receive function and neighbour table (arp_init()), the netdevice notifiers of
devinet and the FIB (ip_init() -> ip_rt_init(): devinet_init(),
ip_fib_init()), ICMP's sender (icmp_init()), /proc/net/snmp and netstat
(ip_proc_init()), and ip_rcv() for ETH_P_IP last
(dev_add_pack(&ip_packet_type)).
"""
from __future__ import annotations

from harness.mockkernel.core.dev import dev_add_pack
from harness.mockkernel.ipv4.arp import arp_init
from harness.mockkernel.ipv4.devinet import devinet_init
from harness.mockkernel.ipv4.fib_frontend import ip_fib_init
from harness.mockkernel.ipv4.icmp import icmp_init, icmp_rcv
from harness.mockkernel.ipv4.igmp import IGMP_SYSCTLS, igmp_rcv
from harness.mockkernel.ipv4.ip_input import ip_rcv
from harness.mockkernel.ipv4.proc import ip_proc_init
from harness.mockkernel.ipv4.protocol import inet_add_protocol
from harness.mockkernel.ipv4.tcp_cong import tcp_cong_sysctls
from harness.mockkernel.ipv4.tcp_cubic import cubictcp_register
from harness.mockkernel.ipv4.tcp_ipv4 import tcp_v4_init_net, tcp_v4_rcv
from harness.mockkernel.ipv4.tcp_output import TCP_OUTPUT_SYSCTLS
from harness.mockkernel.ipv4.udp import udp_rcv
from harness.mockkernel.wire.ethernet import ETH_P_IP
from harness.mockkernel.wire.ipv4 import IPPROTO_ICMP, IPPROTO_IGMP, IPPROTO_TCP, IPPROTO_UDP


def inet_init(net) -> None:
    inet_add_protocol(icmp_rcv, IPPROTO_ICMP)
    inet_add_protocol(udp_rcv, IPPROTO_UDP)
    inet_add_protocol(tcp_v4_rcv, IPPROTO_TCP)
    cubictcp_register()  # built in: late_initcall(cubictcp_register)
    net.sysctl.register(tcp_cong_sysctls())
    net.sysctl.register(TCP_OUTPUT_SYSCTLS)
    tcp_v4_init_net(net)
    inet_add_protocol(igmp_rcv, IPPROTO_IGMP)
    net.sysctl.register(IGMP_SYSCTLS)
    arp_init(net)
    devinet_init(net)  # ip_init() -> ip_rt_init()
    ip_fib_init(net)
    icmp_init(net)
    ip_proc_init(net)
    dev_add_pack(ETH_P_IP, ip_rcv)
