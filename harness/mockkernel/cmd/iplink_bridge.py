"""`ip link ... type bridge` options (iproute2 6.1 ip/iplink_bridge.c bridge_parse_opt()),
and a port's `type bridge_slave` ones (ip/iplink_bridge_slave.c bridge_slave_parse_opt()).

Each option a prefix of its keyword (matches()), its value a base-0 number of the
attribute's width; a bad one is `invarg("invalid NAME")`. The options the mock's
bridge models become IFLA_BR_* values by name for br_changelink()
(bridge/br_device.py); the rest that iproute2 accepts are not modelled, nor are
IGMPv3/MLDv2 snooping (mcast_igmp_version 3, mcast_mld_version 2).
"""
from __future__ import annotations

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
