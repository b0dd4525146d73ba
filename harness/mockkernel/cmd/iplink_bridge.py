"""`ip link ... type bridge` options (iproute2 6.1 ip/iplink_bridge.c bridge_parse_opt()),
and a port's `type bridge_slave` ones (ip/iplink_bridge_slave.c bridge_slave_parse_opt()).

Each option a prefix of its keyword (matches()), its value a base-0 number of the
attribute's width; a bad one is `invarg("invalid NAME")`. The options the mock's
bridge models become IFLA_BR_* values by name for br_changelink()
(bridge/br_device.py); the rest that iproute2 accepts are not modelled, nor are
IGMPv3/MLDv2 snooping (mcast_igmp_version 3, mcast_mld_version 2).
bridge_print_opt() and bridge_slave_print_opt() give what `ip -d link show`
prints for a bridge and for a bridge port.
"""
from __future__ import annotations

from harness.mockkernel.bridge.br_private import (BR_BCAST_FLOOD, BR_FLOOD, BR_HAIRPIN_MODE, BR_ISOLATED,
                                                  BR_LEARNING, BR_MCAST_FLOOD, BR_PROXYARP, BR_STATE_NAMES, HZ,
                                                  USER_HZ)
from harness.mockkernel.cmd.args import ToolError, c_uint, not_modelled
from harness.mockkernel.cmd.iputils import invarg, matches, parse_on_off

U8, U16, U32, U64 = 0xFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF
# bridge_parse_opt()'s keywords in its order, the first a token is a prefix of winning (mcast_vlan_snooping
# only whole): (keyword, the attribute's largest value, or None: accepted by iproute2, not modelled)
OPTIONS = (("forward_delay", U32), ("hello_time", U32), ("max_age", U32), ("ageing_time", U32), ("stp_state", U32),
           ("priority", U16), ("vlan_filtering", U8), ("vlan_protocol", None), ("group_fwd_mask", U16),
           ("group_address", None), ("no_linklocal_learn", None), ("fdb_flush", None), ("vlan_default_pvid", U16),
           ("vlan_stats_enabled", None), ("vlan_stats_per_port", None), ("mcast_router", U8), ("mcast_snooping", U8),
           ("mcast_vlan_snooping", None), ("mcast_query_use_ifaddr", U8), ("mcast_querier", U8),
           ("mcast_hash_elasticity", U32), ("mcast_hash_max", U32), ("mcast_last_member_count", U32),
           ("mcast_startup_query_count", U32), ("mcast_last_member_interval", U64),
           ("mcast_membership_interval", U64), ("mcast_querier_interval", U64), ("mcast_query_interval", U64),
           ("mcast_query_response_interval", U64), ("mcast_startup_query_interval", U64),
           ("mcast_stats_enabled", U8), ("mcast_igmp_version", U8), ("mcast_mld_version", U8),
           ("nf_call_iptables", U8), ("nf_call_ip6tables", U8), ("nf_call_arptables", U8))
WHOLE_WORD_ONLY = ("no_linklocal_learn", "mcast_vlan_snooping")
# snooping in IGMPv3/MLDv2 mode (source lists, (S,G) entries) is not modelled; other versions are EINVAL
VERSIONS_NOT_MODELLED = {"mcast_igmp_version": 3, "mcast_mld_version": 2}


def bridge_parse_opt(tokens) -> dict:
    """The options after `type bridge`, as {IFLA_BR name: value}."""
    data: dict = {}
    while tokens:
        token = tokens.pop()
        keyword, largest = next(((name, largest) for name, largest in OPTIONS
                                 if (token == name if name in WHOLE_WORD_ONLY else matches(token, name))),
                                (None, None))
        if keyword is None:
            if matches(token, "help"):
                raise ToolError("Usage: ... bridge [ fdb_flush ]", 255)
            raise ToolError(f'bridge: unknown command "{token}"?', 255)
        if largest is None:
            raise not_modelled(f"ip link type bridge {keyword}")
        value_text = tokens.pop()
        value = c_uint(value_text)
        if value is None or value > largest:
            raise invarg(f"invalid {keyword}", value_text)
        if VERSIONS_NOT_MODELLED.get(keyword) == value:
            raise not_modelled(f"ip link type bridge {keyword} {value}")
        data[keyword] = value
    return data


# bridge_slave_parse_opt()'s keywords, in its order: (keyword, the attribute's largest value,
# or "on/off"); the first a token is a prefix of wins
SLAVE_OPTIONS = (("fdb_flush", None), ("state", 0xFF), ("priority", 0xFFFF), ("cost", 0xFFFFFFFF),
                 ("hairpin", "on/off"), ("guard", None), ("root_block", None), ("fastleave", None),
                 ("learning", "on/off"), ("flood", "on/off"), ("mcast_flood", "on/off"), ("bcast_flood", "on/off"),
                 ("mcast_to_unicast", None), ("proxy_arp", None), ("proxy_arp_wifi", None), ("mcast_router", None),
                 ("mcast_fast_leave", None), ("neigh_suppress", None), ("group_fwd_mask", None),
                 ("vlan_tunnel", None), ("isolated", "on/off"), ("locked", None), ("backup_port", None),
                 ("nobackup_port", None))


def bridge_slave_parse_opt(tokens) -> dict:
    """The options after `type bridge_slave`, as {IFLA_BRPORT name: value} (on/off as a bool)."""
    data: dict = {}
    while tokens:
        token = tokens.pop()
        keyword, kind = next(((name, kind) for name, kind in SLAVE_OPTIONS if matches(token, name)), (None, None))
        if keyword is None:
            if matches(token, "help"):
                raise ToolError("Usage: ... bridge_slave [ fdb_flush ]", 255)
            raise ToolError(f'bridge_slave: unknown option "{token}"?', 255)
        if kind is None:
            raise not_modelled(f"ip link type bridge_slave {keyword}")
        value_text = tokens.pop()
        if kind == "on/off":
            data[keyword] = parse_on_off(keyword, value_text, 1)  # bridge_slave_parse_on_off() exits 1
            continue
        value = c_uint(value_text)
        if value is None or value > kind:
            raise invarg(f"{keyword} is invalid", value_text)
        data[keyword] = value
    return data


# -- `ip -d link show`: iproute2 6.1 bridge_print_opt() and bridge_slave_print_opt(), the
# attributes br_fill_info() and br_port_fill_attrs() report, in the order iproute2 prints them

def _clock_t(seconds: float) -> int:
    """jiffies_to_clock_t() of a time kept in whole jiffies."""
    return round(seconds * HZ) * USER_HZ // HZ


def _timer(timer) -> str:
    """br_timer_value() (the time left, 0 for an idle timer) as print_timer() prints it: "%4i.%.2i"."""
    left = _clock_t(max(0.0, timer.expires - timer.clock.now)) if timer is not None and timer.pending else 0
    return f"{left // 100:4d}.{left % 100:02d}"


def bridge_id_str(bridge_id: bytes) -> str:
    """br_dump_bridge_id(): "%.2x%.2x.%x:%x:%x:%x:%x:%x"."""
    return bridge_id[:2].hex() + "." + ":".join(f"{octet:x}" for octet in bridge_id[2:])


def bridge_print_opt(br) -> list[tuple[str, object]]:
    """The bridge's attributes as (name, printed value). The mock's bridge is
    built with VLAN filtering, so the vlan_* attributes are there.
    designated_root is printed from IFLA_BR_BRIDGE_ID, not IFLA_BR_ROOT_ID, as
    iproute2 6.1's bridge_print_opt() does: the bridge's own id, whoever is root
    (seen on the lab; `bridge_slave`'s designated_root is the port's)."""
    mctx = br.multicast_ctx
    return [("forward_delay", _clock_t(br.forward_delay)), ("hello_time", _clock_t(br.hello_time)),
            ("max_age", _clock_t(br.max_age)), ("ageing_time", _clock_t(br.ageing_time)),
            ("stp_state", br.stp_enabled), ("priority", br.priority), ("vlan_filtering", int(br.vlan_enabled)),
            ("vlan_protocol", "802.1Q" if br.vlan_proto == 0x8100 else "802.1ad"),
            ("bridge_id", bridge_id_str(br.bridge_id)), ("designated_root", bridge_id_str(br.bridge_id)),
            ("root_port", br.root_port), ("root_path_cost", br.root_path_cost),
            ("topology_change", int(br.topology_change)),
            ("topology_change_detected", int(br.topology_change_detected)),
            ("hello_timer", _timer(br.hello_timer)), ("tcn_timer", _timer(br.tcn_timer)),
            ("topology_change_timer", _timer(br.topology_change_timer)), ("gc_timer", _timer(br.gc_timer)),
            ("vlan_default_pvid", br.default_pvid), ("vlan_stats_enabled", 0), ("vlan_stats_per_port", 0),
            ("group_fwd_mask", f"{br.group_fwd_mask:#x}" if br.group_fwd_mask else "0"),
            ("group_address", "01:80:c2:00:00:00"), ("mcast_snooping", int(br.multicast_enabled)),
            ("no_linklocal_learn", 0), ("mcast_vlan_snooping", 0), ("mcast_router", mctx.multicast_router),
            ("mcast_query_use_ifaddr", int(mctx.query_use_ifaddr)), ("mcast_querier", int(mctx.querier)),
            ("mcast_hash_elasticity", mctx.hash_elasticity), ("mcast_hash_max", mctx.hash_max),
            ("mcast_last_member_count", mctx.last_member_count),
            ("mcast_startup_query_count", mctx.startup_query_count),
            ("mcast_last_member_interval", _clock_t(mctx.last_member_interval)),
            ("mcast_membership_interval", _clock_t(mctx.membership_interval)),
            ("mcast_querier_interval", _clock_t(mctx.querier_interval)),
            ("mcast_query_interval", _clock_t(mctx.query_interval)),
            ("mcast_query_response_interval", _clock_t(mctx.query_response_interval)),
            ("mcast_startup_query_interval", _clock_t(mctx.startup_query_interval)),
            ("mcast_stats_enabled", int(mctx.stats_enabled)), ("mcast_igmp_version", mctx.igmp_version),
            ("mcast_mld_version", mctx.mld_version), ("nf_call_iptables", int(br.nf_call_iptables)),
            ("nf_call_ip6tables", int(br.nf_call_ip6tables)), ("nf_call_arptables", int(br.nf_call_arptables))]


def bridge_slave_print_opt(port) -> list[tuple[str, object]]:
    """A port's attributes as (name, printed value); those the mock does not
    model are the kernel's defaults (guard, root_block, fastleave, proxy_arp_wifi,
    mcast_to_unicast, neigh_suppress, vlan_tunnel, locked off)."""
    def on(flag: int) -> str:
        return "on" if port.flags & flag else "off"

    return [("state", BR_STATE_NAMES[port.state]), ("priority", port.priority), ("cost", port.path_cost),
            ("hairpin", on(BR_HAIRPIN_MODE)), ("guard", "off"), ("root_block", "off"), ("fastleave", "off"),
            ("learning", on(BR_LEARNING)), ("flood", on(BR_FLOOD)), ("port_id", f"{port.port_id:#x}"),
            ("port_no", f"{port.port_no:#x}"), ("designated_port", port.designated_port),
            ("designated_cost", port.designated_cost),
            ("designated_bridge", bridge_id_str(port.designated_bridge)),
            ("designated_root", bridge_id_str(port.designated_root)), ("hold_timer", _timer(port.hold_timer)),
            ("message_age_timer", _timer(port.message_age_timer)),
            ("forward_delay_timer", _timer(port.forward_delay_timer)),
            ("topology_change_ack", int(port.topology_change_ack)), ("config_pending", int(port.config_pending)),
            ("proxy_arp", on(BR_PROXYARP)), ("proxy_arp_wifi", "off"),
            ("mcast_router", port.multicast_ctx.multicast_router), ("mcast_fast_leave", "off"),
            ("mcast_flood", on(BR_MCAST_FLOOD)), ("bcast_flood", on(BR_BCAST_FLOOD)), ("mcast_to_unicast", "off"),
            ("neigh_suppress", "off"), ("group_fwd_mask", 0), ("group_fwd_mask_str", "0x0"),
            ("vlan_tunnel", "off"), ("isolated", on(BR_ISOLATED)), ("locked", "off")]
