"""IPv6's protocol table (net/ipv6/protocol.c): inet6_protos[], filled by
inet6_add_protocol(), read by ip6_protocol_deliver_rcu()."""
from __future__ import annotations

inet6_protos: dict = {}  # next header: its receive function


def inet6_add_protocol(handler, protocol: int) -> None:
    """`handler(skb)` receives every locally delivered packet whose last
    header is `protocol`, skb.data at that header. Global, as in the kernel:
    each boot registers the same handlers again."""
    inet6_protos[protocol] = handler
