"""IPv4's protocol table (net/ipv4/protocol.c): inet_protos[], filled by
inet_add_protocol(), read by ip_local_deliver_finish() (ip_protocol_deliver_rcu())."""
from __future__ import annotations


def inet_add_protocol(net, handler, protocol: int) -> None:
    """`handler(skb)` receives every locally delivered packet of IP protocol `protocol`."""
    net.inet_protos[protocol] = handler
