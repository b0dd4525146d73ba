"""Drop reasons of the real kernel, from the `skb:kfree_skb` tracepoint (bpftrace).

kfree_skb_reason() fires `skb:kfree_skb` with the `SKB_DROP_REASON_*` number and the
caller's address (`location`: after inlining, the function that really dropped).
One bpftrace per process (`KfreeSkbTracer.shared()`, started on first use, shared by
every lab of the process) prints each drop in the namespaces its labs watch: the skb's
netns inode, reason, location, skb->protocol, the IPv4 header its network header
points at, skb->tc_at_ingress, and for netfilter drops the call chain that names the
hook. `KfreeSkbEvent.stage()` turns location (or reason, or hook) into a journey
stage.

A failed bpf_redirect() is freed in net/core/filter.c whichever TC direction ran
the program: skb_do_redirect() when the target ifindex names no device,
__bpf_redirect (__bpf_tx_skb() inlined) past the xmit recursion limit. Neither the
location nor skb->dev (the device whose program ran, in both directions) says
which direction that was; skb->tc_at_ingress does: tcx_set_ingress() sets it in
sch_handle_ingress() and clears it in __dev_queue_xmit() before the egress hook
(net/core/dev.c), and both drops come before anything else touches it. Seen on
the lab: 1 for an ingress program's redirect to no device, 0 for an egress
program's, 0 for an egress program redirecting to its own port, and 0 when an
ingress program's redirect went out of a port whose egress program looped (the
failing redirect is egress's). The bit is in struct sk_buff under
CONFIG_NET_XGRESS (CONFIG_NET_CLS_ACT before 6.6); on a kernel without it those
drops keep stage UNKNOWN.

Each lab watches its DUT namespace (`NetnsDrops`). A drop is reported some time after
it happened, so `NetnsDrops.drops()` first sends a sentinel into the namespace and
waits until the tracer prints its drop: everything dropped before it is then in.
How long that takes depends on how busy the machine is (bpftrace is a process like
any other), so the wait ends on the event; its bound, SENTINEL_TIMEOUT, only stops
a tracer that is stuck. bpftrace reports events its perf buffer had no room for
("Lost N events"): drops are then incomplete, and drops() says so rather than wait.
The sentinel is a frame on the namespace's `lo` for another MAC, dropped OTHERHOST
in ip_rcv_core() before any hook: no netfilter counter, conntrack entry, ICMP error
or SNMP counter sees it (only `lo`'s own rx counters).

Every process's tracer sees every drop on the machine, so what it reports is chosen
in the kernel, by control frames: dropped like the sentinel, with another IP
protocol, the command in the IP ID and the destination 127.x.y.z naming the process
(x.y.z its pid) whose tracer obeys. WATCH puts the namespace the frame was dropped in
into the program's map of watched namespaces (a lab's NetnsDrops sends it before it
returns), UNWATCH takes it out; drops in namespaces no lab of the process watches
cost a map lookup and print nothing, so one lab's load run does not flood the other
processes' tracers. At rate (`NetnsDrops.counting()`, a traffic run) one printf per
drop would overflow the perf buffer within milliseconds: COUNT_START makes the
program count the namespace's drops in BPF maps keyed by reason and location
(netfilter drops by their call chain, which names the hook) instead, COUNT_STOP
ends it. Each control frame prints both maps and then its own line, so the counts
at the moment counting started and stopped come back in order, and the run's drops
are their difference.

On a lab DUT (the agent, drivers/agent.py) the lab's ports share the namespace with
the management interface and whatever else the machine does, so the program also
filters by device (`lab_ifindexes`: the ports and lo): a drop is reported when
skb->dev is one of them, or skb->skb_iif is (a packet received on a port and dropped
on its way out of another device, e.g. at a qdisc of the management interface), or
skb->dev is NULL. lo is the test's too: an application's datagram to the DUT's own
address crosses it (and is dropped there, NO_SOCKET, if nothing listens). Packets
with no device are those no device holds yet: locally generated ones dropped before
routing chose one (NF_OUTPUT, a failed route lookup), attributed to their socket's
namespace, or with no socket (nf_send_reset()'s RST), their route's, as above. On lo and without a device the harness cannot tell the test's
packets from another local process's, so those are kept rather than lose the
test's own (a quiet DUT has little local traffic). Drops on any other device (the
management interface, the DUT's other NICs) are not reported. The netns lab needs
no such filter: its namespace holds only the lab's ports and lo.
"""
from __future__ import annotations

import itertools
import os
import re
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

from harness.drivers.netns import (
    HOST_NETNS_INODES,
    NetnsLab,
    require_root,
    require_tool,
)
from harness.drivers.reaper import reaper
from harness.dropreason import DropReason
from harness.journey import Drop, Stage
from harness.mockkernel.wire import ethernet, ipv4
from harness.target import TargetError

TRACEFS = "/sys/kernel/tracing"
KFREE_SKB_FORMAT = f"{TRACEFS}/events/skb/kfree_skb/format"
STARTUP_TIMEOUT = 30.0
# Reached only by a tracer that is stuck: the sentinel's drop arrives in milliseconds
# on an idle machine and in seconds on one loaded with parallel workers and CPU hogs.
SENTINEL_TIMEOUT = 120.0
# Perf buffer pages per CPU (bpftrace's default is 64): a burst of drops in one lab must
# not overflow the buffer its process's other labs share.
PERF_RB_PAGES = "1024"
LOST_EVENTS = re.compile(r"Lost (\d+) events")

# Per drop: the namespace is the device's, else the socket's if an AF_INET one (2;
# netlink and unix sockets purge messages, not packets), else its route's device's
# (skb_dst(skb)->dev, the low bit of _skb_refdst is SKB_DST_NOREF): nf_send_reset()
# allocates its RST with neither device nor socket and sends it by ip_local_out()
# with the dst of the segment it answers, so an output chain that drops it frees an
# skb only its dst places. Fragments queued for reassembly have none of them
# (skb->dev shares its memory with the rb-tree node, ip_frag_queue() drops the dst):
# they are printed with netns 0 and attributed by their datagram. A netfilter drop carries
# its call chain: the caller of nf_hook_slow names the hook. Each drop is one printf,
# so its lines never interleave with another CPU's. skb->network_header is
# (typeof(skb->network_header))~0U when no header was set, and an IPv4 header is read
# only where the linear data holds 20 bytes of it (skb->tail, an offset from head as
# network_header is): a runt's buffer past its end holds what an earlier packet left
# there, which may be a sentinel or a control frame, and was taken for one. skb->tc_at_ingress is
# printed last where the kernel has it (TC_FORMAT, TC_ARG). A tester namespace frees
# every frame the DUT sends it (it has no address), so its ports' drops are left out
# in the kernel: nobody watches them, and at load rates they would flood the tracer.
PROGRAM = r"""
BEGIN { printf("ready\n"); }

tracepoint:skb:kfree_skb
{
  $skb = (struct sk_buff *)args->skbaddr;
  $netns = (uint32)0;
  if ($skb->dev != 0) {
    $netns = $skb->dev->nd_net.net->ns.inum;
    $name = *(uint32 *)($skb->dev->name);
    $digit = ($name >> 8) & 0xff;
    if (($name & 0xff00ff) == 0x74 && $digit >= 48 && $digit <= 57) {
      $netns = (uint32)1;  /* a tester port, t0..t9: not a DUT's drop (printed by no filter) */
    }
  } else if ($skb->sk != 0 && $skb->sk->__sk_common.skc_family == 2) {
    $netns = $skb->sk->__sk_common.skc_net.net->ns.inum;
  } else if (($skb->_skb_refdst & ~((uint64)1)) != 0) {
    $dst = (struct dst_entry *)($skb->_skb_refdst & ~((uint64)1));
    $netns = $dst->dev->nd_net.net->ns.inum;
  }
  $saddr = (uint32)0; $daddr = (uint32)0; $ipproto = (uint8)0; $id = (uint16)0;
  $ttl = (uint8)0; $tot_len = (uint16)0; $frag_off = (uint16)0;
  if ($skb->network_header != 0xffff && $skb->tail >= $skb->network_header + 20) {
    $iph = $skb->head + $skb->network_header;
    if ((*(uint8 *)$iph >> 4) == 4) {
      $tot_len = *(uint16 *)($iph + 2);
      $id = *(uint16 *)($iph + 4);
      $frag_off = *(uint16 *)($iph + 6);
      $ttl = *(uint8 *)($iph + 8);
      $ipproto = *(uint8 *)($iph + 9);
      $saddr = *(uint32 *)($iph + 12);
      $daddr = *(uint32 *)($iph + 16);
    }
  }
  if ($ipproto == CONTROL_IPPROTO && $saddr == LOOPBACK && $daddr == OWN_ADDR && $netns > 1 && HOST_FILTER) {
    if ($id == CMD_WATCH) { @watched[$netns] = 1; }
    else if ($id == CMD_UNWATCH) { delete(@watched[$netns]); delete(@counting[$netns]); }
    else if ($id == CMD_COUNT_START) { @counting[$netns] = 1; }
    else { delete(@counting[$netns]); }
    print(@counted);
    print(@counted_nf);
    printf("control %u %u\n", $netns, $id);
  } else if ((@watched[$netns] && $netns > 1 && HOST_FILTERDEVICE_FILTER) || ($netns == 0 && ($frag_off & 0xff3f) != 0)) {
    if (@counting[$netns] && !($ipproto == SENTINEL_IPPROTO && $saddr == LOOPBACK && $daddr == LOOPBACK)) {
      if (args->reason == NETFILTER_DROP) {
        @counted_nf[$netns, ksym(args->location), kstack(8)] = count();
      } else {
        @counted[$netns, args->reason, ksym(args->location)TC_ARG] = count();
      }
    } else if (args->reason == NETFILTER_DROP) {
      printf("drop %u %u %s %u %u %u %u %u %u %u %u %uTC_FORMAT stack%s.\n", $netns, args->reason,
             ksym(args->location), args->protocol, $skb->len, $saddr, $daddr, $ipproto, $id,
             $ttl, $tot_len, $frag_offTC_ARG, kstack(8));
    } else {
      printf("drop %u %u %s %u %u %u %u %u %u %u %u %uTC_FORMAT\n", $netns, args->reason,
             ksym(args->location), args->protocol, $skb->len, $saddr, $daddr, $ipproto, $id,
             $ttl, $tot_len, $frag_offTC_ARG);
    }
  }
}
"""

# Where the kernel drops, by the function that called kfree_skb_reason() as compiled
# on 6.x (each seen on this machine's 6.18 unless marked).
LOCATION_STAGES = {
    "ip_rcv_core": Stage.IP_RCV,
    "ip_rcv_finish_core": Stage.ROUTING,     # martians, rp_filter, local source
    "ip_error": Stage.ROUTING,               # no route (forwarding off, unreachable, blackhole)
    "ip_defrag": Stage.IP_DEFRAG,
    "ip_expire": Stage.IP_DEFRAG,
    "inet_frag_rbtree_purge": Stage.IP_DEFRAG,
    "ip_forward": Stage.IP_FORWARD,
    "nf_send_reset": Stage.ROUTING,          # its RST finds no route back: ip_route_me_harder() fails, free_nskb
    "ip_local_deliver_finish": Stage.L4,     # IP_NOPROTO (ip_protocol_deliver_rcu inlined)
    "__udp4_lib_rcv": Stage.L4,
    "icmp_rcv": Stage.L4,
    "ping_rcv": Stage.L4,
    "tcp_v4_rcv": Stage.L4,
    "tcp_v4_do_rcv": Stage.SOCKET,           # a socket's segment it refuses (a listener's stray ACK: TCP_FLAGS)
    "tcp_rcv_state_process": Stage.SOCKET,   # a socket's segment its state refuses (a RST to a listener: TCP_RESET)
    "udp_queue_rcv_one_skb": Stage.SOCKET,
    "veth_xdp_rcv_skb": Stage.XDP,           # native XDP_DROP, as NOT_SPECIFIED
    "do_xdp_generic": Stage.XDP,             # generic XDP_DROP, as NOT_SPECIFIED
    "ip_finish_output2": Stage.NEIGH,        # NEIGH_CREATEFAIL (read in ip_output.c)
    "__neigh_event_send": Stage.NEIGH,
    "neigh_invalidate": Stage.NEIGH,
    "arp_rcv": Stage.NEIGH,                  # an ARP runt, PKT_TOO_SMALL
    "__dev_queue_xmit": Stage.QDISC,
    "__dev_forward_skb2": Stage.NIC_RX,      # into a device that is down (a BPF_F_INGRESS redirect)
    "enqueue_to_backlog": Stage.NIC_RX,      # netif_rx() over netdev_max_backlog, CPU_BACKLOG
    "br_handle_frame": Stage.BRIDGE,         # invalid source, MAC control, port state (net/bridge/br_input.c)
    "br_handle_frame_finish": Stage.BRIDGE,  # learning port; br_forward() inlined: the ingress port
    "br_flood": Stage.BRIDGE,                # NO_TX_TARGET
    "br_dev_xmit": Stage.BRIDGE,
    "br_dev_queue_push_xmit": Stage.BRIDGE,  # longer than the port's MTU
    "br_pass_frame_up": Stage.BRIDGE,
    "__br_multicast_send_query": Stage.BRIDGE,  # an MLD query with no IPv6 source (net/bridge/br_multicast.c)
    "stp_pdu_rcv": Stage.BRIDGE,  # every BPDU br_stp_rcv() took in (net/802/stp.c)
    "br_nf_pre_routing_ipv6": Stage.NF_PREROUTING,  # br_validate_ipv6() failed (net/bridge/br_netfilter_ipv6.c)
    "br_allowed_ingress": Stage.BRIDGE,      # VLAN filtering (unseen on a kernel without it)
    # IPv6 (net/ipv6/)
    "ip6_rcv_core": Stage.IP_RCV,
    "ipv6_parse_hopopts": Stage.IP_RCV,
    "ip6_pkt_discard": Stage.ROUTING,        # no route, unreachable and throw routes (ip6_pkt_drop inlined)
    "ip6_pkt_prohibit": Stage.ROUTING,
    "dst_discard_out": Stage.ROUTING,        # a blackhole route
    "ip6_mc_input": Stage.ROUTING,
    "ip6_forward": Stage.IP_FORWARD,
    "ip6_input_finish": Stage.L4,            # IP_NOPROTO (ip6_protocol_deliver_rcu inlined)
    "tcp_v6_rcv": Stage.L4,
    "tcp_v6_do_rcv": Stage.SOCKET,
    "ip6_parse_tlv": Stage.L4,               # options of hop-by-hop and destination headers
    "ip6_tlvopt_unknown": Stage.L4,          # an unknown option (icmpv6_param_prob_reason inlined)
    "ipv6_destopt_rcv": Stage.L4,
    "ipv6_rthdr_rcv": Stage.L4,
    "icmpv6_rcv": Stage.L4,
    "__udp6_lib_rcv": Stage.L4,
    "udpv6_queue_rcv_one_skb": Stage.SOCKET,
    "ipv6_frag_rcv": Stage.IP_DEFRAG,
    "ip6_frag_queue": Stage.IP_DEFRAG,
    "ip6_frag_expire": Stage.IP_DEFRAG,      # ip6frag_expire_frag_queue() inlined
    "ip6_fragment": Stage.IP_OUTPUT,
    "nf_ct_frag6_gather": Stage.IP_DEFRAG,   # nf_defrag_ipv6: nf_ct_frag6_queue() inlined (DUP_FRAG)
    "nf_ct_frag6_expire": Stage.IP_DEFRAG,   # ip6frag_expire_frag_queue() inlined
    "ip6_finish_output2": Stage.NEIGH,
}

# Where a failed bpf_redirect() is freed, from either TC direction: skb->tc_at_ingress
# says which (module doc).
TC_REDIRECT_LOCATIONS = frozenset({"skb_do_redirect", "__bpf_redirect"})
TC_DIRECTION_STAGES = {1: Stage.TC_INGRESS, 0: Stage.TC_EGRESS}
TC_AT_INGRESS_UNKNOWN = 2

# Reasons that name their stage whichever function dropped: tc ingress drops in
# __netif_receive_skb_core() and tc egress in __dev_queue_xmit() (inlined helpers).
REASON_STAGES = {
    DropReason.SOCKET_RCVBUFF: Stage.SOCKET,
    DropReason.TC_INGRESS: Stage.TC_INGRESS,
    DropReason.TC_EGRESS: Stage.TC_EGRESS,
    DropReason.XDP: Stage.XDP,
    DropReason.QDISC_DROP: Stage.QDISC,
    DropReason.CPU_BACKLOG: Stage.NAPI,
}

# The function that ran the netfilter hook (the caller of nf_hook_slow), by hook.
NF_HOOK_STAGES = {
    "ip_rcv": Stage.NF_PREROUTING,
    "ip_sublist_rcv": Stage.NF_PREROUTING,
    "ip_local_deliver": Stage.NF_INPUT,
    "ip_forward": Stage.NF_FORWARD,
    "__ip_local_out": Stage.NF_OUTPUT,
    "ip_output": Stage.NF_POSTROUTING,
    "ip_mc_output": Stage.NF_POSTROUTING,
    "__netif_receive_skb_core": Stage.NF_INGRESS,  # netdev ingress: nf_hook_ingress() inlined
    "__dev_queue_xmit": Stage.NF_EGRESS,  # netdev egress: nf_hook_egress() inlined
    # the bridge's own hooks (net/bridge: NF_HOOK inlined into its callers; __br_forward()
    # runs NF_BR_FORWARD, and NF_BR_LOCAL_OUT for the bridge's own frames, told apart below)
    "br_handle_frame": Stage.NF_PREROUTING,
    "br_pass_frame_up": Stage.NF_INPUT,
    "__br_forward": Stage.NF_FORWARD,
    "br_forward_finish": Stage.NF_POSTROUTING,
    # the IP hooks br_netfilter runs for bridged frames (br_netfilter_hooks.c, br_netfilter_ipv6.c)
    "br_nf_pre_routing": Stage.NF_PREROUTING,
    "br_nf_pre_routing_ipv6": Stage.NF_PREROUTING,
    "br_nf_forward_ip": Stage.NF_FORWARD,
    "br_nf_post_routing": Stage.NF_POSTROUTING,
    "ipv6_rcv": Stage.NF_PREROUTING,
    "ip6_input": Stage.NF_INPUT,
    "ip6_forward": Stage.NF_FORWARD,
    "__ip6_local_out": Stage.NF_OUTPUT,
    "ip6_output": Stage.NF_POSTROUTING,
}

IP_PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp"}
ETHERTYPES = {0x0800: "ipv4", 0x0806: "arp", 0x86DD: "ipv6"}
IP_MF = 0x2000
IP_OFFSET = 0x1FFF

SENTINEL_ADDR = "127.0.0.1"
SENTINEL_IPPROTO = 253  # RFC 3692 experimentation
CONTROL_IPPROTO = 254  # the other RFC 3692 number: a control frame, its IP ID the command
WATCH, UNWATCH, COUNT_START, COUNT_STOP = 1, 2, 3, 4
CONTROL_NET = 0x7F000000  # a control frame goes to 127.x.y.z, x.y.z the pid whose tracer it is for
# bpftrace's map printout: `@counted[netns, reason, location(, tc_at_ingress)]: N`, and
# `@counted_nf[netns, location, ` followed by the stack, one frame a line, and `]: N`
COUNTED = re.compile(r"@counted\[(\d+), (\d+), ([^,\]]+)(?:, (\d+))?\]: (\d+)$")
COUNTED_NF = re.compile(r"@counted_nf\[(\d+), ([^,\]]+), $")
COUNTED_NF_END = re.compile(r"\]: (\d+)$")
CONTROL = re.compile(r"control (\d+) (\d+)$")
SENTINEL_OTHERHOST_MAC = bytes.fromhex("020000000000")  # lo's address is 00:00:00:00:00:00
EXPIRED_DATAGRAMS_KEPT = 1024


def drop_reasons(format_text: str) -> dict[int, DropReason]:
    """SKB_DROP_REASON_* numbers to DropReason, by name, from the tracepoint's
    `__print_symbolic` list: the numbers change between kernels, the format file
    is this kernel's."""
    symbolic = format_text.partition("__print_symbolic(REC->reason,")[2]
    names = {int(number): name for number, name in re.findall(r'\{\s*(\d+),\s*"(\w+)"\s*\}', symbolic)}
    if not names:
        raise TargetError("cannot read the drop reasons from the skb:kfree_skb format "
                          f"({KFREE_SKB_FORMAT}): no __print_symbolic(REC->reason, ...) list")
    unknown = sorted(set(names.values()) - set(DropReason.__members__))
    if unknown:
        raise TargetError(f"this kernel has drop reasons harness/dropreason.py lacks ({', '.join(unknown)}): "
                          "regenerate it with `python scripts/gen_dropreason.py`")
    return {number: DropReason[name] for number, name in names.items()}


def function_name(symbol: str) -> str:
    """`__netif_receive_skb_core.constprop.0` -> `__netif_receive_skb_core`: the
    compiler's clone suffixes are not part of the kernel's name."""
    return symbol.partition(".")[0]


class KfreeSkbEvent(NamedTuple):
    """One drop as the tracer printed it: addresses dotted, numbers in host order,
    `stack` the call chain (innermost first) for netfilter drops."""

    netns: int
    reason: int
    location: str
    protocol: int
    len: int
    saddr: str
    daddr: str
    ipproto: int
    id: int
    ttl: int
    tot_len: int
    frag_off: int
    stack: tuple[str, ...] = ()
    tc_at_ingress: int = TC_AT_INGRESS_UNKNOWN  # skb->tc_at_ingress: 1, 0, or unknown

    @classmethod
    def parse(cls, line: str, stack: tuple[str, ...] = ()) -> KfreeSkbEvent:
        """A `drop` line; without the tc_at_ingress field (a kernel without the bit)
        that stays unknown."""
        (netns, reason, location, protocol, length, saddr, daddr, ipproto, ident, ttl, tot_len,
         frag_off, *rest) = line.split()[1:]
        tc_at_ingress = int(rest[0]) if rest and rest[0].isdigit() else TC_AT_INGRESS_UNKNOWN
        return cls(int(netns), int(reason), function_name(location), int(protocol), int(length),
                   _ipv4(saddr), _ipv4(daddr), int(ipproto), socket.ntohs(int(ident)), int(ttl),
                   socket.ntohs(int(tot_len)), socket.ntohs(int(frag_off)), stack, tc_at_ingress)

    @property
    def datagram(self) -> tuple[str, str, int, int]:
        """What identifies the datagram a fragment belongs to (RFC 791)."""
        return self.saddr, self.daddr, self.ipproto, self.id

    @property
    def is_packet(self) -> bool:
        """False for an skb that never held a packet (napi_get_frags_check() frees
        an empty one whenever NAPI is added, e.g. when XDP is attached to a veth)."""
        return bool(self.len or self.protocol)

    def stage(self, reason: DropReason) -> Stage:
        if reason == DropReason.NETFILTER_DROP:
            caller = self._nf_hook_caller()
            if caller == "__br_forward" and "br_dev_xmit" in self.stack:
                return Stage.NF_OUTPUT
            return NF_HOOK_STAGES.get(caller, Stage.NF)
        if self.location in TC_REDIRECT_LOCATIONS:
            return TC_DIRECTION_STAGES.get(self.tc_at_ingress, Stage.UNKNOWN)
        return REASON_STAGES.get(reason) or LOCATION_STAGES.get(self.location, Stage.UNKNOWN)

    def _nf_hook_caller(self) -> str:
        """The first function past nf_hook_slow (and nf_hook_slow_list) in the chain."""
        past_hook = itertools.dropwhile(lambda f: f != "nf_hook_slow", self.stack)
        return next((f for f in past_hook if not f.startswith("nf_hook_slow")), "")

    def summary(self) -> str:
        if not self.tot_len:
            return ETHERTYPES.get(self.protocol, f"ethertype {self.protocol:#06x}")
        proto = IP_PROTOCOLS.get(self.ipproto, f"proto {self.ipproto}")
        text = f"{self.saddr} > {self.daddr} {proto} id={self.id} ttl={self.ttl} len={self.tot_len}"
        if self.frag_off & (IP_MF | IP_OFFSET):
            text += f" frag={(self.frag_off & IP_OFFSET) * 8}{'+' if self.frag_off & IP_MF else ''}"
        return text


def _as_loaded(address: str) -> str:
    """An IPv4 address as the program loads it from the header: a host-order u32 of
    network-order bytes."""
    return str(struct.unpack("=I", socket.inet_aton(address))[0])


def _device_filter(lab_ifindexes: frozenset[int] | None) -> str:
    """The program's condition that a drop is on one of the lab's devices, by skb->dev
    or skb->skb_iif, or on no device (module doc)."""
    if lab_ifindexes is None:
        return ""
    on_a_port = " || ".join(f"$skb->dev->ifindex == {i} || $skb->skb_iif == {i}" for i in sorted(lab_ifindexes))
    return f" && ($skb->dev == 0 || {on_a_port})"


def _ipv4(loaded: str) -> str:
    """The address as bpftrace loaded it: network-order bytes read as a host u32."""
    return socket.inet_ntoa(struct.pack("=I", int(loaded)))


def _counted_event(netns: str, reason: str | int, location: str, stack: tuple[str, ...],
                   tc_at_ingress: str | None) -> KfreeSkbEvent:
    """A map entry of counted drops as the event it counts (no packet headers)."""
    tc = int(tc_at_ingress) if tc_at_ingress is not None else TC_AT_INGRESS_UNKNOWN
    return KfreeSkbEvent(int(netns), int(reason), function_name(location.strip()), 0, 0, "", "", 0, 0, 0, 0, 0,
                         stack, tc)


def _counted_stack(lines) -> tuple[tuple[str, ...], int]:
    """The stack of a `@counted_nf[` entry, one frame a line up to `]: N`, and N."""
    stack = []
    for line in lines:
        if end := COUNTED_NF_END.match(line.strip()):
            return tuple(stack), int(end[1])
        if line.strip():
            stack.append(function_name(line.strip().partition("+")[0]))
    raise ValueError("a @counted_nf entry without its end")


def mount_tracefs() -> None:
    """bpftrace finds tracepoints through tracefs, which a fresh machine may not mount."""
    if os.path.exists(KFREE_SKB_FORMAT):
        return
    result = subprocess.run([require_tool("mount"), "-t", "tracefs", "nodev", TRACEFS],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0 or not os.path.exists(KFREE_SKB_FORMAT):
        raise TargetError(f"tracefs is not mounted at {TRACEFS} and mounting it failed "
                          f"({result.stderr.strip() or 'no skb:kfree_skb tracepoint'}): "
                          f"`mount -t tracefs nodev {TRACEFS}`")


def has_tc_at_ingress(bpftrace: str) -> bool:
    """Whether this kernel's struct sk_buff has the tc_at_ingress bit (its BTF, as
    bpftrace reads it)."""
    listing = subprocess.run([bpftrace, "-lv", "struct sk_buff"], capture_output=True, text=True, check=False)
    return re.search(r"\btc_at_ingress\b", listing.stdout) is not None


class KfreeSkbTracer:
    """The process's bpftrace on `skb:kfree_skb`, dispatching drops to the watched
    namespaces. `startup_seconds` is how long bpftrace took to attach."""

    _shared: dict[tuple[frozenset[int], frozenset[int] | None], KfreeSkbTracer] = {}
    _shared_lock = threading.Lock()

    @classmethod
    def shared(cls, host_inodes: frozenset[int] = HOST_NETNS_INODES,
               lab_ifindexes: frozenset[int] | None = None) -> KfreeSkbTracer:
        """The process's tracer that never reports namespaces `host_inodes` and, unless
        `lab_ifindexes` is None, reports only drops on those devices (module doc)."""
        key = (host_inodes, lab_ifindexes)
        with cls._shared_lock:
            if key not in cls._shared or cls._shared[key].exited:
                cls._shared[key] = cls(host_inodes, lab_ifindexes)
            return cls._shared[key]

    def __init__(self, host_inodes: frozenset[int] = HOST_NETNS_INODES,
                 lab_ifindexes: frozenset[int] | None = None) -> None:
        require_root("tracing drops with bpftrace")
        bpftrace = require_tool("bpftrace")
        mount_tracefs()
        with open(KFREE_SKB_FORMAT) as f:
            self.reasons = drop_reasons(f.read())
        numbers = {name: number for number, name in self.reasons.items()}
        self.control_addr = socket.inet_ntoa((CONTROL_NET | os.getpid()).to_bytes(4, "big"))
        self._netfilter_drop = numbers[DropReason.NETFILTER_DROP]
        tc_bit = has_tc_at_ingress(bpftrace)
        program = PROGRAM.replace("HOST_FILTER", " && ".join(
            [f"$netns != {inode}" for inode in sorted(host_inodes)] or ["1"])).replace(
            "DEVICE_FILTER", _device_filter(lab_ifindexes)).replace(
            "NETFILTER_DROP", str(numbers[DropReason.NETFILTER_DROP])).replace(
            "TC_FORMAT", " %u" if tc_bit else "").replace("TC_ARG", ", $skb->tc_at_ingress" if tc_bit else "").replace(
            "LOOPBACK", _as_loaded(SENTINEL_ADDR)).replace("OWN_ADDR", _as_loaded(self.control_addr)).replace(
            "SENTINEL_IPPROTO", str(SENTINEL_IPPROTO)).replace("CONTROL_IPPROTO", str(CONTROL_IPPROTO))
        for name, command in (("CMD_WATCH", WATCH), ("CMD_UNWATCH", UNWATCH), ("CMD_COUNT_START", COUNT_START)):
            program = program.replace(name, str(socket.htons(command)))  # $id is as loaded: network order
        self._watched: dict[int, NetnsDrops] = {}
        self._expired_datagrams: dict[tuple[str, str, int, int], int] = {}
        self.lock = threading.Condition()
        self._ready = threading.Event()
        self.exited = False
        self._unreadable = ""
        self.lost_events = 0
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 -- as long as bpftrace runs
        started = time.monotonic()
        # -p: bpftrace exits when this process does, even one killed by SIGKILL
        self._process = subprocess.Popen(
            [bpftrace, "-B", "none", "-p", str(os.getpid()), "-e", program],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            env={**os.environ, "BPFTRACE_PERF_RB_PAGES": PERF_RB_PAGES})
        reaper().process(self._process.pid)  # killed the moment we die, not at its next look
        threading.Thread(target=self._read, name="kfree_skb tracer", daemon=True).start()
        # BEGIN runs once every probe is attached
        if not self._ready.wait(STARTUP_TIMEOUT) or self.exited:
            self._process.kill()
            raise TargetError(f"bpftrace on skb:kfree_skb did not start: {self.failure()}")
        self.startup_seconds = time.monotonic() - started

    def _read(self) -> None:
        lines = iter(self._process.stdout)
        counted: dict[KfreeSkbEvent, int] = {}  # the maps printed before the next control line
        try:
            for line in lines:
                if line.startswith("drop "):
                    stack = ()
                    if line.endswith(" stack\n"):
                        stack = tuple(function_name(frame.strip().partition("+")[0]) for frame in
                                      itertools.takewhile(lambda frame: frame != ".\n", lines)
                                      if frame.strip())
                    self._dispatch(KfreeSkbEvent.parse(line, stack))
                elif match := COUNTED.match(line):
                    netns, reason, location, tc_at_ingress, packets = match.groups()
                    counted[_counted_event(netns, reason, location, (), tc_at_ingress)] = int(packets)
                elif match := COUNTED_NF.match(line):
                    stack, packets = _counted_stack(lines)
                    reason = self._netfilter_drop
                    counted[_counted_event(match[1], reason, match[2], stack, None)] = packets
                elif match := CONTROL.match(line):
                    self._dispatch_counts(int(match[1]), socket.ntohs(int(match[2])), counted)
                    counted = {}
                elif line == "ready\n":
                    self._ready.set()
                elif lost := LOST_EVENTS.match(line):
                    with self.lock:
                        self.lost_events += int(lost.group(1))
                        self.lock.notify_all()
        except ValueError as exc:  # a line this reader does not understand: failure() says so
            self._unreadable = f"{exc} in {line!r}"
            self._process.kill()
        finally:
            self._process.wait()  # its output ended: it exited, or does now; reaped, not left a zombie
            with self.lock:
                self.exited = True
                self.lock.notify_all()
            self._ready.set()

    def _dispatch(self, event: KfreeSkbEvent) -> None:
        if not event.is_packet:
            return
        with self.lock:
            if event.netns == 0:
                # a fragment purged from its queue: the queue's head, dropped just before
                # by ip_expire() with its device restored, names the namespace
                event = event._replace(netns=self._expired_datagrams.get(event.datagram, 0))
            elif event.location == "ip_expire":
                self._expired_datagrams[event.datagram] = event.netns
                if len(self._expired_datagrams) > EXPIRED_DATAGRAMS_KEPT:
                    del self._expired_datagrams[next(iter(self._expired_datagrams))]
            watcher = self._watched.get(event.netns)
            if watcher is not None:
                watcher.record(event)
                self.lock.notify_all()

    def _dispatch_counts(self, netns: int, ident: int, counted: dict[KfreeSkbEvent, int]) -> None:
        with self.lock:
            watcher = self._watched.get(netns)
            if watcher is not None:
                watcher.record_control(ident, {event: packets for event, packets in counted.items()
                                              if event.netns == netns})
                self.lock.notify_all()

    def failure(self) -> str:
        """What went wrong with bpftrace, for an error message."""
        self._stderr.seek(0)
        said = "\n".join(line for line in self._stderr.read().splitlines()
                         if "RLIMIT_MEMLOCK" not in line).strip()  # harmless: BPF memory is memcg-accounted
        status = self._process.poll()
        text = f"bpftrace exited with status {status}" if status is not None else "bpftrace is running"
        if self._unreadable:
            text += f"; its output could not be read: {self._unreadable}"
        return text + (f": {said}" if said else "")

    def watch(self, lab: NetnsLab) -> NetnsDrops:
        """Start recording the drops in `lab`'s DUT namespace: from when this returns,
        the program reports them (it ignores namespaces no lab of this process watches)."""
        watcher = NetnsDrops(self, lab)
        with self.lock:
            self._watched[lab.dut_inode] = watcher
        try:
            watcher.control(WATCH)
        except TargetError:
            self.unwatch(watcher)
            raise
        return watcher

    def unwatch(self, watcher: NetnsDrops) -> None:
        with self.lock:
            if self._watched.get(watcher.netns) is watcher:
                del self._watched[watcher.netns]


class NetnsDrops:
    """The drops of one namespace since it was watched (or last cleared)."""

    def __init__(self, tracer: KfreeSkbTracer, lab: NetnsLab):
        self.tracer = tracer
        self.netns = lab.dut_inode
        self._events: list[KfreeSkbEvent] = []
        self._sentinel_ids = itertools.cycle(range(1, 0x10000))  # IP IDs, 0 = none seen
        self._sentinel_seen = 0
        self._lost_before = tracer.lost_events  # the tracer's losses when this list started
        self._lo = lab.socket(lab.dut, socket.AF_PACKET, socket.SOCK_RAW)
        self._lo.bind(("lo", 0))
        self._control_reply: tuple[int, dict[KfreeSkbEvent, int]] = (0, {})
        self._control_replies = 0

    @contextmanager
    def counting(self) -> Iterator[dict[tuple[DropReason, Stage, str], int]]:
        """Count the namespace's drops in the kernel while the block runs, none of them
        reported one by one (module doc). The dict yielded is filled on leaving the
        block: packets by (reason, stage, location)."""
        counts: dict[tuple[DropReason, Stage, str], int] = {}
        before = self.control(COUNT_START)
        try:
            yield counts
        finally:
            after = self.control(COUNT_STOP)
        for event, packets in after.items():
            dropped = packets - before.get(event, 0)
            reason = self.tracer.reasons.get(event.reason)
            if dropped and reason is not None:
                key = (reason, event.stage(reason), event.location)
                counts[key] = counts.get(key, 0) + dropped

    def control(self, command: int) -> dict[KfreeSkbEvent, int]:
        """Send control frame `command` to this process's tracer and wait until it has
        printed it: its counted drops then."""
        with self.tracer.lock:
            replies, lost_before = self._control_replies, self.tracer.lost_events
        started = time.monotonic()
        self._send_and_wait(self._control_frame(command), "the drop tracer's control frame", "the drop tracer",
                            lambda: self._control_replies != replies or self.tracer.lost_events != lost_before)
        with self.tracer.lock:
            answered, (replied, counted) = self._control_replies != replies, self._control_reply
        if not answered or replied != command:
            raise TargetError(f"the drop tracer did not answer control frame {command} within "
                              f"{time.monotonic() - started:.1f} s: {self.tracer.failure()}")
        return counted

    def record_control(self, command: int, counted: dict[KfreeSkbEvent, int]) -> None:
        """A control frame's answer; called with the tracer's lock held."""
        self._control_reply = (command, counted)
        self._control_replies += 1

    def record(self, event: KfreeSkbEvent) -> None:
        """Called by the tracer with its lock held."""
        if self._is_sentinel(event):
            self._sentinel_seen = event.id
        else:
            self._events.append(event)

    def drops(self) -> list[Drop]:
        """Every drop so far, complete up to this call."""
        self.sync()
        with self.tracer.lock:
            events = list(self._events)
        drops = []
        for event in events:
            reason = self.tracer.reasons.get(event.reason)
            if reason is None:
                raise TargetError(f"the kernel dropped a packet with reason {event.reason} at {event.location}, "
                                  f"a number its skb:kfree_skb format does not list ({KFREE_SKB_FORMAT})")
            drops.append(Drop(reason, event.stage(reason), event.location, event.summary()))
        return drops

    def clear(self) -> None:
        """Forget every drop up to now."""
        self.sync()
        with self.tracer.lock:
            self._events.clear()
            self._lost_before = self.tracer.lost_events

    def sync(self) -> None:
        """Drop a sentinel and wait until the tracer reports it (or fail saying why)."""
        ident = next(self._sentinel_ids)
        started = time.monotonic()
        self._send_and_wait(self._sentinel_frame(ident), "the drop sentinel", "drops()",
                            lambda: self._sentinel_seen == ident or self.tracer.lost_events != self._lost_before)
        with self.tracer.lock:
            lost = self.tracer.lost_events - self._lost_before
        if lost:
            raise TargetError(f"the drop tracer lost {lost} events (its perf buffer of {PERF_RB_PAGES} "
                              "pages per CPU overflowed), so drops cannot be complete")
        if self._sentinel_seen != ident:
            raise TargetError(f"the drop tracer did not report the sentinel drop within "
                              f"{time.monotonic() - started:.1f} s, so drops cannot be complete: "
                              f"{self.tracer.failure()}")

    def _send_and_wait(self, frame: bytes, what: str, needs: str, answered) -> None:
        """Drop `frame` on the DUT's lo and wait until `answered()` holds, the tracer
        exited or SENTINEL_TIMEOUT passed (the callers say which it was)."""
        try:
            self._lo.send(frame)
        except OSError as exc:
            raise TargetError(f"cannot send {what} on lo of the DUT ({exc.strerror}): "
                              f"{needs} needs the DUT's lo up") from exc
        with self.tracer.lock:
            self.tracer.lock.wait_for(lambda: answered() or self.tracer.exited, SENTINEL_TIMEOUT)

    def close(self) -> None:
        self.tracer.unwatch(self)
        self._lo.send(self._control_frame(UNWATCH))  # unanswered: a namespace still in the map is ignored here
        self._lo.close()

    def _is_sentinel(self, event: KfreeSkbEvent) -> bool:
        return (event.ipproto == SENTINEL_IPPROTO and event.saddr == SENTINEL_ADDR
                and event.daddr == SENTINEL_ADDR)

    def _control_frame(self, command: int) -> bytes:
        return self._sentinel_frame(command, CONTROL_IPPROTO, self.tracer.control_addr)

    @staticmethod
    def _sentinel_frame(ident: int, ipproto: int = SENTINEL_IPPROTO, daddr: str = SENTINEL_ADDR) -> bytes:
        addr = int.from_bytes(socket.inet_aton(SENTINEL_ADDR), "big")
        to = int.from_bytes(socket.inet_aton(daddr), "big")
        ethhdr = ethernet.HEADER.pack(SENTINEL_OTHERHOST_MAC, bytes(ethernet.ETH_ALEN), ethernet.ETH_P_IP)
        # no checksum: ip_rcv_core() drops an OTHERHOST packet before it looks
        return ethhdr + ipv4.HEADER.pack(0x45, 0, ipv4.IPV4_MIN_HLEN, ident, 0, 64, ipproto, 0, addr, to)
