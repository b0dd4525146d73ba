"""IPv4's initialisation (net/ipv4/af_inet.c inet_init()), run at boot.

What IPv4 hooks into the core it registers here, as the kernel does: the
netdevice notifiers of devinet and the FIB (ip_rt_init(): devinet_init(),
ip_fib_init()).
"""
from __future__ import annotations

from harness.mockkernel.ipv4.devinet import devinet_init
from harness.mockkernel.ipv4.fib_frontend import ip_fib_init


def inet_init(net) -> None:
    devinet_init(net)
    ip_fib_init(net)
