"""IPv6's protocol table (net/ipv6/protocol.c): inet6_protos[], filled by
inet6_add_protocol(), read by ip6_protocol_deliver_rcu(), and each
protocol's err_handler, which icmpv6_notify() calls with an ICMPv6 error
about a packet of that protocol."""
from __future__ import annotations

inet6_protos: dict = {}  # next header: its receive function
inet6_err_handlers: dict = {}  # next header: its err_handler


def inet6_add_protocol(handler, protocol: int, err_handler=None) -> None:
    """`handler(skb)` receives every locally delivered packet whose last
    header is `protocol`, skb.data at that header; `err_handler(skb, type,
    code, info, offset)` the ICMPv6 errors quoting one (skb.data at the
    quoted IPv6 header, `offset` from it to the protocol's header). Global,
    as in the kernel: each boot registers the same handlers again."""
    inet6_protos[protocol] = handler
    if err_handler is not None:
        inet6_err_handlers[protocol] = err_handler
