"""IGMP and group membership (net/ipv4/igmp.c): ip_check_mc_rcu, igmp_rcv.

ip_mc_up() joins IGMP_ALL_HOSTS (224.0.0.1) on every device whose in_device
comes up (loopback included; IFF_MULTICAST is not consulted), with no source
filter, and never reports it; its link address is on the device's multicast
list (dev->mc) while the device is up. That is the only membership this model has:
ip_check_mc_rcu() accepts 224.0.0.1 from any source, in any protocol, on any
up device, and no other group.
igmp_rcv() consumes a checksum-valid query of a length igmp_heard_query()
takes (8 bytes: v1/v2; 12 or more: v3) and a v1/v2 report received as
link-layer multicast or broadcast; everything else, a bad checksum included,
is freed with NOT_SPECIFIED. Left out: memberships by IP_ADD_MEMBERSHIP or
`ip address add ... autojoin`, source filters (INCLUDE/EXCLUDE), answering
queries with reports (all-hosts is never reported), querier and version
state, mc_hash. net.ipv4.igmp_link_local_mcast_reports (whether groups in
224.0.0.0/24 are reported, igmp_group_added()) is kept; as the mock sends no
reports of its own, 0 changes nothing in it (on the lab it silences the IGMPv3
reports of 224.0.0.106 a bridge sends when it opens with snooping on).
"""
from __future__ import annotations

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.core.dev import dev_mc_add, dev_mc_del
from harness.mockkernel.core.skbuff import PACKET_BROADCAST, PACKET_MULTICAST, SkBuff, kfree_skb
from harness.mockkernel.core.sysctl import CtlTable, proc_dou8vec_minmax
from harness.mockkernel.wire import WireError, igmp
from harness.mockkernel.wire.igmp import (IGMP_HLEN, IGMP_HOST_MEMBERSHIP_QUERY, IGMP_HOST_MEMBERSHIP_REPORT,
                                          IGMPV2_HOST_MEMBERSHIP_REPORT, IGMPV3_QUERY_LEN)

IGMP_ALL_HOSTS = 0xE0000001
# net/ipv4/sysctl_net_ipv4.c ipv4_net_table
IGMP_SYSCTLS = {"net.ipv4.igmp_link_local_mcast_reports": CtlTable(1, proc_dou8vec_minmax)}


def ip_eth_mc_map(group: int) -> bytes:
    """ip_eth_mc_map(): 01:00:5e and the group's low 23 bits."""
    return bytes((0x01, 0x00, 0x5E, (group >> 16) & 0x7F, (group >> 8) & 0xFF, group & 0xFF))


def ip_mc_inc_group(dev, group: int) -> None:
    """ip_mc_inc_group() -> igmp_group_added() -> ip_mc_filter_add(): the group's
    link address joins the device's multicast list (dev_mc_add())."""
    dev_mc_add(dev, ip_eth_mc_map(group))


def ip_mc_dec_group(dev, group: int) -> None:
    dev_mc_del(dev, ip_eth_mc_map(group))


def ip_mc_up(dev) -> None:
    """ip_mc_up(): all-hosts joined as the device comes up."""
    ip_mc_inc_group(dev, IGMP_ALL_HOSTS)


def ip_mc_down(dev) -> None:
    """ip_mc_down() -> igmp_group_dropped(): the filter is left as it goes down."""
    ip_mc_dec_group(dev, IGMP_ALL_HOSTS)


def ip_check_mc_rcu(dev, mc_addr: int, src_addr: int, proto: int) -> bool:
    """Whether `dev` has joined `mc_addr` for traffic from `src_addr` in
    protocol `proto`: only all-hosts, joined by ip_mc_up() while the device is up."""
    return mc_addr == IGMP_ALL_HOSTS and dev.up


def igmp_rcv(skb: SkBuff) -> None:
    """igmp_rcv(): pskb_may_pull of the header, skb_checksum_simple_validate(),
    then by type; `dropped` packets are kfree_skb()'d, the others consumed."""
    net, buf, data, end = skb.net, skb.buf, skb.data, skb.tail
    try:
        igmp.check_len(buf, data, end)
    except WireError:
        return kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.L4, "igmp_rcv")
    if not igmp.checksum_ok(buf, data, end):
        return kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.L4, "igmp_rcv")
    igmp_type, length = igmp.igmp_type(buf, data), end - data
    net.tracer.hop(skb, Stage.L4, "igmp_rcv", "", f"type {igmp_type:#04x}")
    if igmp_type == IGMP_HOST_MEMBERSHIP_QUERY:
        heard = length == IGMP_HLEN or length >= IGMPV3_QUERY_LEN
    elif igmp_type in (IGMP_HOST_MEMBERSHIP_REPORT, IGMPV2_HOST_MEMBERSHIP_REPORT):
        heard = skb.pkt_type in (PACKET_MULTICAST, PACKET_BROADCAST)
    else:
        heard = False
    if not heard:
        return kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.L4, "igmp_rcv")
    net.tracer.hop(skb, Stage.L4, "igmp_rcv", "CONSUMED")
