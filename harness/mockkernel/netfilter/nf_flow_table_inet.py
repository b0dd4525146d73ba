"""The flowtable types (net/netfilter/nf_flow_table_inet.c): an ip flowtable's
ingress hook is nf_flow_offload_ip_hook(), an ip6 one's
nf_flow_offload_ipv6_hook(), an inet one's nf_flow_offload_inet_hook(), which
picks either by the packet's protocol. No other family has a type: a netdev,
bridge or arp table's flowtable is ENOENT (nft_flowtable_type_get())."""
from __future__ import annotations

from harness.mockkernel.netfilter.core import NF_ACCEPT
from harness.mockkernel.netfilter.nf_flow_table_core import NfFlowtable
from harness.mockkernel.netfilter.nf_flow_table_ip import nf_flow_offload_ip_hook, nf_flow_offload_ipv6_hook
from harness.mockkernel.wire.ethernet import ETH_P_IP, ETH_P_IPV6


def nf_flow_offload_inet_hook(flow_table: NfFlowtable, skb, state) -> int:
    protocol = skb.protocol
    if protocol == ETH_P_IP:
        return nf_flow_offload_ip_hook(flow_table, skb, state)
    if protocol == ETH_P_IPV6:
        return nf_flow_offload_ipv6_hook(flow_table, skb, state)
    return NF_ACCEPT


NF_FLOWTABLE_TYPES = {"ip": nf_flow_offload_ip_hook, "ip6": nf_flow_offload_ipv6_hook,
                      "inet": nf_flow_offload_inet_hook}
