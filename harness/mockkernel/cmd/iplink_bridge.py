"""`ip link ... type bridge` options (iproute2 6.1 ip/iplink_bridge.c bridge_parse_opt()),
and a port's `type bridge_slave` ones (ip/iplink_bridge_slave.c bridge_slave_parse_opt()).

Each option a prefix of its keyword (matches()), its value a base-0 number of the
attribute's width; a bad one is `invarg("invalid NAME")`. The options the mock's
bridge models become IFLA_BR_* values by name for br_changelink()
(bridge/br_device.py); the rest that iproute2 accepts are not modelled.
"""
from __future__ import annotations

from harness.mockkernel.cmd.args import ToolError, c_uint, not_modelled
from harness.mockkernel.cmd.iputils import invarg, matches, parse_on_off

# (keyword, the attribute's largest value), in bridge_parse_opt()'s order: the first a token matches wins
MODELLED = (("forward_delay", 0xFFFFFFFF), ("hello_time", 0xFFFFFFFF), ("max_age", 0xFFFFFFFF),
            ("ageing_time", 0xFFFFFFFF), ("stp_state", 0xFFFFFFFF), ("priority", 0xFFFF),
            ("vlan_filtering", 0xFF), ("vlan_protocol", None), ("group_fwd_mask", 0xFFFF),
            ("group_address", None), ("no_linklocal_learn", None), ("fdb_flush", None),
            ("vlan_default_pvid", 0xFFFF), ("vlan_stats_enabled", None), ("vlan_stats_per_port", None),
            ("mcast_router", None), ("mcast_snooping", 0xFF))
# the other options bridge_parse_opt() knows, after those (prefix matches, as there)
NOT_MODELLED = ("mcast_vlan_snooping", "mcast_query_use_ifaddr", "mcast_querier", "mcast_hash_elasticity",
                "mcast_hash_max", "mcast_last_member_count", "mcast_startup_query_count",
                "mcast_last_member_interval", "mcast_membership_interval", "mcast_querier_interval",
                "mcast_query_interval", "mcast_query_response_interval", "mcast_startup_query_interval",
                "mcast_stats_enabled", "mcast_igmp_version", "mcast_mld_version", "nf_call_iptables",
                "nf_call_ip6tables", "nf_call_arptables")


def bridge_parse_opt(tokens) -> dict:
    """The options after `type bridge`, as {IFLA_BR name: value}."""
    data: dict = {}
    while tokens:
        token = tokens.pop()
        keyword = next((name for name, _ in MODELLED if matches(token, name) and name != "no_linklocal_learn"),
                       "no_linklocal_learn" if token == "no_linklocal_learn" else None)
        if keyword is None:
            keyword = next((name for name in NOT_MODELLED
                            if (token == name if name == "mcast_vlan_snooping" else matches(token, name))), None)
            if keyword is not None:
                raise not_modelled(f"ip link type bridge {keyword}")
            if matches(token, "help"):
                raise ToolError("Usage: ... bridge [ fdb_flush ]", 255)
            raise ToolError(f'bridge: unknown command "{token}"?', 255)
        largest = dict(MODELLED)[keyword]
        if largest is None:
            raise not_modelled(f"ip link type bridge {keyword}")
        value_text = tokens.pop()
        value = c_uint(value_text)
        if value is None or value > largest:
            raise invarg(f"invalid {keyword}", value_text)
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
