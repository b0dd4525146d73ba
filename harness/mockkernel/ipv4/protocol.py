"""IPv4's protocol table (net/ipv4/protocol.c): inet_protos[], filled by
inet_add_protocol(), read by ip_local_deliver_finish() (ip_protocol_deliver_rcu())."""
from __future__ import annotations


inet_protos: dict = {}  # IP protocol: its receive function


def inet_add_protocol(handler, protocol: int) -> None:
    """`handler(skb)` receives every locally delivered packet of IP protocol
    `protocol`. Global, as in the kernel: each boot registers the same handlers again."""
    inet_protos[protocol] = handler
