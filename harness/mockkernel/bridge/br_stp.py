"""Port states and the bridge id (net/bridge/br_stp.c, br_stp_if.c, br_stp_timer.c).

With STP off (stp_state 0, BR_NO_STP) a port that is enabled forwards at once.
With the kernel's STP (stp_state 1 in a namespace: no user-space helper there)
the bridge is the root, every enabled port is designated and walks listening ->
learning -> forwarding, forward_delay apart (br_make_forwarding(),
br_forward_delay_timer_expired()). The bridge has carrier while a port forwards
(br_port_state_selection()). A port leaving disabled state is flushed of what it
learned (br_stp_disable_port()). The bridge id's address is the lowest port
address unless the user set the bridge's (br_stp_recalculate_bridge_id()), and
the bridge's own address follows it.
With kernel STP the bridge, root, sends a configuration BPDU out of each enabled port
every hello_time (br_hello_timer_expired(), the first hello_time after it opens,
then rounded to whole seconds as round_jiffies() does) naming itself root
(br_transmit_config(), wire/stp.py). A port becoming forwarding is a topology change
(br_topology_change_detection()): for forward_delay + max_age the BPDUs carry the
flag and learned entries age in forward_delay (hold_time()), the fdb gc running at once.
Left out: receiving BPDUs and the election they carry (the bridge stays root), TCNs,
the hold timer's rate limit, user-space STP.
"""
from __future__ import annotations

from harness.mockkernel.bridge.br_fdb import (br_fdb_change_mac_address, br_fdb_delete_by_port, br_fdb_gc_now,
                                              br_fdb_gc_start, br_fdb_gc_stop)
from harness.mockkernel.bridge.br_multicast import br_multicast_disable_port, br_multicast_enable_port
from harness.mockkernel.bridge.br_private import (BR_KERNEL_STP, BR_NO_STP, BR_STATE_BLOCKING, BR_STATE_DISABLED,
                                                  BR_STATE_FORWARDING, BR_STATE_LEARNING, BR_STATE_LISTENING,
                                                  NetBridge, NetBridgePort)
from harness.mockkernel.clock import Timer
from harness.mockkernel.core.dev import dev_queue_xmit
from harness.mockkernel.core.rtnetlink import netif_carrier_off, netif_carrier_on
from harness.mockkernel.core.skbuff import alloc_skb
from harness.mockkernel.netfilter.core import NF_BR_LOCAL_OUT, NF_HOOK_BRIDGE
from harness.mockkernel.wire.stp import BPDU_FLAG_TOPOLOGY_CHANGE, config_bpdu_frame

BR_GROUP_ADDRESS = b"\x01\x80\xc2\x00\x00\x00"  # br->group_addr: the 802.1D bridge group address


def br_set_state(port: NetBridgePort, state: int) -> None:
    port.state = state


def br_make_forwarding(port: NetBridgePort) -> None:
    """br_make_forwarding(): a blocking designated port starts towards forwarding:
    at once without STP, through listening (kernel STP) forward_delay at a time."""
    if port.state != BR_STATE_BLOCKING:
        return
    br = port.br
    if br.stp_enabled == BR_NO_STP or br.forward_delay == 0:
        br_set_state(port, BR_STATE_FORWARDING)
        return
    br_set_state(port, BR_STATE_LISTENING if br.stp_enabled == BR_KERNEL_STP else BR_STATE_LEARNING)
    if port.forward_delay_timer is None:
        port.forward_delay_timer = Timer(br.net.clock, lambda: br_forward_delay_timer_expired(port))
    port.forward_delay_timer.mod_timer(br.net.clock.now + br.forward_delay)


def br_forward_delay_timer_expired(port: NetBridgePort) -> None:
    """listening -> learning -> forwarding, a topology change; the bridge gets
    carrier with its first forwarding port."""
    br = port.br
    if port.state == BR_STATE_LISTENING:
        br_set_state(port, BR_STATE_LEARNING)
        port.forward_delay_timer.mod_timer(br.net.clock.now + br.forward_delay)
    elif port.state == BR_STATE_LEARNING:
        br_set_state(port, BR_STATE_FORWARDING)
        br_topology_change_detection(br)
        netif_carrier_on(br.dev)


def br_topology_change_detection(br: NetBridge) -> None:
    """The root's own topology change: flagged for forward_delay + max_age, during
    which learned entries age in forward_delay (__br_set_topology_change() runs the gc)."""
    if br.stp_enabled != BR_KERNEL_STP:
        return
    br.topology_change = True
    if br.topology_change_timer is None:
        br.topology_change_timer = Timer(br.net.clock, lambda: br_topology_change_timer_expired(br))
    br.topology_change_timer.mod_timer(br.net.clock.now + br.forward_delay + br.max_age)
    br_fdb_gc_now(br)


def br_topology_change_timer_expired(br: NetBridge) -> None:
    br.topology_change = False
    br_fdb_gc_now(br)


def br_hello_timer_expired(br: NetBridge) -> None:
    """br_hello_timer_expired(): BPDUs out of the ports, again hello_time later
    (rounded to a whole second, round_jiffies())."""
    if not br.dev.up:
        return
    br_config_bpdu_generation(br)
    if br.stp_enabled == BR_KERNEL_STP:
        br.hello_timer.mod_timer(float(round(br.net.clock.now + br.hello_time)))


def br_hello_timer_start(br: NetBridge) -> None:
    if br.hello_timer is None:
        br.hello_timer = Timer(br.net.clock, lambda: br_hello_timer_expired(br))
    br.hello_timer.mod_timer(br.net.clock.now + br.hello_time)


def br_config_bpdu_generation(br: NetBridge) -> None:
    """Every enabled port is designated: each sends one (br_transmit_config())."""
    for port in br.ports:
        if port.state != BR_STATE_DISABLED:
            br_transmit_config(port)


def br_transmit_config(port: NetBridgePort) -> None:
    """br_transmit_config() -> br_send_config_bpdu() -> br_send_bpdu(): the root's
    BPDU (itself root, cost 0, message age 0), out of the port through
    NF_BR_LOCAL_OUT."""
    br, dev = port.br, port.dev
    bridge_id = (br.priority, br.bridge_id_addr)
    frame = config_bpdu_frame(BR_GROUP_ADDRESS, dev.mac, BPDU_FLAG_TOPOLOGY_CHANGE if br.topology_change else 0,
                              bridge_id, 0, bridge_id, port.port_id, 0, br.max_age, br.hello_time, br.forward_delay)
    skb = alloc_skb(frame)
    skb.net, skb.dev = br.net, dev
    br.net.tracer.start(skb, f"br_transmit_config: config BPDU out of {dev.name}, port id {port.port_id:#x}")
    NF_HOOK_BRIDGE(skb, NF_BR_LOCAL_OUT, None, dev, dev_queue_xmit)


def br_port_state_selection(br: NetBridge) -> None:
    """Every enabled port is designated (the bridge is root): it goes forwarding;
    the bridge has carrier while one forwards."""
    live_ports = 0
    for port in br.ports:
        if port.state == BR_STATE_DISABLED:
            continue
        br_make_forwarding(port)
        if port.state != BR_STATE_BLOCKING:
            br_multicast_enable_port(port)
        if port.state == BR_STATE_FORWARDING:
            live_ports += 1
    (netif_carrier_on if live_ports else netif_carrier_off)(br.dev)


def br_stp_enable_port(port: NetBridgePort) -> None:
    """br_stp_enable_port() -> br_init_port(): blocking, then state selection."""
    br_set_state(port, BR_STATE_BLOCKING)
    br_port_state_selection(port.br)


def br_stp_disable_port(port: NetBridgePort) -> None:
    """br_stp_disable_port(): disabled, its timers stopped, what it learned forgotten."""
    br_set_state(port, BR_STATE_DISABLED)
    if port.forward_delay_timer is not None:
        port.forward_delay_timer.del_timer()
    br_fdb_delete_by_port(port.br, port, 0, False)
    br_multicast_disable_port(port)
    br_port_state_selection(port.br)


def br_stp_enable_bridge(br: NetBridge) -> None:
    """br_stp_enable_bridge(): the hello timer (kernel STP) and the gc work start;
    ports that are up are enabled."""
    if br.stp_enabled == BR_KERNEL_STP:
        br_hello_timer_start(br)
    br_fdb_gc_start(br)
    for port in br.ports:
        if port.dev.up:
            br_stp_enable_port(port)


def br_stp_disable_bridge(br: NetBridge) -> None:
    for port in br.ports:
        if port.state != BR_STATE_DISABLED:
            br_stp_disable_port(port)
    br.topology_change = False
    for timer in (br.hello_timer, br.topology_change_timer):
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
        br_hello_timer_start(br)
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
    br_fdb_change_mac_address(br, addr)
    br.dev.mac = addr
    br.bridge_id_addr = addr
