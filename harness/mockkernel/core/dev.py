"""The device layer: receive dispatch and transmit (net/core/dev.c, net/ethernet/eth.c).

net_rx_action() runs NAPI polls within netdev_budget (native XDP runs in the
driver's poll, nic.py); each skb goes through eth_type_trans() and
__netif_receive_skb_core(): generic XDP (do_xdp_generic()), an 802.1Q/802.1ad tag
out of the frame (skb_vlan_untag()), TC ingress (the clsact qdisc attached to the
device, sched/sch_ingress.py), the netdev ingress hook (netfilter/core.py), the
rx_handler, the tag no VLAN device took dropped (check_vlan_id), then the handler
its protocol registered (dev_add_pack(): ip_rcv, arp_rcv). dev_queue_xmit() runs TC egress, then hands the skb to the
device's qdisc (sched/sch_generic.py; veth ports have noqueue), loopback loops the packet back into
the receive path (netif_rx). dev_forward_skb() is a veth-style hand-over into
another device's receive path (bpf_redirect with BPF_F_INGRESS).
netif_rx() queues the skb on the CPU's backlog (enqueue_to_backlog(): over
netdev_max_backlog it is dropped CPU_BACKLOG), and net_rx_action() polls the
backlog as one more NAPI (process_backlog(), weight dev_weight). From process
context (a socket's send through lo) the softirq runs before the sender goes on,
as netif_rx()'s local_bh_enable() runs it.
The softirq runs on the kernel's `this_cpu` (0; the line-rate model moves it):
that CPU's softnet_data counts every skb handed to __netif_receive_skb_core()
(`processed`).
With `ethtool -K gro on` a poll's skbs go through GRO (core/gro.py) first.
Left out: taps, RPS and its flow limit (netif_rx() queues on this CPU), TC
on lo (the mock's loopback frames carry no link-layer header).
"""
from __future__ import annotations

import errno
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from harness.dropreason import DropReason
from harness.journey import Hop, Stage
from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.core.gro import napi_gro_flush, napi_gro_receive
from harness.mockkernel.core.gso import netif_needs_gso, skb_gso_segment
from harness.mockkernel.core.skbuff import (PACKET_BROADCAST, PACKET_HOST, PACKET_MULTICAST,
                                            PACKET_OTHERHOST, SkBuff, __vlan_hwaccel_clear_tag, kfree_skb,
                                            skb_vlan_untag, vlan_insert_tag)
from harness.mockkernel.core.xdp import VERDICT_NAMES, XDP_PASS, XDP_REDIRECT, XDP_TX
from harness.mockkernel.netfilter.core import nf_hook_egress, nf_hook_ingress
from harness.mockkernel.nic import NAPI_POLL_WEIGHT
from harness.mockkernel.wire import FrameSummary, ethernet
from harness.mockkernel.wire.ethernet import (BROADCAST, ETH_HLEN, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6,
                                              VLAN_VID_MASK)

VLAN_ETHERTYPES = frozenset((ETH_P_8021Q, ETH_P_8021AD))  # eth_type_vlan()


@dataclass
class SoftnetData:
    """A CPU's struct softnet_data counters, the columns /proc/net/softnet_stat
    prints (net/core/net-procfs.c softnet_seq_show()): skbs received, dropped at
    the backlog (netdev_max_backlog), net_rx_action() rounds cut short by
    netdev_budget or netdev_budget_usecs, RPS IPIs received, flow limit drops.
    The receive path counts `processed` on the kernel's this_cpu; the line-rate
    model (mockkernel/linerate/) the rest. `input_pkt_queue` is the backlog that
    netif_rx() fills and process_backlog() drains; `in_net_rx_action` says the
    softirq is running on the CPU (sd->in_net_rx_action); `input_queue_tail`
    counts the skbs it ever queued (RPS's rps_input_queue_tail_incr()), which the
    line-rate model reads to know which flows pass the backlog."""

    processed: int = 0
    dropped: int = 0
    time_squeeze: int = 0
    received_rps: int = 0
    flow_limit_count: int = 0
    input_pkt_queue: deque = field(default_factory=deque)
    input_queue_tail: int = 0
    in_net_rx_action: bool = False


ptype_base: dict = {}  # EtherType: the receive function dev_add_pack() registered


def net_rx_action(net) -> None:
    """Softirq rounds until every RX ring and the CPU's backlog are empty. Within
    a round NICs with work are polled in turn, up to NAPI_POLL_WEIGHT each, and
    the backlog up to dev_weight (process_backlog()); a NAPI that used its whole
    weight goes back on the poll list, until the round's netdev_budget is spent.
    The backlog joins the poll list when a poll queued to it (napi_schedule_rps()
    from enqueue_to_backlog(), ahead of the NAPI that goes back on the list)."""
    sysctls = net.sysctl.values
    budget_per_round = sysctls["net.core.netdev_budget"]
    dev_weight = sysctls["net.core.dev_weight"]
    weight = min(NAPI_POLL_WEIGHT, dev_weight)
    sd = net.softnet[net.this_cpu]
    backlog = sd.input_pkt_queue
    sd.in_net_rx_action = True
    try:
        softirq_round = 0
        while backlog or any(nic.rx_ring for nic in net.nics.values()):
            softirq_round += 1
            budget = budget_per_round
            poll_list: list = [nic for nic in net.nics.values() if nic.rx_ring]
            if backlog:
                poll_list.append(backlog)
            while poll_list and budget > 0:
                napi = poll_list.pop(0)
                if napi is backlog:
                    budget -= process_backlog(net, backlog, min(dev_weight, budget))
                    if backlog:
                        poll_list.append(backlog)
                    continue
                budget -= _napi_poll(net, napi, min(weight, budget), softirq_round)
                if backlog and backlog not in poll_list:
                    poll_list.append(backlog)
                if napi.rx_ring:
                    poll_list.append(napi)
    finally:
        sd.in_net_rx_action = False


@contextmanager
def local_bh_disabled(net) -> Iterator[None]:
    """local_bh_disable() ... local_bh_enable(): what netif_rx() queues meanwhile
    waits for the softirq, which local_bh_enable() runs (in the softirq already,
    it waits for the running net_rx_action() to reach it)."""
    sd = net.softnet[net.this_cpu]
    if sd.in_net_rx_action:
        yield
        return
    sd.in_net_rx_action = True
    try:
        yield
    finally:
        sd.in_net_rx_action = False
    if sd.input_pkt_queue:
        net_rx_action(net)


def process_backlog(net, backlog: deque, quota: int) -> int:
    """process_backlog(): the backlog NAPI's poll, up to `quota` skbs in the order
    netif_rx() queued them, each into __netif_receive_skb_core()."""
    sd = net.softnet[net.this_cpu]
    work = min(quota, len(backlog))
    sd.processed += work
    for _ in range(work):
        netif_receive_skb(backlog.popleft())
    return work


def _napi_poll(net, nic, quota: int, softirq_round: int) -> int:
    rx = Hop(Stage.NIC_RX, nic.dev.name, "DMA", f"rx ring of {nic.dev.rx_ring}")
    napi = Hop(Stage.NAPI, f"{nic.dev.name} poll", "", f"softirq round {softirq_round}")
    start = net.tracer.start
    before = len(nic.rx_ring)
    skbs = nic.napi_poll(net, quota, rx, napi)
    if nic.dev.features["generic-receive-offload"]:
        _napi_gro_poll(net, skbs)
        return before - len(nic.rx_ring)
    net.softnet[net.this_cpu].processed += len(skbs)  # __netif_receive_skb_core() counts each in sd->processed
    for skb, hops in skbs:
        start(skb, FrameSummary(skb.buf, skb.data), hops=hops)
        eth_type_trans(skb)
        netif_receive_skb(skb)
    return before - len(nic.rx_ring)  # frames XDP consumed count against the budget too


def _napi_gro_poll(net, skbs: list) -> None:
    """The poll's skbs through napi_gro_receive(), the held ones flushed at its
    end (napi_complete_done()); sd->processed counts what goes up."""
    sd = net.softnet[net.this_cpu]

    def deliver(skb: SkBuff) -> None:
        sd.processed += 1
        netif_receive_skb(skb)

    gro_list: list = []
    for skb, hops in skbs:
        net.tracer.start(skb, FrameSummary(skb.buf, skb.data), hops=hops)
        eth_type_trans(skb)
        napi_gro_receive(gro_list, skb, deliver)
    napi_gro_flush(gro_list, deliver)


def eth_type_trans(skb: SkBuff) -> None:
    """Classify by destination MAC (pkt_type), read the EtherType, pull the header."""
    buf, data = skb.buf, skb.data
    dst_first, skb.protocol = ethernet.DST_FIRST_ETHERTYPE.unpack_from(buf, data)
    if dst_first & ethernet.MULTICAST_BIT:  # startswith() at data compares the MAC in place, no slice
        skb.pkt_type = PACKET_BROADCAST if buf.startswith(BROADCAST, data) else PACKET_MULTICAST
    elif buf.startswith(skb.dev.mac, data):
        skb.pkt_type = PACKET_HOST
    else:
        skb.pkt_type = PACKET_OTHERHOST
    if skb.protocol < ethernet.ETH_P_802_3_MIN:  # an 802.3 length: LLC follows, or raw 802.3
        skb.protocol = ethernet.ETH_P_802_3 if buf.startswith(ethernet.RAW_802_3, data + ETH_HLEN) \
            else ethernet.ETH_P_802_2
    skb.mac_header = data
    skb.data = skb.network_header = data + ETH_HLEN  # skb_pull_inline()


# rx_handler_result (include/linux/netdevice.h): what an rx_handler did with the skb
RX_HANDLER_CONSUMED, RX_HANDLER_ANOTHER, RX_HANDLER_EXACT, RX_HANDLER_PASS = range(4)


def netif_receive_skb(skb: SkBuff) -> None:
    """__netif_receive_skb_core(): generic XDP, TC ingress, the netdev ingress
    hook, the device's rx_handler (a bridge port's br_handle_frame(), which
    consumes the frame or passes it on), then the handler dev_add_pack()
    registered for the EtherType."""
    dev = skb.dev
    skb.skb_iif = dev.ifindex
    if dev.xdp_generic_prog is not None and not do_xdp_generic(skb):
        return
    if skb.protocol in VLAN_ETHERTYPES and not skb_vlan_untag(skb):
        return
    if dev.clsact is not None and not dev.clsact.sch_handle_ingress(skb):
        return
    if skb.net.nf_hooks.ingress_active and not nf_hook_ingress(skb):
        return
    rx_handler = dev.rx_handler
    if rx_handler is not None and rx_handler(skb) == RX_HANDLER_CONSUMED:
        return
    if skb.vlan_proto and not check_vlan_id(skb):
        return
    try:
        deliver = ptype_base[skb.protocol]
    except KeyError:
        skb.dev.stats.rx_dropped += 1
        return kfree_skb(skb, DropReason.UNHANDLED_PROTO, Stage.SKB, "__netif_receive_skb_core")
    deliver(skb)


def check_vlan_id(skb: SkBuff) -> bool:
    """__netif_receive_skb_core()'s check_vlan_id: a tag still out of band after
    vlan_do_receive() (no VLAN device here: 802.1Q devices are not modelled) and
    the rx_handler is dropped from the skb; a frame of a VLAN other than 0 is
    no longer for this host (PACKET_OTHERHOST: ip_rcv_core() drops it
    OTHERHOST), a priority tag (VLAN 0) is ignored, and a VLAN 0 tag around
    another tag gives way to the inner one. False when that untag freed it."""
    while not skb.vlan_tci & VLAN_VID_MASK and skb.protocol in VLAN_ETHERTYPES:
        __vlan_hwaccel_clear_tag(skb)
        if not skb_vlan_untag(skb):
            return False
    if skb.vlan_tci & VLAN_VID_MASK:
        skb.pkt_type = PACKET_OTHERHOST
    __vlan_hwaccel_clear_tag(skb)
    return True


def do_xdp_generic(skb) -> bool:
    """Run dev->xdp_prog (xdpgeneric; its verdicts are in core/xdp.py) on an skb;
    True if it goes on up the stack (XDP_PASS)."""
    dev, net = skb.dev, skb.net
    frame = bytes(skb.buf[skb.mac_header:skb.tail])
    ctx, verdict, why = dev.xdp_generic_prog.run_xdp(frame, dev.ifindex, "generic")
    net.tracer.hop(skb, Stage.XDP, dev.name, VERDICT_NAMES.get(verdict, f"invalid action {verdict}"), why)
    out = ctx.packet()
    if verdict == XDP_PASS:
        if out != frame:
            _replace_frame(skb, out)
        return True
    if verdict == XDP_TX:
        generic_xdp_tx(skb, dev, out)
    elif verdict == XDP_REDIRECT and ctx.redirect is not None and ctx.redirect.kind == "dev":
        target = next((d for d in net.devices.values() if d.ifindex == ctx.redirect.target), None)
        if target is None or target.name not in net.nics:
            kfree_skb(skb, DropReason.XDP, Stage.XDP, "do_xdp_generic")
        else:
            generic_xdp_tx(skb, target, out)
    elif verdict == XDP_REDIRECT:
        kfree_skb(skb, DropReason.XDP, Stage.XDP, "do_xdp_generic")
    else:
        kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.XDP, "do_xdp_generic")
    return False


def generic_xdp_tx(skb, dev, frame: bytes) -> None:
    """The frame straight to the device's ndo_start_xmit (no qdisc, no TC egress);
    to the line-rate engine when one is attached (`net.xmit_hook`)."""
    net = skb.net
    if net.xmit_hook is not None:
        if frame != skb.buf[skb.mac_header:skb.tail]:
            _replace_frame(skb, frame)
        skb.data = skb.mac_header
        net.xmit_hook(dev, skb)
        return
    nic = net.nics[dev.name]
    journey = skb.journey
    if journey is not None:
        journey.hops.append(nic.tx_hop)
    nic.start_xmit(frame)


def _replace_frame(skb, frame: bytes) -> None:
    """The program moved the head or tail: the skb now holds its frame, and
    the stack classifies it again (netif_receive_generic_xdp's eth_type_trans)."""
    headroom = skb.mac_header
    skb.buf = bytearray(headroom) + frame
    skb.data, skb.tail = headroom, len(skb.buf)
    eth_type_trans(skb)


def netdev_rx_handler_register(dev, rx_handler, rx_handler_data) -> None:
    """netdev_rx_handler_register(): `rx_handler(skb)` gets the device's frames
    first and says what it did (RX_HANDLER_*); a device has one at most (EBUSY)."""
    if dev.rx_handler is not None:
        raise RtnlError(errno.EBUSY)
    dev.rx_handler_data = rx_handler_data
    dev.rx_handler = rx_handler


def netdev_rx_handler_unregister(dev) -> None:
    dev.rx_handler = dev.rx_handler_data = None


def dev_mc_add(dev, addr: bytes) -> None:
    """dev_mc_add() (net/core/dev_addr_lists.c): `addr` on the device's multicast
    list, in the order added (one reference per address here)."""
    if addr not in dev.mc:
        dev.mc.append(addr)


def dev_mc_del(dev, addr: bytes) -> None:
    if addr in dev.mc:
        dev.mc.remove(addr)


def dev_add_pack(ethertype: int, func) -> None:
    """dev_add_pack(): `func(skb)` gets every received skb of `ethertype` (one
    handler per type, no taps). Global, as in the kernel: each boot registers
    the same handlers again."""
    ptype_base[ethertype] = func


def dev_queue_xmit(skb: SkBuff) -> None:
    """__dev_queue_xmit(): the netdev egress hook (nf_hook_egress(), every
    device's, lo's too), TC egress, then the device's qdisc (sched/sch_generic.py):
    noqueue (no enqueue) goes straight to the driver, any other enqueues and runs.
    A device that is down has the noop qdisc (dev_deactivate()): noop_enqueue()
    counts tx_dropped and frees the skb, QDISC_DROP (lab: a TC redirect out of a
    down port). With the line-rate engine attached (`net.xmit_hook`), the engine
    takes the packet after TC egress and queues it as part of a train."""
    net, dev = skb.net, skb.dev
    if net.nf_hooks.egress_active and not nf_hook_egress(skb, dev):
        return
    if dev.is_loopback:
        net.tracer.hop(skb, Stage.NIC_TX, "lo", "LOOPBACK")
        loopback_xmit(skb)
        return
    if dev.clsact is not None and not dev.clsact.sch_handle_egress(skb):
        return
    if not dev.up:
        dev.stats.tx_dropped += 1
        kfree_skb(skb, DropReason.QDISC_DROP, Stage.QDISC, "__dev_queue_xmit")
        return
    if net.xmit_hook is not None and dev.netdev_ops is None:  # the engine models the NICs' queues
        if skb.vlan_proto:
            validate_xmit_vlan(skb)
        net.xmit_hook(dev, skb)
        return
    q = dev.qdisc
    if q.enqueue is not None:
        q.xmit(skb)
        return
    dev_hard_start_xmit(skb, dev)


def dev_hard_start_xmit(skb: SkBuff, dev) -> None:
    """The packet to the driver's ndo_start_xmit (noqueue's, or the qdisc's),
    after validate_xmit_skb() as sch_direct_xmit() and __dev_queue_xmit() run
    it: a GSO skb the device cannot segment itself leaves as its segments.
    A software device (a bridge) has no NIC: its ndo_start_xmit takes the skb."""
    software = dev.netdev_ops
    if software is not None:
        software.ndo_start_xmit(skb)
        return
    nic = skb.net.nics[dev.name]
    if skb.vlan_proto:
        validate_xmit_vlan(skb)
    journey = skb.journey
    if skb.gso_size and netif_needs_gso(dev):
        frames = skb_gso_segment(skb)
        if journey is not None:
            journey.hops.append(Hop(Stage.NIC_TX, "skb_gso_segment", "SEGMENTED",
                                    f"{len(frames)} segments, gso_size={skb.gso_size}"))
            journey.hops.append(nic.tx_hop)
        for frame in frames:
            nic.start_xmit(frame)
        return
    if journey is not None:
        journey.hops.append(nic.tx_hop)
    nic.start_xmit(bytes(skb.buf[skb.data:skb.tail]))


def validate_xmit_vlan(skb: SkBuff) -> None:
    """The tag held out of band goes into the frame on its way to the wire
    (validate_xmit_vlan(), or the NIC's VLAN offload: the frame a peer sees is
    tagged either way)."""
    vlan_insert_tag(skb, skb.vlan_proto, skb.vlan_tci)
    skb.data = skb.mac_header
    __vlan_hwaccel_clear_tag(skb)


def dev_forward_skb(skb: SkBuff) -> None:
    """__dev_forward_skb() + netif_rx(): the frame (from its MAC header) is
    received anew on skb.dev, classified for that device. A device that is down
    counts rx_dropped and frees it (__dev_forward_skb2(), NOT_SPECIFIED)."""
    if not skb.dev.up:
        skb.dev.stats.rx_dropped += 1
        kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.NIC_RX, "__dev_forward_skb2")
        return
    skb.data = skb.mac_header
    skb.dst = None
    eth_type_trans(skb)
    netif_rx(skb)


def netif_rx(skb: SkBuff) -> None:
    """netif_rx() -> enqueue_to_backlog() on this CPU (no RPS): the skb joins
    the CPU's input_pkt_queue while it holds at most netdev_max_backlog skbs
    (`qlen <= max_backlog`: the queue can reach max_backlog + 1); otherwise
    softnet_data's dropped and the device's rx_dropped
    (dev_core_stats_rx_dropped_inc()) count it and it is freed CPU_BACKLOG.
    Outside the softirq the backlog is processed at once (netif_rx()'s
    local_bh_enable() runs net_rx_action())."""
    net = skb.net
    sd = net.softnet[net.this_cpu]
    backlog = sd.input_pkt_queue
    if len(backlog) > net.sysctl.values["net.core.netdev_max_backlog"]:
        sd.dropped += 1
        skb.dev.stats.rx_dropped += 1
        kfree_skb(skb, DropReason.CPU_BACKLOG, Stage.NIC_RX, "enqueue_to_backlog")
        return
    backlog.append(skb)
    sd.input_queue_tail += 1
    if not sd.in_net_rx_action:
        net_rx_action(net)


def eth_header(skb: SkBuff, dst_mac: bytes, src_mac: bytes, ethertype: int) -> None:
    """eth_header() (dev_hard_header): the link-layer header in front, in headroom."""
    data = skb.push(ETH_HLEN)
    ethernet.HEADER.pack_into(skb.buf, data, dst_mac, src_mac, ethertype)  # one store: slicing costs 3x
    skb.mac_header = data


def loopback_xmit(skb: SkBuff) -> None:
    """drivers/net/loopback.c loopback_xmit(): the frame, orphaned, re-enters the
    stack as received on lo."""
    lo = skb.dev
    skb.sk = None  # skb_orphan(): the sender's socket lets go of it
    lo.stats.tx_packets += 1
    lo.stats.rx_packets += 1
    skb.pkt_type = PACKET_HOST
    if skb.protocol != ETH_P_IPV6:  # IPv4's output leaves it unset
        skb.protocol = ETH_P_IP
    skb.data = skb.network_header
    netif_rx(skb)  # skb_dst_force(): the output route's dst stays on the skb
