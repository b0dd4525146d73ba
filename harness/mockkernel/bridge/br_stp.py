"""802.1D spanning tree, port states and the bridge id (net/bridge/br_stp.c,
br_stp_if.c, br_stp_timer.c, br_stp_bpdu.c).

With STP off (stp_state 0, BR_NO_STP) a port that is enabled forwards at once.
With the kernel's STP (stp_state 1 in a namespace: no user-space helper there)
the bridge runs 802.1D as br_stp.c does: configuration BPDUs received on a port
(br_stp_rcv(), from the LLC layer) that supersede what the port knows are
recorded (br_record_config_information()), the root bridge, root port and root
path cost re-selected (br_root_selection(): lowest root id, then cost, then
sender bridge id, sender port id, own port id), the designated ports
(br_designated_port_selection()), and then the port states
(br_port_state_selection()): the root port and designated ports walk
listening -> learning -> forwarding, forward_delay apart; any other port blocks,
which is how a loop is broken. A designated port answers an inferior BPDU with
its own (br_reply()); the root port's BPDU makes the bridge take the root's
timer values and send its own BPDUs out of its designated ports
(br_config_bpdu_generation()) with the message age grown by the time it held
it plus a jiffy. A port's information expires after max_age less the message
age (br_message_age_timer_expired()): the port becomes designated again.
The root bridge sends BPDUs out of its designated ports every hello_time
(br_hello_timer_expired(): the first hello_time after it opens, then rounded
to whole seconds as round_jiffies() does); a port sends at most one a second
(the hold timer: later ones wait, config_pending). A port turning forwarding,
or a forwarding one blocking, is a topology change
(br_topology_change_detection()): the root flags its BPDUs for forward_delay +
max_age, while learned entries age in forward_delay (hold_time()); another
bridge sends topology change notifications out of its root port every
hello_time until the root's BPDU acknowledges one (br_transmit_tcn(),
br_topology_change_acknowledged()), and a designated port that hears one
acknowledges it (br_received_tcn_bpdu()). The bridge has carrier while a port
forwards. A port leaving disabled state is flushed of what it learned
(br_stp_disable_port()). The bridge id's address is the lowest port address
unless the user set the bridge's (br_stp_recalculate_bridge_id()), and the
bridge's own address follows it.
Left out: user-space STP, RSTP BPDUs, BPDU guard and root block, the per-port
path cost from the link speed changing later.
"""
from __future__ import annotations

from math import ceil

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.bridge.br_fdb import (br_fdb_change_mac_address, br_fdb_delete_by_port, br_fdb_gc_now,
                                              br_fdb_gc_start, br_fdb_gc_stop)
from harness.mockkernel.bridge.br_multicast import br_multicast_disable_port, br_multicast_enable_port
from harness.mockkernel.bridge.br_private import (BR_KERNEL_STP, BR_NO_STP, BR_STATE_BLOCKING, BR_STATE_DISABLED,
                                                  BR_STATE_FORWARDING, BR_STATE_LEARNING, BR_STATE_LISTENING, HZ,
                                                  NetBridge, NetBridgePort)
from harness.mockkernel.clock import Timer
from harness.mockkernel.core.dev import dev_queue_xmit
from harness.mockkernel.core.rtnetlink import netif_carrier_off, netif_carrier_on
from harness.mockkernel.core.skbuff import SkBuff, alloc_skb, kfree_skb
from harness.mockkernel.netfilter.core import NF_BR_LOCAL_OUT, NF_HOOK_BRIDGE
from harness.mockkernel.wire import ethernet, stp
from harness.mockkernel.wire.stp import (BPDU_FLAG_TOPOLOGY_CHANGE, BPDU_FLAG_TOPOLOGY_CHANGE_ACK, BPDU_TYPE_CONFIG,
                                         BPDU_TYPE_TCN, CONFIG_BPDU_LEN, LLC_HLEN, STP_HZ, config_bpdu_frame,
                                         tcn_bpdu_frame)

BR_GROUP_ADDRESS = b"\x01\x80\xc2\x00\x00\x00"  # br->group_addr: the 802.1D bridge group address
JIFFY = 1 / HZ
MESSAGE_AGE_INCR = ((HZ // 256) + 1) / HZ  # br_private_stp.h: what a bridge adds to the age it passes on
BR_HOLD_TIME = 1.0


def round_jiffies(seconds: float) -> float:
    return float(round(seconds))


def br_get_ticks(ticks: int) -> float:
    """br_get_ticks(): 1/256 s to whole jiffies, rounded up."""
    return ceil(ticks * HZ / STP_HZ) / HZ


def br_set_state(port: NetBridgePort, state: int) -> None:
    port.state = state


def br_is_root_bridge(br: NetBridge) -> bool:
    return br.designated_root == br.bridge_id


def br_is_designated_port(port: NetBridgePort) -> bool:
    return port.designated_bridge == port.br.bridge_id and port.designated_port == port.port_id


def br_get_port(br: NetBridge, port_no: int) -> NetBridgePort | None:
    return next((port for port in br.ports if port.port_no == port_no), None)


def port_timer(port: NetBridgePort, name: str, expired) -> Timer:
    """The port's timer `name`, made on first use (br_stp_port_timer_init())."""
    timer = getattr(port, name)
    if timer is None:
        timer = Timer(port.br.net.clock, lambda: expired(port))
        setattr(port, name, timer)
    return timer


def bridge_timer(br: NetBridge, name: str, expired) -> Timer:
    timer = getattr(br, name)
    if timer is None:
        timer = Timer(br.net.clock, lambda: expired(br))
        setattr(br, name, timer)
    return timer


# ---------------------------------------------------------------- br_stp.c: the protocol

def br_should_become_root_port(port: NetBridgePort, root_port: int) -> bool:
    br = port.br
    if port.state == BR_STATE_DISABLED or br_is_designated_port(port):
        return False
    if br.bridge_id <= port.designated_root:
        return False
    if not root_port:
        return True
    rp = br_get_port(br, root_port)
    mine = (port.designated_root, port.designated_cost + port.path_cost, port.designated_bridge,
            port.designated_port, port.port_id)
    theirs = (rp.designated_root, rp.designated_cost + rp.path_cost, rp.designated_bridge, rp.designated_port,
              rp.port_id)
    return mine < theirs


def br_root_selection(br: NetBridge) -> None:
    root_port = 0
    for port in br.ports:
        if br_should_become_root_port(port, root_port):
            root_port = port.port_no
    br.root_port = root_port
    if not root_port:
        br.designated_root, br.root_path_cost = br.bridge_id, 0
    else:
        port = br_get_port(br, root_port)
        br.designated_root, br.root_path_cost = port.designated_root, port.designated_cost + port.path_cost


def br_become_root_bridge(br: NetBridge) -> None:
    """The bridge's own timer values; a topology change; its BPDUs and hello timer."""
    br.max_age, br.hello_time, br.forward_delay = br.bridge_max_age, br.bridge_hello_time, br.bridge_forward_delay
    br_topology_change_detection(br)
    if br.tcn_timer is not None:
        br.tcn_timer.del_timer()
    if br.dev.up:
        br_config_bpdu_generation(br)
        bridge_timer(br, "hello_timer", br_hello_timer_expired).mod_timer(br.net.clock.now + br.hello_time)


def br_transmit_config(port: NetBridgePort) -> None:
    """br_transmit_config(): the bridge's configuration out of the port (the
    message age grown while it held it), unless the hold timer still runs."""
    hold = port_timer(port, "hold_timer", br_hold_timer_expired)
    if hold.pending:
        port.config_pending = True
        return
    br = port.br
    now = br.net.clock.now
    if br_is_root_bridge(br):
        message_age = 0.0
    else:
        message_age = (now - br_get_port(br, br.root_port).designated_age) + MESSAGE_AGE_INCR
    if message_age >= br.max_age:
        return
    br_send_config_bpdu(port, message_age)
    port.topology_change_ack = port.config_pending = False
    if br.stp_enabled == BR_KERNEL_STP:
        hold.mod_timer(round_jiffies(now + BR_HOLD_TIME))


def br_record_config_information(port: NetBridgePort, root: bytes, cost: int, bridge: bytes, port_id: int,
                                 message_age: float, max_age: float) -> None:
    port.designated_root, port.designated_cost = root, cost
    port.designated_bridge, port.designated_port = bridge, port_id
    now = port.br.net.clock.now
    port.designated_age = now - message_age
    port_timer(port, "message_age_timer", br_message_age_timer_expired).mod_timer(now + max_age - message_age)


def br_record_config_timeout_values(br: NetBridge, max_age: float, hello_time: float, forward_delay: float,
                                    topology_change: bool) -> None:
    br.max_age, br.hello_time, br.forward_delay = max_age, hello_time, forward_delay
    __br_set_topology_change(br, topology_change)


def br_transmit_tcn(br: NetBridge) -> None:
    """A topology change notification out of the root port."""
    port = br_get_port(br, br.root_port)
    if port is not None:
        br_send_bpdu(port, tcn_bpdu_frame(BR_GROUP_ADDRESS, port.dev.mac), "br_send_tcn_bpdu: TCN")


def br_should_become_designated_port(port: NetBridgePort) -> bool:
    br = port.br
    if br_is_designated_port(port) or port.designated_root != br.designated_root:
        return True
    return (br.root_path_cost, br.bridge_id, port.port_id) < (port.designated_cost, port.designated_bridge,
                                                               port.designated_port)


def br_designated_port_selection(br: NetBridge) -> None:
    for port in br.ports:
        if port.state != BR_STATE_DISABLED and br_should_become_designated_port(port):
            br_become_designated_port(port)


def br_supersedes_port_info(port: NetBridgePort, root: bytes, cost: int, bridge: bytes, port_id: int) -> bool:
    """Whether the BPDU beats what the port holds (a BPDU of this very bridge and
    port only if it is no worse)."""
    if (root, cost, bridge) != (port.designated_root, port.designated_cost, port.designated_bridge):
        return (root, cost, bridge) < (port.designated_root, port.designated_cost, port.designated_bridge)
    return bridge != port.br.bridge_id or port_id <= port.designated_port


def br_topology_change_acknowledged(br: NetBridge) -> None:
    br.topology_change_detected = False
    if br.tcn_timer is not None:
        br.tcn_timer.del_timer()


def br_topology_change_detection(br: NetBridge) -> None:
    """The root flags the change for forward_delay + max_age (during which
    learned entries age in forward_delay: __br_set_topology_change() runs the
    gc); another bridge tells the root, every hello_time until acknowledged."""
    if br.stp_enabled != BR_KERNEL_STP:
        return
    now = br.net.clock.now
    if br_is_root_bridge(br):
        __br_set_topology_change(br, True)
        bridge_timer(br, "topology_change_timer", br_topology_change_timer_expired).mod_timer(
            now + br.bridge_forward_delay + br.bridge_max_age)
    elif not br.topology_change_detected:
        br_transmit_tcn(br)
        bridge_timer(br, "tcn_timer", br_tcn_timer_expired).mod_timer(now + br.bridge_hello_time)
    br.topology_change_detected = True


def __br_set_topology_change(br: NetBridge, value: bool) -> None:
    if br.stp_enabled == BR_KERNEL_STP and br.topology_change != value:
        br.topology_change = value
        br_fdb_gc_now(br)
    br.topology_change = value


def br_config_bpdu_generation(br: NetBridge) -> None:
    for port in br.ports:
        if port.state != BR_STATE_DISABLED and br_is_designated_port(port):
            br_transmit_config(port)


def br_become_designated_port(port: NetBridgePort) -> None:
    br = port.br
    port.designated_root, port.designated_cost = br.designated_root, br.root_path_cost
    port.designated_bridge, port.designated_port = br.bridge_id, port.port_id


def br_make_blocking(port: NetBridgePort) -> None:
    if port.state in (BR_STATE_DISABLED, BR_STATE_BLOCKING):
        return
    if port.state in (BR_STATE_FORWARDING, BR_STATE_LEARNING):
        br_topology_change_detection(port.br)
    br_set_state(port, BR_STATE_BLOCKING)
    if port.forward_delay_timer is not None:
        port.forward_delay_timer.del_timer()


def br_make_forwarding(port: NetBridgePort) -> None:
    """br_make_forwarding(): a blocking port starts towards forwarding: at once
    without STP, through listening (kernel STP) forward_delay at a time."""
    if port.state != BR_STATE_BLOCKING:
        return
    br = port.br
    if br.stp_enabled == BR_NO_STP or br.forward_delay == 0:
        br_set_state(port, BR_STATE_FORWARDING)
        br_topology_change_detection(br)
    else:
        br_set_state(port, BR_STATE_LISTENING if br.stp_enabled == BR_KERNEL_STP else BR_STATE_LEARNING)
    if br.forward_delay:  # armed even for a port forwarding already: its expiry finds nothing to do
        port_timer(port, "forward_delay_timer", br_forward_delay_timer_expired).mod_timer(
            br.net.clock.now + br.forward_delay)


def br_port_state_selection(br: NetBridge) -> None:
    """The root port and designated ports forward, the others block; the
    bridge has carrier while one forwards."""
    live_ports = 0
    for port in br.ports:
        if port.state == BR_STATE_DISABLED:
            continue
        if port.port_no == br.root_port:
            port.config_pending = port.topology_change_ack = False
            br_make_forwarding(port)
        elif br_is_designated_port(port):
            if port.message_age_timer is not None:
                port.message_age_timer.del_timer()
            br_make_forwarding(port)
        else:
            port.config_pending = port.topology_change_ack = False
            br_make_blocking(port)
        if port.state != BR_STATE_BLOCKING:
            br_multicast_enable_port(port)
        if port.state == BR_STATE_FORWARDING:
            live_ports += 1
    (netif_carrier_on if live_ports else netif_carrier_off)(br.dev)


def br_topology_change_acknowledge(port: NetBridgePort) -> None:
    port.topology_change_ack = True
    br_transmit_config(port)


def br_received_config_bpdu(port: NetBridgePort, flags: int, root: bytes, cost: int, bridge: bytes, port_id: int,
                            message_age: float, max_age: float, hello_time: float, forward_delay: float) -> None:
    br = port.br
    was_root = br_is_root_bridge(br)
    if br_supersedes_port_info(port, root, cost, bridge, port_id):
        br_record_config_information(port, root, cost, bridge, port_id, message_age, max_age)
        br_configuration_update(br)
        br_port_state_selection(br)
        if not br_is_root_bridge(br) and was_root:
            if br.hello_timer is not None:
                br.hello_timer.del_timer()
            if br.topology_change_detected:
                if br.topology_change_timer is not None:
                    br.topology_change_timer.del_timer()
                br_transmit_tcn(br)
                bridge_timer(br, "tcn_timer", br_tcn_timer_expired).mod_timer(br.net.clock.now + br.bridge_hello_time)
        if port.port_no == br.root_port:
            br_record_config_timeout_values(br, max_age, hello_time, forward_delay,
                                            bool(flags & BPDU_FLAG_TOPOLOGY_CHANGE))
            br_config_bpdu_generation(br)
            if flags & BPDU_FLAG_TOPOLOGY_CHANGE_ACK:
                br_topology_change_acknowledged(br)
    elif br_is_designated_port(port):
        br_transmit_config(port)  # br_reply()


def br_received_tcn_bpdu(port: NetBridgePort) -> None:
    if br_is_designated_port(port):
        br_topology_change_detection(port.br)
        br_topology_change_acknowledge(port)


def br_configuration_update(br: NetBridge) -> None:
    br_root_selection(br)
    br_designated_port_selection(br)


# ---------------------------------------------------------------- br_stp_timer.c

def br_hello_timer_expired(br: NetBridge) -> None:
    """BPDUs out of the designated ports, again hello_time later (rounded to a
    whole second, round_jiffies())."""
    if not br.dev.up:
        return
    br_config_bpdu_generation(br)
    if br.stp_enabled == BR_KERNEL_STP:
        br.hello_timer.mod_timer(round_jiffies(br.net.clock.now + br.hello_time))


def br_message_age_timer_expired(port: NetBridgePort) -> None:
    """What the port heard is too old: it is designated again, and the bridge
    root if nothing else says otherwise."""
    br = port.br
    if port.state == BR_STATE_DISABLED:
        return
    was_root = br_is_root_bridge(br)
    br_become_designated_port(port)
    br_configuration_update(br)
    br_port_state_selection(br)
    if br_is_root_bridge(br) and not was_root:
        br_become_root_bridge(br)


def br_forward_delay_timer_expired(port: NetBridgePort) -> None:
    """listening -> learning -> forwarding, a topology change if the bridge is
    designated for some port; the bridge gets carrier with its first forwarding port."""
    br = port.br
    if port.state == BR_STATE_LISTENING:
        br_set_state(port, BR_STATE_LEARNING)
        port.forward_delay_timer.mod_timer(br.net.clock.now + br.forward_delay)
    elif port.state == BR_STATE_LEARNING:
        br_set_state(port, BR_STATE_FORWARDING)
        if any(br_is_designated_port(other) for other in br.ports):
            br_topology_change_detection(br)
        netif_carrier_on(br.dev)


def br_tcn_timer_expired(br: NetBridge) -> None:
    if not br_is_root_bridge(br) and br.dev.up:
        br_transmit_tcn(br)
        br.tcn_timer.mod_timer(br.net.clock.now + br.bridge_hello_time)


def br_topology_change_timer_expired(br: NetBridge) -> None:
    br.topology_change_detected = False
    __br_set_topology_change(br, False)


def br_hold_timer_expired(port: NetBridgePort) -> None:
    if port.config_pending:
        br_transmit_config(port)


# ---------------------------------------------------------------- br_stp_bpdu.c

def br_send_bpdu(port: NetBridgePort, frame: bytes, summary: str) -> None:
    """br_send_bpdu(): out of the port through NF_BR_LOCAL_OUT."""
    dev = port.dev
    skb = alloc_skb(frame)
    skb.net, skb.dev = port.br.net, dev
    port.br.net.tracer.start(skb, f"{summary} out of {dev.name}, port id {port.port_id:#x}")
    NF_HOOK_BRIDGE(skb, NF_BR_LOCAL_OUT, None, dev, dev_queue_xmit)


def br_send_config_bpdu(port: NetBridgePort, message_age: float) -> None:
    br = port.br
    flags = (BPDU_FLAG_TOPOLOGY_CHANGE if br.topology_change else 0) | \
        (BPDU_FLAG_TOPOLOGY_CHANGE_ACK if port.topology_change_ack else 0)
    root, bridge = br.designated_root, br.bridge_id
    frame = config_bpdu_frame(BR_GROUP_ADDRESS, port.dev.mac, flags, (int.from_bytes(root[:2], "big"), root[2:]),
                              br.root_path_cost, (int.from_bytes(bridge[:2], "big"), bridge[2:]), port.port_id,
                              message_age, br.max_age, br.hello_time, br.forward_delay)
    br_send_bpdu(port, frame, "br_transmit_config: config BPDU")


def br_stp_rcv(skb: SkBuff, port: NetBridgePort) -> None:
    """br_stp_rcv(), from the LLC layer: a BPDU of protocol 0, version 0..2, to
    the group address, on an enabled port of a bridge running kernel STP, is
    taken in; the skb is freed with kfree_skb() whatever it carried (located in
    net/802/stp.c stp_pdu_rcv(), its caller, on the lab)."""
    br = port.br
    buf, off, end = skb.buf, skb.data + LLC_HLEN, skb.tail
    if end - off >= 4:
        protocol, version, bpdu_type = stp.BPDU_HEADER.unpack_from(buf, off)
        dest = ethernet.HEADER.unpack_from(buf, skb.mac_header)[0]
        if protocol == 0 and version <= 2 and dest == BR_GROUP_ADDRESS and port.state != BR_STATE_DISABLED \
                and br.stp_enabled == BR_KERNEL_STP:
            if bpdu_type == BPDU_TYPE_CONFIG and end - off >= CONFIG_BPDU_LEN:
                flags, root, cost, bridge, port_id, *ticks = stp.config_bpdu_fields(buf, off)
                message_age, max_age, hello_time, forward_delay = (br_get_ticks(t) for t in ticks)
                skb.net.tracer.hop(skb, Stage.BRIDGE, "br_stp_rcv", "config BPDU",
                                   f"root {root.hex()} cost {cost} from {bridge.hex()} port {port_id:#x}")
                if message_age <= max_age:
                    br_received_config_bpdu(port, flags, root, cost, bridge, port_id, message_age, max_age,
                                            hello_time, forward_delay)
            elif bpdu_type == BPDU_TYPE_TCN:
                skb.net.tracer.hop(skb, Stage.BRIDGE, "br_stp_rcv", "TCN")
                br_received_tcn_bpdu(port)
    kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.BRIDGE, "stp_pdu_rcv")


def llc_rcv(skb: SkBuff) -> None:
    """net/llc llc_rcv() -> stp_pdu_rcv(): a frame to the spanning tree SAP
    (DSAP 0x42, UI) received on a bridge port goes to br_stp_rcv(); any other
    802.2 frame finds no SAP and is freed."""
    dsap, _, control = stp.LLC_HEADER.unpack_from(skb.buf, skb.data) if skb.tail - skb.data >= LLC_HLEN else (0, 0, 0)
    port = skb.dev.rx_handler_data if skb.dev.master is not None and skb.dev.master.kind == "bridge" else None
    if dsap == stp.LLC_SAP_BSPAN and control == stp.LLC_PDU_CMD_UI and port is not None:
        br_stp_rcv(skb, port)
        return
    kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.SKB, "llc_rcv")


# ---------------------------------------------------------------- br_stp_if.c

def br_init_port(port: NetBridgePort) -> None:
    br_become_designated_port(port)
    br_set_state(port, BR_STATE_BLOCKING)
    port.topology_change_ack = port.config_pending = False


def br_stp_enable_port(port: NetBridgePort) -> None:
    """br_stp_enable_port(): br_init_port(), then state selection."""
    br_init_port(port)
    br_port_state_selection(port.br)


def br_stp_disable_port(port: NetBridgePort) -> None:
    """br_stp_disable_port(): disabled, its timers stopped, what it learned
    forgotten; the tree recomputed (the bridge root again if it was the root port)."""
    br = port.br
    was_root = br_is_root_bridge(br)
    br_become_designated_port(port)
    br_set_state(port, BR_STATE_DISABLED)
    port.topology_change_ack = port.config_pending = False
    for timer in (port.message_age_timer, port.forward_delay_timer, port.hold_timer):
        if timer is not None:
            timer.del_timer()
    br_fdb_delete_by_port(br, port, 0, False)
    br_multicast_disable_port(port)
    br_configuration_update(br)
    br_port_state_selection(br)
    if br_is_root_bridge(br) and not was_root:
        br_become_root_bridge(br)


def br_stp_enable_bridge(br: NetBridge) -> None:
    """br_stp_enable_bridge(): the hello timer (kernel STP) and the gc work start;
    ports that are up are enabled."""
    if br.stp_enabled == BR_KERNEL_STP:
        bridge_timer(br, "hello_timer", br_hello_timer_expired).mod_timer(br.net.clock.now + br.hello_time)
    br_fdb_gc_start(br)
    br_config_bpdu_generation(br)
    for port in br.ports:
        if port.dev.up:
            br_stp_enable_port(port)


def br_stp_disable_bridge(br: NetBridge) -> None:
    for port in br.ports:
        if port.state != BR_STATE_DISABLED:
            br_stp_disable_port(port)
    __br_set_topology_change(br, False)
    br.topology_change_detected = False
    for timer in (br.hello_timer, br.topology_change_timer, br.tcn_timer):
        if timer is not None:
            timer.del_timer()
    br_fdb_gc_stop(br)


def br_stp_set_enabled(br: NetBridge, enabled: int) -> None:
    """br_stp_set_enabled(): in a namespace other than the initial one the kernel
    runs STP itself (no bridge-stp helper). Turned off, ports that were on their
    way forward at once (br_stp_stop() -> br_port_state_selection())."""
    new = BR_KERNEL_STP if enabled else BR_NO_STP
    if new == br.stp_enabled:
        return
    br.stp_enabled = new
    if new == BR_KERNEL_STP and br.dev.up:  # br_stp_start()
        bridge_timer(br, "hello_timer", br_hello_timer_expired).mod_timer(br.net.clock.now + br.hello_time)
    if new == BR_NO_STP:
        for port in br.ports:
            if port.state in (BR_STATE_LISTENING, BR_STATE_LEARNING):
                if port.forward_delay_timer is not None:
                    port.forward_delay_timer.del_timer()
                br_set_state(port, BR_STATE_BLOCKING)
        br_port_state_selection(br)


def br_stp_recalculate_bridge_id(br: NetBridge) -> bool:
    """The lowest port address is the bridge id's (all zeros with no port), and
    the bridge's own address too unless the user set it; True if it changed."""
    if br.addr_set_by_user:
        return False
    addr = min((port.dev.mac for port in br.ports), default=bytes(6))
    if addr == br.bridge_id_addr:
        return False
    br_stp_change_bridge_id(br, addr)
    return True


def br_stp_change_bridge_id(br: NetBridge, addr: bytes) -> None:
    """br_stp_change_bridge_id(): the designated values that named the old id name the new one."""
    was_root = br_is_root_bridge(br)
    old = br.bridge_id_addr
    br_fdb_change_mac_address(br, addr)
    br.dev.mac = addr
    br.bridge_id_addr = addr
    for port in br.ports:  # the addresses compared alone (ether_addr_equal())
        if port.designated_bridge[2:] == old:
            port.designated_bridge = port.designated_bridge[:2] + addr
        if port.designated_root[2:] == old:
            port.designated_root = port.designated_root[:2] + addr
    br_configuration_update(br)
    br_port_state_selection(br)
    if br_is_root_bridge(br) and not was_root:
        br_become_root_bridge(br)


def br_stp_set_bridge_priority(br: NetBridge, priority: int) -> None:
    """br_stp_set_bridge_priority(): the designated ports' bridge id and the
    bridge's take the new priority; the tree is recomputed."""
    was_root = br_is_root_bridge(br)
    designated = [port for port in br.ports if port.state != BR_STATE_DISABLED and br_is_designated_port(port)]
    br.priority = priority
    for port in designated:
        port.designated_bridge = br.bridge_id
    br_configuration_update(br)
    br_port_state_selection(br)
    if br_is_root_bridge(br) and not was_root:
        br_become_root_bridge(br)
