"""A port's settings by netlink (net/bridge/br_netlink.c br_setport(), as `bridge link
set` and `ip link set DEV type bridge_slave` ask for them): flags, path cost,
priority and state. Flags by name, as both front ends spell them.
"""
from __future__ import annotations

import errno

from harness.mockkernel.bridge.br_private import (BR_ADMIN_COST, BR_BCAST_FLOOD, BR_FLOOD, BR_HAIRPIN_MODE, BR_ISOLATED,
                                                  BR_KERNEL_STP, BR_LEARNING, BR_MCAST_FLOOD, BR_STATE_BLOCKING,
                                                  BR_STATE_DISABLED, NetBridgePort)
from harness.mockkernel.bridge.br_stp import br_port_state_selection, br_set_state
from harness.mockkernel.core.errors import RtnlError

# IFLA_BRPORT_* flags the model has, by their iproute2 keyword
PORT_FLAGS = {"hairpin": BR_HAIRPIN_MODE, "learning": BR_LEARNING, "flood": BR_FLOOD, "mcast_flood": BR_MCAST_FLOOD,
              "bcast_flood": BR_BCAST_FLOOD, "isolated": BR_ISOLATED}
BR_MIN_PATH_COST, BR_MAX_PATH_COST = 1, 65535
BR_MAX_PORT_PRIORITY = 63  # (1 << (16 - BR_PORT_BITS)) - 1


def br_set_port_state(port: NetBridgePort, state: int) -> None:
    """br_set_port_state(): not while the kernel runs STP (EBUSY), not on a port
    that is down unless to disable it (ENETDOWN); then the state selection runs."""
    if state > BR_STATE_BLOCKING:
        raise RtnlError(errno.EINVAL)
    if port.br.stp_enabled == BR_KERNEL_STP:
        raise RtnlError(errno.EBUSY)
    if not port.dev.up and state != BR_STATE_DISABLED:
        raise RtnlError(errno.ENETDOWN)
    br_set_state(port, state)
    br_port_state_selection(port.br)


def br_setport(port: NetBridgePort, flags: dict[int, bool], cost: int | None, priority: int | None,
               state: int | None) -> None:
    """br_setport(): flags, then path cost, priority and state (ERANGE out of bounds)."""
    for flag, on in flags.items():
        port.flags = port.flags | flag if on else port.flags & ~flag
    if cost is not None:
        if not BR_MIN_PATH_COST <= cost <= BR_MAX_PATH_COST:
            raise RtnlError(errno.ERANGE)
        port.path_cost = cost
        port.flags |= BR_ADMIN_COST
    if priority is not None:
        if priority > BR_MAX_PORT_PRIORITY:
            raise RtnlError(errno.ERANGE)
        port.priority = priority
    if state is not None:
        br_set_port_state(port, state)
