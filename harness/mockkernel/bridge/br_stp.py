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
Left out: BPDUs (config and TCN) and the election they carry: the bridge is
root and sends none; topology change timers; user-space STP.
"""
from __future__ import annotations

from harness.mockkernel.bridge.br_fdb import br_fdb_change_mac_address, br_fdb_delete_by_port, br_fdb_gc_start, \
    br_fdb_gc_stop
from harness.mockkernel.bridge.br_private import (BR_KERNEL_STP, BR_NO_STP, BR_STATE_BLOCKING, BR_STATE_DISABLED,
                                                  BR_STATE_FORWARDING, BR_STATE_LEARNING, BR_STATE_LISTENING,
                                                  NetBridge, NetBridgePort)
from harness.mockkernel.clock import Timer
from harness.mockkernel.core.rtnetlink import netif_carrier_off, netif_carrier_on


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
    """listening -> learning -> forwarding; the bridge gets carrier with its first forwarding port."""
    br = port.br
    if port.state == BR_STATE_LISTENING:
        br_set_state(port, BR_STATE_LEARNING)
        port.forward_delay_timer.mod_timer(br.net.clock.now + br.forward_delay)
    elif port.state == BR_STATE_LEARNING:
        br_set_state(port, BR_STATE_FORWARDING)
        netif_carrier_on(br.dev)


def br_port_state_selection(br: NetBridge) -> None:
    """Every enabled port is designated (the bridge is root): it goes forwarding;
    the bridge has carrier while one forwards."""
    live_ports = 0
    for port in br.ports:
        if port.state == BR_STATE_DISABLED:
            continue
        br_make_forwarding(port)
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
    br_port_state_selection(port.br)


def br_stp_enable_bridge(br: NetBridge) -> None:
    """br_stp_enable_bridge(): the gc work starts; ports that are up are enabled."""
    br_fdb_gc_start(br)
    for port in br.ports:
        if port.dev.up:
            br_stp_enable_port(port)


def br_stp_disable_bridge(br: NetBridge) -> None:
    for port in br.ports:
        if port.state != BR_STATE_DISABLED:
            br_stp_disable_port(port)
    br_fdb_gc_stop(br)


def br_stp_set_enabled(br: NetBridge, enabled: int) -> None:
    """br_stp_set_enabled(): in a namespace other than the initial one the kernel
    runs STP itself (no bridge-stp helper). Turned off, ports that were on their
    way forward at once (br_stp_stop() -> br_port_state_selection())."""
    new = BR_KERNEL_STP if enabled else BR_NO_STP
    if new == br.stp_enabled:
        return
    br.stp_enabled = new
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
