"""IPv6 address configuration (net/ipv6/addrconf.c, include/net/addrconf.h).

Every registered device gets an `Inet6Dev` (ipv6_add_dev() at
NETDEV_REGISTER, also with disable_ipv6 set) hung off `dev.ip6_ptr`, with its
`cnf` (struct ipv6_devconf) copied from conf/default and its own
net.ipv6.conf.DEV.* sysctls (addrconf_sysctl_register()); conf/all and
conf/default exist from the namespace's start (addrconf_init_net()). Writes go
through the kernel's handlers: forwarding and disable_ipv6 written to `all`
move `default` and every device (addrconf_fixup_forwarding(),
addrconf_disable_ipv6()); a device's mtu stays within [1280, dev->mtu]
(addrconf_sysctl_mtu()); addr_gen_mode takes 0..3, stable-privacy (2) only
with a stable_secret, and a change makes the device's link-local at once
(addrconf_sysctl_addr_gen_mode()).

Addresses: `ip -6 addr add` is inet6_addr_add(): the device must have IPv6 on
(EACCES "IPv6 is disabled on this device"), the address is not multicast,
unspecified or (off lo) loopback; it joins the solicited-node group, gets its
prefix route at once (unless noprefixroute) and starts DAD. With DAD off for
it (accept_dad < 1 on the device and on all, nodad, lo) it is usable at
once; else it stays tentative while `dad_transmits` neighbour solicitations
go out `retrans_time` apart after a random delay up to
router_solicitation_delay, and becomes usable (its local route inserted,
__ipv6_ifa_notify(RTM_NEWADDR)) if nobody claimed it. addr_list keeps the
kernel's order: by source scope, global before link-local, the newest first
within a scope (ipv6_link_dev_addr()).

Link-local addresses: a device coming up (or IPv6 turned on for it) makes
fe80::/64 + EUI-64 of its MAC (addrconf_addr_gen(), mode eui64), a random
interface id (mode random) or none (mode none); lo gets ::1/128
(init_loopback()). Going down, or disable_ipv6, removes every address
(addrconf_ifdown()).

Source selection (ipv6_dev_get_saddr()) follows RFC 6724's rules as the
kernel ranks them: same address, scope, avoid deprecated/tentative, the
outgoing interface, longest matching prefix.

Left out: SLAAC from router advertisements, temporary (privacy) addresses,
stable-privacy link-locals (stable_secret is not modelled), address
lifetimes, keep_addr_on_down, optimistic DAD, anycast addresses.
"""
from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass

from harness.mockkernel.core.dev import dev_mc_add, dev_mc_del
from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.core.rtnetlink import (NETDEV_CHANGEMTU, NETDEV_DOWN, NETDEV_REGISTER, NETDEV_UNREGISTER,
                                              NETDEV_UP, NLM_F_CREATE, neigh_ifdown,
                                              register_netdevice_notifier)
from harness.mockkernel.core.sysctl import (INT_MAX, UINT_MAX, CtlTable, ProcError, Sysctls, proc_dointvec,
                                            proc_dointvec_jiffies, proc_dointvec_minmax, proc_dointvec_ms_jiffies,
                                            proc_dou8vec_minmax, proc_douintvec_minmax, proc_get_long)
from harness.mockkernel.ipv6 import route
from harness.mockkernel.net import RT_TABLE_LOCAL, RT_TABLE_MAIN, RTN_MULTICAST

IPV6_MIN_MTU = 1280
INFINITY_LIFE_TIME = 0xFFFFFFFF

# include/net/ipv6.h ifa->scope (ipv6_addr_scope())
IFA_GLOBAL, IFA_HOST, IFA_LINK, IFA_SITE = 0x00, 0x10, 0x20, 0x40
# include/net/ipv6.h IPV6_ADDR_SCOPE_*: what ipv6_addr_src_scope() ranks by
IPV6_ADDR_SCOPE_NODELOCAL, IPV6_ADDR_SCOPE_LINKLOCAL, IPV6_ADDR_SCOPE_SITELOCAL = 0x01, 0x02, 0x05
IPV6_ADDR_SCOPE_GLOBAL = 0x0E
# include/uapi/linux/if_addr.h
IFA_F_SECONDARY, IFA_F_NODAD, IFA_F_OPTIMISTIC, IFA_F_DADFAILED = 0x01, 0x02, 0x04, 0x08
IFA_F_HOMEADDRESS, IFA_F_DEPRECATED, IFA_F_TENTATIVE, IFA_F_PERMANENT = 0x10, 0x20, 0x40, 0x80
IFA_F_MANAGETEMPADDR, IFA_F_NOPREFIXROUTE, IFA_F_MCAUTOJOIN, IFA_F_STABLE_PRIVACY = 0x100, 0x200, 0x400, 0x800
# include/uapi/linux/if_link.h enum in6_addr_gen_mode
IN6_ADDR_GEN_MODE_EUI64, IN6_ADDR_GEN_MODE_NONE = 0, 1
IN6_ADDR_GEN_MODE_STABLE_PRIVACY, IN6_ADDR_GEN_MODE_RANDOM = 2, 3
ADDR_GEN_MODES = {"eui64": 0, "none": 1, "stable_secret": 2, "random": 3}
# include/net/addrconf.h: IPV6_MAX_ADDRESSES; the ND table's retrans_time (net/ipv6/ndisc.c nd_tbl)
IPV6_MAX_ADDRESSES = 16
ND_RETRANS_TIME = 1.0
HZ = 250

IN6ADDR_ANY = bytes(16)
IN6ADDR_LOOPBACK = bytes(15) + b"\x01"
IN6ADDR_LINKLOCAL_ALLNODES = bytes.fromhex("ff020000000000000000000000000001")
IN6ADDR_LINKLOCAL_ALLROUTERS = bytes.fromhex("ff020000000000000000000000000002")
IN6ADDR_INTERFACELOCAL_ALLNODES = bytes.fromhex("ff010000000000000000000000000001")
IN6ADDR_INTERFACELOCAL_ALLROUTERS = bytes.fromhex("ff010000000000000000000000000002")
IN6ADDR_SITELOCAL_ALLROUTERS = bytes.fromhex("ff050000000000000000000000000002")
LINKLOCAL_PREFIX = bytes.fromhex("fe800000000000000000000000000000")


# addresses --------------------------------------------------------------------
def ipv6_addr_is_multicast(addr: bytes) -> bool:
    return addr[0] == 0xFF


def ipv6_addr_is_linklocal(addr: bytes) -> bool:
    """fe80::/10."""
    return addr[0] == 0xFE and addr[1] & 0xC0 == 0x80


def ipv6_addr_scope(addr: bytes) -> int:
    """The IFA_* scope an address of this kind gets (__ipv6_addr_type())."""
    if addr[0] == 0xFF:
        return {0x1: IFA_HOST, 0x2: IFA_LINK, 0x5: IFA_SITE}.get(addr[1] & 0x0F, IFA_GLOBAL)
    if addr == IN6ADDR_LOOPBACK:
        return IFA_HOST
    if addr[0] == 0xFE and addr[1] & 0xC0 == 0x80:
        return IFA_LINK
    if addr[0] == 0xFE and addr[1] & 0xC0 == 0xC0:
        return IFA_SITE
    return IFA_GLOBAL


def ipv6_addr_src_scope(addr: bytes) -> int:
    """__ipv6_addr_src_scope(): the IPV6_ADDR_SCOPE_* rank (multicast by its scope field)."""
    if addr[0] == 0xFF:
        return addr[1] & 0x0F
    return {IFA_HOST: IPV6_ADDR_SCOPE_NODELOCAL, IFA_LINK: IPV6_ADDR_SCOPE_LINKLOCAL,
            IFA_SITE: IPV6_ADDR_SCOPE_SITELOCAL}.get(ipv6_addr_scope(addr), IPV6_ADDR_SCOPE_GLOBAL)


def addrconf_addr_solict_mult(addr: bytes) -> bytes:
    """The solicited-node group ff02::1:ffXX:XXXX of an address (RFC 4291 2.7.1)."""
    return bytes.fromhex("ff0200000000000000000001ff") + addr[13:]


def ipv6_prefix_equal(a: bytes, b: bytes, plen: int) -> bool:
    whole, bits = divmod(plen, 8)
    if a[:whole] != b[:whole]:
        return False
    return not bits or (a[whole] ^ b[whole]) >> (8 - bits) == 0


def ipv6_addr_diff(a: bytes, b: bytes) -> int:
    """The length of the common prefix of two addresses (__ipv6_addr_diff())."""
    xor = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
    return 128 - xor.bit_length()


def ipv6_generate_eui64(mac: bytes) -> bytes:
    """addrconf_ifid_eui48(): the MAC split by ff:fe, universal/local bit flipped."""
    return bytes([mac[0] ^ 0x02]) + mac[1:3] + b"\xff\xfe" + mac[3:6]


# the sysctl tree: struct ipv6_devconf and its ctl_table ------------------------
class Ipv6DevConf:
    """struct ipv6_devconf: one scope's values (all, default or a device's
    `Inet6Dev.cnf`), as ints under the kernel's field names. `idev` is the
    device's Inet6Dev, None for all/default."""

    def __init__(self, scope: str, idev: Inet6Dev | None) -> None:
        self.scope, self.idev = scope, idev


@dataclass(frozen=True)
class DevconfEntry:
    """One net/ipv6/conf/*/ entry: the sysctl's name, the ipv6_devconf field
    it points at (ctl_table.data), the kernel's default (ipv6_devconf_dflt),
    its handler and bounds."""

    name: str
    field: str
    default: int
    handler: Callable = proc_dointvec
    extra1: int | None = None
    extra2: int | None = None


def _addrconf_sysctl_forward(sysctls, table, key, text):
    value = proc_dointvec(sysctls, table, key, text)
    addrconf_fixup_forwarding(table.extra2, table.extra1, value)
    return value


def _addrconf_sysctl_disable(sysctls, table, key, text):
    value = proc_dointvec(sysctls, table, key, text)
    addrconf_disable_ipv6(table.extra2, table.extra1, value)
    return value


def _addrconf_sysctl_mtu(sysctls, table, key, text):
    """[IPV6_MIN_MTU, the device's MTU] (INT_MAX for all/default)."""
    cnf = table.extra1
    high = cnf.idev.dev.mtu if cnf.idev is not None else INT_MAX
    return proc_get_long(text.split()[0] if text.split() else "", IPV6_MIN_MTU, high)


def _addrconf_sysctl_addr_gen_mode(sysctls, table, key, text):
    value = proc_get_long(text.split()[0] if text.split() else "", -INT_MAX - 1, INT_MAX)
    if value not in ADDR_GEN_MODES.values() or value == IN6_ADDR_GEN_MODE_STABLE_PRIVACY:
        raise ProcError  # check_addr_gen_mode(); stable-privacy needs a stable_secret (none here)
    addrconf_set_addr_gen_mode(table.extra2, table.extra1, value)
    return value


def _addrconf_sysctl_force_forwarding(sysctls, table, key, text):
    """0..1; written to `all`, it moves every device (not default)
    (addrconf_force_forward_change(), 6.17)."""
    value = proc_get_long(text.split()[0] if text.split() else "", 0, 1)
    cnf, net = table.extra1, table.extra2
    if cnf is net.ipv6.devconf_all:
        for dev in net.devices.values():
            if dev.ip6_ptr is not None:
                net.sysctl.store(_sysctl_key(dev.name, "force_forwarding"), value)
    return value


def _addrconf_sysctl_ignore_linkdown(sysctls, table, key, text):
    """addrconf_fixup_linkdown(): written to `all`, it moves default and every device."""
    value = proc_dointvec(sysctls, table, key, text)
    cnf, net = table.extra1, table.extra2
    if cnf is net.ipv6.devconf_all:
        _set_everywhere(net, "ignore_routes_with_linkdown", value)
    return value


_D = DevconfEntry
# net/ipv6/addrconf.c addrconf_sysctl[], every entry a 6.18 namespace lists (stable_secret,
# which reads EIO until set, is left out)
DEVCONF_TABLE = (
    _D("forwarding", "forwarding", 0, _addrconf_sysctl_forward),
    _D("hop_limit", "hop_limit", 64, proc_dointvec_minmax, 1, 255),
    _D("mtu", "mtu6", IPV6_MIN_MTU, _addrconf_sysctl_mtu),
    _D("accept_ra", "accept_ra", 1),
    _D("accept_redirects", "accept_redirects", 1),
    _D("autoconf", "autoconf", 1),
    _D("dad_transmits", "dad_transmits", 1),
    _D("router_solicitations", "rtr_solicits", -1, proc_dointvec_minmax, -1),
    _D("router_solicitation_interval", "rtr_solicit_interval", 4, proc_dointvec_jiffies),
    _D("router_solicitation_max_interval", "rtr_solicit_max_interval", 3600, proc_dointvec_jiffies),
    _D("router_solicitation_delay", "rtr_solicit_delay", 1, proc_dointvec_jiffies),
    _D("force_mld_version", "force_mld_version", 0),
    _D("mldv1_unsolicited_report_interval", "mldv1_unsolicited_report_interval", 10000,
       proc_dointvec_ms_jiffies),
    _D("mldv2_unsolicited_report_interval", "mldv2_unsolicited_report_interval", 1000,
       proc_dointvec_ms_jiffies),
    _D("use_tempaddr", "use_tempaddr", 0),
    _D("temp_valid_lft", "temp_valid_lft", 604800),
    _D("temp_prefered_lft", "temp_prefered_lft", 86400),
    _D("regen_min_advance", "regen_min_advance", 2),
    _D("regen_max_retry", "regen_max_retry", 3),
    _D("max_desync_factor", "max_desync_factor", 600),
    _D("max_addresses", "max_addresses", IPV6_MAX_ADDRESSES),
    _D("accept_ra_defrtr", "accept_ra_defrtr", 1),
    _D("ra_defrtr_metric", "ra_defrtr_metric", 1024, proc_douintvec_minmax, 1, UINT_MAX),
    _D("accept_ra_min_hop_limit", "accept_ra_min_hop_limit", 1),
    _D("accept_ra_min_lft", "accept_ra_min_lft", 0),
    _D("accept_ra_pinfo", "accept_ra_pinfo", 1),
    _D("ra_honor_pio_life", "ra_honor_pio_life", 0, proc_dou8vec_minmax, 0, 1),
    _D("ra_honor_pio_pflag", "ra_honor_pio_pflag", 0, proc_dou8vec_minmax, 0, 1),
    _D("accept_ra_rtr_pref", "accept_ra_rtr_pref", 1),
    _D("router_probe_interval", "rtr_probe_interval", 60, proc_dointvec_jiffies),
    _D("accept_ra_rt_info_min_plen", "accept_ra_rt_info_min_plen", 0),
    _D("accept_ra_rt_info_max_plen", "accept_ra_rt_info_max_plen", 0),
    _D("proxy_ndp", "proxy_ndp", 0),
    _D("accept_source_route", "accept_source_route", 0),
    _D("optimistic_dad", "optimistic_dad", 0),
    _D("use_optimistic", "use_optimistic", 0),
    _D("disable_ipv6", "disable_ipv6", 0, _addrconf_sysctl_disable),
    _D("accept_dad", "accept_dad", 1),
    _D("force_tllao", "force_tllao", 0),
    _D("ndisc_notify", "ndisc_notify", 0),
    _D("suppress_frag_ndisc", "suppress_frag_ndisc", 1),
    _D("accept_ra_from_local", "accept_ra_from_local", 0),
    _D("accept_ra_mtu", "accept_ra_mtu", 1),
    _D("use_oif_addrs_only", "use_oif_addrs_only", 0),
    _D("ignore_routes_with_linkdown", "ignore_routes_with_linkdown", 0, _addrconf_sysctl_ignore_linkdown),
    _D("drop_unicast_in_l2_multicast", "drop_unicast_in_l2_multicast", 0),
    _D("drop_unsolicited_na", "drop_unsolicited_na", 0),
    _D("keep_addr_on_down", "keep_addr_on_down", 0),
    _D("seg6_enabled", "seg6_enabled", 0),
    _D("enhanced_dad", "enhanced_dad", 1),
    _D("addr_gen_mode", "addr_gen_mode", IN6_ADDR_GEN_MODE_EUI64, _addrconf_sysctl_addr_gen_mode),
    _D("disable_policy", "disable_policy", 0),
    _D("ndisc_tclass", "ndisc_tclass", 0, proc_dointvec_minmax, 0, 255),
    _D("rpl_seg_enabled", "rpl_seg_enabled", 0, proc_dointvec_minmax, 0, 1),
    _D("ioam6_enabled", "ioam6_enabled", 0, proc_dou8vec_minmax, 0, 1),
    _D("ioam6_id", "ioam6_id", 0xFFFF, proc_dointvec_minmax, 0, 0xFFFF),
    _D("ioam6_id_wide", "ioam6_id_wide", UINT_MAX, proc_douintvec_minmax, 0, UINT_MAX),
    _D("ndisc_evict_nocarrier", "ndisc_evict_nocarrier", 1, proc_dou8vec_minmax, 0, 1),
    _D("accept_untracked_na", "accept_untracked_na", 0, proc_dointvec_minmax, 0, 2),
    _D("force_forwarding", "force_forwarding", 0, _addrconf_sysctl_force_forwarding, 0, 1),
)
# ipv6_devconf (conf/all) differs from ipv6_devconf_dflt here
DEVCONF_ALL_DEFAULTS = {"accept_dad": 0}
_SPECIAL_HANDLERS = (_addrconf_sysctl_forward, _addrconf_sysctl_disable, _addrconf_sysctl_mtu,
                     _addrconf_sysctl_addr_gen_mode, _addrconf_sysctl_ignore_linkdown,
                     _addrconf_sysctl_force_forwarding)


def _sysctl_key(scope: str, name: str) -> str:
    return f"net.ipv6.conf.{scope}.{name}"


def addrconf_sysctl_register(net, cnf: Ipv6DevConf) -> None:
    """__addrconf_sysctl_register(): conf/SCOPE/* pointing at `cnf`; entries
    without bounds get extra1 = the conf (its idev), extra2 = net, as the kernel sets them."""
    sysctls: Sysctls = net.sysctl
    table = {}
    for entry in DEVCONF_TABLE:
        if entry.handler in _SPECIAL_HANDLERS:
            table[_sysctl_key(cnf.scope, entry.name)] = CtlTable(entry.default, entry.handler, cnf, net)
        else:
            table[_sysctl_key(cnf.scope, entry.name)] = CtlTable(entry.default, entry.handler, entry.extra1,
                                                                 entry.extra2)
    sysctls.register(table)
    for entry in DEVCONF_TABLE:
        key = _sysctl_key(cnf.scope, entry.name)
        sysctls.data[key] = (cnf, entry.field)
        sysctls.store(key, getattr(cnf, entry.field))


def _set_everywhere(net, field_name: str, value: int) -> None:
    """The value in conf/default and in every device's conf."""
    name = next(e.name for e in DEVCONF_TABLE if e.field == field_name)
    net.sysctl.store(_sysctl_key("default", name), value)
    for dev in net.devices.values():
        if dev.ip6_ptr is not None:
            net.sysctl.store(_sysctl_key(dev.name, name), value)


# struct inet6_dev / inet6_ifaddr -------------------------------------------------
@dataclass(eq=False)
class Inet6Ifaddr:
    """struct inet6_ifaddr: one address of a device. `rt` is its local route
    (the FIB6's, inserted once the address is usable); `dad_probes` the
    solicitations DAD still has to send."""

    addr: bytes
    prefix_len: int
    scope: int
    flags: int
    idev: Inet6Dev
    rt: object | None = None
    dad_probes: int = 0
    dad_nonce: bytes = b""
    dead: bool = False


class Inet6Dev:
    """struct inet6_dev: a device's IPv6 state. `mc_list` counts the users of
    each multicast group joined (ipv6_dev_mc_inc()/dec())."""

    def __init__(self, dev, cnf: Ipv6DevConf) -> None:
        self.dev = dev
        self.cnf = cnf
        self.addr_list: list[Inet6Ifaddr] = []
        self.mc_list: dict[bytes, int] = {}
        self.if_ready = False  # IF_READY: up with a carrier (addrconf_link_ready())


def __in6_dev_get(dev) -> Inet6Dev | None:
    """dev->ip6_ptr: every registered device has one, IPv6 disabled on it or not."""
    return dev.ip6_ptr


def _mc_loaded(dev, group: bytes) -> bool:
    """igmp6_group_added(): groups of link-local scope or wider go on an Ethernet
    device's multicast list (ndisc_mc_map() maps nothing for lo)."""
    return not dev.is_loopback and group[1] & 0x0F >= IPV6_ADDR_SCOPE_LINKLOCAL


def ipv6_dev_mc_inc(dev, group: bytes) -> None:
    """Join `group` (mcast.c __ipv6_dev_mc_inc()). MLD reports are not modelled."""
    idev = dev.ip6_ptr
    users = idev.mc_list.get(group, 0)
    idev.mc_list[group] = users + 1
    if not users and _mc_loaded(dev, group):
        dev_mc_add(dev, ipv6_eth_mc_map(group))


def ipv6_dev_mc_dec(dev, group: bytes) -> None:
    idev = dev.ip6_ptr
    users = idev.mc_list.get(group, 0) - 1
    if users > 0:
        idev.mc_list[group] = users
    elif idev.mc_list.pop(group, None) is not None and _mc_loaded(dev, group):
        dev_mc_del(dev, ipv6_eth_mc_map(group))


def ipv6_eth_mc_map(group: bytes) -> bytes:
    """33:33 and the group's last 32 bits (RFC 2464 7)."""
    return b"\x33\x33" + group[12:]


def ipv6_chk_mcast_addr(dev, group: bytes, src: bytes | None = None) -> bool:
    """mcast.c ipv6_chk_mcast_addr(): the device joined `group` (source filters
    are not modelled: every source passes)."""
    idev = dev.ip6_ptr
    return idev is not None and group in idev.mc_list


def ipv6_add_dev(net, dev) -> Inet6Dev:
    """ipv6_add_dev(): conf copied from default (mtu from the device; lo takes
    no DAD and no temporary addresses), the sysctls, the all-nodes groups."""
    cnf = Ipv6DevConf(dev.name, None)
    default = net.ipv6.devconf_dflt
    for entry in DEVCONF_TABLE:
        setattr(cnf, entry.field, getattr(default, entry.field))
    cnf.addr_gen_mode = IN6_ADDR_GEN_MODE_EUI64 if default.addr_gen_mode == IN6_ADDR_GEN_MODE_STABLE_PRIVACY \
        else default.addr_gen_mode
    cnf.mtu6 = dev.mtu
    if dev.is_loopback:
        cnf.accept_dad = cnf.use_tempaddr = -1
    idev = Inet6Dev(dev, cnf)
    cnf.idev = idev
    idev.if_ready = dev.up
    addrconf_sysctl_register(net, cnf)
    dev.ip6_ptr = idev
    ipv6_dev_mc_inc(dev, IN6ADDR_INTERFACELOCAL_ALLNODES)
    ipv6_dev_mc_inc(dev, IN6ADDR_LINKLOCAL_ALLNODES)
    if cnf.forwarding and not dev.is_loopback:
        ipv6_dev_mc_inc(dev, IN6ADDR_LINKLOCAL_ALLROUTERS)
    return idev


# forwarding, disable_ipv6, addr_gen_mode ------------------------------------------
def _dev_forward_change(idev: Inet6Dev) -> None:
    """dev_forward_change(): a router joins the all-routers groups."""
    dev = idev.dev
    if dev.is_loopback:
        return
    groups = (IN6ADDR_LINKLOCAL_ALLROUTERS, IN6ADDR_INTERFACELOCAL_ALLROUTERS, IN6ADDR_SITELOCAL_ALLROUTERS)
    for group in groups:
        (ipv6_dev_mc_inc if idev.cnf.forwarding else ipv6_dev_mc_dec)(dev, group)


def addrconf_fixup_forwarding(net, cnf: Ipv6DevConf, value: int) -> None:
    """`all` moves default and every device (addrconf_forward_change(), which
    also clears each device's force_forwarding when it is 0); a device's own
    flag changes only it."""
    old = cnf.forwarding
    cnf.forwarding = value
    if cnf is net.ipv6.devconf_dflt:
        return
    if cnf is net.ipv6.devconf_all:
        net.sysctl.store(_sysctl_key("default", "forwarding"), value)
        for dev in net.devices.values():
            idev = dev.ip6_ptr
            if idev is not None:
                changed = (not idev.cnf.forwarding) != (not value)
                if not value:  # all.forwarding 0 turns every device's force_forwarding off too
                    net.sysctl.store(_sysctl_key(dev.name, "force_forwarding"), 0)
                net.sysctl.store(_sysctl_key(dev.name, "forwarding"), value)
                if changed:
                    _dev_forward_change(idev)
    elif (not old) != (not value):
        _dev_forward_change(cnf.idev)


def addrconf_disable_ipv6(net, cnf: Ipv6DevConf, value: int) -> None:
    """`default` only stores; `all` stores in default and every device and runs
    each one's change; a device's change runs as NETDEV_DOWN (disabled) or
    NETDEV_UP (enabled) for IPv6 (dev_disable_change())."""
    old = cnf.disable_ipv6
    cnf.disable_ipv6 = value
    if cnf is net.ipv6.devconf_dflt:
        return
    if cnf is net.ipv6.devconf_all:
        net.sysctl.store(_sysctl_key("default", "disable_ipv6"), value)
        for dev in list(net.devices.values()):
            idev = dev.ip6_ptr
            if idev is not None:
                changed = (not idev.cnf.disable_ipv6) != (not value)
                net.sysctl.store(_sysctl_key(dev.name, "disable_ipv6"), value)
                if changed:
                    _dev_disable_change(net, idev)
    elif (not old) != (not value):
        _dev_disable_change(net, cnf.idev)


def _dev_disable_change(net, idev: Inet6Dev) -> None:
    addrconf_notify(net, NETDEV_DOWN if idev.cnf.disable_ipv6 else NETDEV_UP, idev.dev)


def addrconf_set_addr_gen_mode(net, cnf: Ipv6DevConf, value: int) -> None:
    """A device whose mode changes gets its link-local by the new mode at once
    (addrconf_init_auto_addrs()); `all` sets default and every device."""
    if cnf.idev is not None:
        if cnf.addr_gen_mode != value:
            cnf.addr_gen_mode = value
            addrconf_dev_config(net, cnf.idev.dev)
    elif cnf is net.ipv6.devconf_all:
        net.sysctl.store(_sysctl_key("default", "addr_gen_mode"), value)
        for dev in list(net.devices.values()):
            idev = dev.ip6_ptr
            if idev is not None and idev.cnf.addr_gen_mode != value:
                net.sysctl.store(_sysctl_key(dev.name, "addr_gen_mode"), value)
                addrconf_dev_config(net, dev)


def inet6_set_link_af_addr_gen_mode(net, dev, mode: int) -> None:
    """`ip link set DEV addrgenmode M` (inet6_set_link_af()): stored for the
    next link-local, none made or removed now; stable-privacy needs a secret."""
    if mode == IN6_ADDR_GEN_MODE_STABLE_PRIVACY:
        raise RtnlError(errno.EINVAL)
    net.sysctl.store(_sysctl_key(dev.name, "addr_gen_mode"), mode)


# the netdevice notifier -----------------------------------------------------------
def addrconf_notify(net, event: int, dev) -> None:
    """addrconf_notify(): a new device gets its inet6_dev (with an MTU IPv6 can
    use); coming up (with IPv6 on) it gets its link-local address, or ::1 on lo;
    going down it loses them all; unregistered, its inet6_dev goes (its sysctls go
    with the device's). An MTU under IPV6_MIN_MTU stops IPv6 on the device as
    unregistering does (lo: as going down), and one at or over it again gives the
    device a new inet6_dev and, if it is up, its link-local address
    (NETDEV_CHANGEMTU: addrconf_ifdown(dev, dev != net->loopback_dev), else
    ipv6_add_dev() and on as for NETDEV_UP)."""
    if event == NETDEV_REGISTER:
        if dev.mtu >= IPV6_MIN_MTU:
            ipv6_add_dev(net, dev)
        return
    idev = dev.ip6_ptr
    if event == NETDEV_CHANGEMTU:
        if dev.mtu < IPV6_MIN_MTU:
            if idev is not None and dev.is_loopback:
                addrconf_ifdown(net, idev)
            elif idev is not None:
                _addrconf_unregister(net, dev, idev)
            return
        if idev is not None:
            idev.cnf.mtu6 = dev.mtu
            net.sysctl.store(_sysctl_key(dev.name, "mtu"), dev.mtu)
            return
        idev = ipv6_add_dev(net, dev)
        if not dev.up:
            return
        event = NETDEV_UP
    if idev is None:
        return
    if event == NETDEV_UNREGISTER:
        _addrconf_unregister(net, dev, idev)
        return
    if event == NETDEV_UP:
        if idev.cnf.disable_ipv6 or not dev.up:
            return
        idev.if_ready = True
        if dev.is_loopback:
            init_loopback(net, idev)
        else:
            addrconf_dev_config(net, dev)
        addrconf_dad_run(net, idev)
    elif event == NETDEV_DOWN:
        addrconf_ifdown(net, idev)


def _addrconf_unregister(net, dev, idev: Inet6Dev) -> None:
    """addrconf_ifdown(dev, unregister=true): the addresses and routes go, then the
    inet6_dev with its conf/DEV sysctls (addrconf_sysctl_unregister(); the device's
    neigh/DEV entries, which neigh_parms_release() takes too, are left)."""
    addrconf_ifdown(net, idev)
    sysctls = net.sysctl
    for entry in DEVCONF_TABLE:
        key = _sysctl_key(dev.name, entry.name)
        for table in (sysctls.data, sysctls.tables, sysctls.values):
            table.pop(key, None)
    dev.ip6_ptr = None


def addrconf_ifdown(net, idev: Inet6Dev) -> None:
    """Every address goes (RTM_DELADDR each), routes through the device too."""
    idev.if_ready = False
    if not idev.dev.is_loopback:
        route.rt6_disable_ip(net, idev.dev)
        neigh_ifdown(net, net.nd_tbl, idev.dev)
    for ifp in list(idev.addr_list):
        _ipv6_del_addr(net, ifp)


def init_loopback(net, idev: Inet6Dev) -> None:
    """::1/128 scope host, usable at once."""
    if any(ifp.addr == IN6ADDR_LOOPBACK for ifp in idev.addr_list):
        return
    ifp = ipv6_add_addr(idev, IN6ADDR_LOOPBACK, 128, IFA_F_PERMANENT)
    ifp.flags &= ~IFA_F_TENTATIVE
    _ipv6_ifa_notify(net, "RTM_NEWADDR", ifp)


def addrconf_dev_config(net, dev) -> None:
    """addrconf_dev_config(): IPv6 on, the multicast route, the link-local."""
    idev = dev.ip6_ptr
    if idev.cnf.disable_ipv6:
        return
    addrconf_add_mroute(net, dev)
    addrconf_addr_gen(net, idev)


def addrconf_addr_gen(net, idev: Inet6Dev) -> None:
    """The link-local address by addr_gen_mode: fe80::/64 + EUI-64 of the MAC,
    or a random interface id, or none."""
    mode = idev.cnf.addr_gen_mode
    if mode == IN6_ADDR_GEN_MODE_EUI64:
        interface_id = ipv6_generate_eui64(idev.dev.mac)
    elif mode == IN6_ADDR_GEN_MODE_RANDOM:
        interface_id = net.random.randbytes(8)
    else:
        return
    addr = LINKLOCAL_PREFIX[:8] + interface_id
    if any(ifp.addr == addr for ifp in idev.addr_list):
        return
    ifp = ipv6_add_addr(idev, addr, 64, IFA_F_PERMANENT)
    addrconf_prefix_route(net, ifp)
    addrconf_dad_start(net, ifp)


def ipv6_add_addr(idev: Inet6Dev, addr: bytes, plen: int, flags: int) -> Inet6Ifaddr:
    """ipv6_add_addr(): refused for unusable addresses and duplicates; linked
    in by source scope, newest first (ipv6_link_dev_addr()); tentative unless nodad."""
    if addr == IN6ADDR_ANY:
        raise RtnlError(errno.EADDRNOTAVAIL, "ipv6: Invalid address")
    if ipv6_addr_is_multicast(addr) and not flags & IFA_F_MCAUTOJOIN:
        raise RtnlError(errno.EADDRNOTAVAIL, 'ipv6: Cannot assign multicast address without "IFA_F_MCAUTOJOIN" flag')
    if addr == IN6ADDR_LOOPBACK and not idev.dev.is_loopback:
        raise RtnlError(errno.EADDRNOTAVAIL, "ipv6: Cannot assign loopback address on this device")
    if any(ifp.addr == addr for ifp in idev.addr_list):
        raise RtnlError(errno.EEXIST, "ipv6: address already assigned")
    ifp = Inet6Ifaddr(addr, plen, ipv6_addr_scope(addr), flags if flags & IFA_F_NODAD else flags | IFA_F_TENTATIVE,
                      idev)
    scope = ipv6_addr_src_scope(addr)
    position = next((i for i, other in enumerate(idev.addr_list) if scope >= ipv6_addr_src_scope(other.addr)),
                    len(idev.addr_list))
    idev.addr_list.insert(position, ifp)
    return ifp


def inet6_addr_add(net, dev, addr: bytes, plen: int, flags: int) -> None:
    """`ip -6 addr add`: on a device with IPv6 on; the prefix route now, DAD next."""
    if plen > 128:
        raise RtnlError(errno.EINVAL, "ipv6: Invalid prefix length")
    idev = dev.ip6_ptr
    if idev.cnf.disable_ipv6:
        raise RtnlError(errno.EACCES, "ipv6: IPv6 is disabled on this device")
    if not dev.is_loopback:
        addrconf_add_mroute(net, dev)
    ifp = ipv6_add_addr(idev, addr, plen, flags | IFA_F_PERMANENT)
    if not flags & IFA_F_NOPREFIXROUTE:
        addrconf_prefix_route(net, ifp)
    addrconf_dad_start(net, ifp)


def inet6_addr_del(net, dev, addr: bytes, plen: int | None) -> None:
    """`ip -6 addr del`: the address with that prefix length (any, without one)."""
    idev = dev.ip6_ptr
    if idev is None or idev.cnf.disable_ipv6 and not idev.addr_list:
        raise RtnlError(errno.ENODEV) if idev is None else RtnlError(errno.EADDRNOTAVAIL, "ipv6: address not found")
    for ifp in idev.addr_list:
        if ifp.addr == addr and plen in (None, ifp.prefix_len):
            _ipv6_del_addr(net, ifp)
            return
    raise RtnlError(errno.EADDRNOTAVAIL, "ipv6: address not found")


def _ipv6_del_addr(net, ifp: Inet6Ifaddr) -> None:
    """ipv6_del_addr(): unlinked, its routes and its solicited-node group gone."""
    idev = ifp.idev
    ifp.dead = True
    idev.addr_list.remove(ifp)
    _ipv6_ifa_notify(net, "RTM_DELADDR", ifp)
    if not ifp.flags & IFA_F_NOPREFIXROUTE:
        cleanup_prefix_route(net, ifp)


def _ipv6_ifa_notify(net, event: str, ifp: Inet6Ifaddr) -> None:
    """__ipv6_ifa_notify(): RTM_NEWADDR inserts the local route, RTM_DELADDR
    leaves the solicited-node group and takes the local route out."""
    if event == "RTM_NEWADDR":
        if ifp.rt is None:
            ifp.rt = route.addrconf_f6i_alloc(net, ifp.idev.dev, ifp.addr)
            route.ip6_ins_rt(net, ifp.rt)
        return
    if not ifp.idev.dev.is_loopback:
        ipv6_dev_mc_dec(ifp.idev.dev, addrconf_addr_solict_mult(ifp.addr))
    if ifp.rt is not None:
        route.ip6_del_rt(net, ifp.rt)
        ifp.rt = None


# the routes addrconf makes (addrconf.c's calls into route.c) ------------------------
IP6_RT_PRIO_ADDRCONF = 256


def _prefix(addr: bytes, plen: int) -> bytes:
    whole, bits = divmod(plen, 8)
    out = bytearray(addr[:whole]) + bytes(16 - whole)
    if bits:
        out[whole] = addr[whole] & (0xFF << (8 - bits)) & 0xFF
    return bytes(out)


def addrconf_prefix_route(net, ifp: Inet6Ifaddr) -> None:
    """The on-link route of the address's prefix: main table, metric 256,
    proto kernel (an existing one is kept: ip6_route_add()'s EEXIST is ignored)."""
    cfg = route.Fib6Config(_prefix(ifp.addr, ifp.prefix_len), ifp.prefix_len, RT_TABLE_MAIN,
                           ifindex=ifp.idev.dev.ifindex, metric=IP6_RT_PRIO_ADDRCONF, protocol="kernel")
    try:
        route.ip6_route_add(net, cfg, NLM_F_CREATE)
    except RtnlError:
        pass


def cleanup_prefix_route(net, ifp: Inet6Ifaddr) -> None:
    """check_cleanup_prefix_route(): the prefix route goes with the last
    address of that prefix on the device."""
    if ifp.flags & IFA_F_NOPREFIXROUTE:
        return
    prefix = _prefix(ifp.addr, ifp.prefix_len)
    if any(other.prefix_len == ifp.prefix_len and _prefix(other.addr, other.prefix_len) == prefix
           and not other.flags & IFA_F_NOPREFIXROUTE for other in ifp.idev.addr_list):
        return
    cfg = route.Fib6Config(prefix, ifp.prefix_len, RT_TABLE_MAIN, ifindex=ifp.idev.dev.ifindex,
                           metric=IP6_RT_PRIO_ADDRCONF, protocol="kernel")
    try:
        route.ip6_route_del(net, cfg)
    except RtnlError:  # taken out already (ip -6 route del)
        pass


def addrconf_add_mroute(net, dev) -> None:
    """ff00::/8 in the local table, type multicast, metric 256."""
    cfg = route.Fib6Config(bytes([0xFF]) + bytes(15), 8, RT_TABLE_LOCAL, RTN_MULTICAST, ifindex=dev.ifindex,
                           metric=IP6_RT_PRIO_ADDRCONF, protocol="kernel")
    try:
        route.ip6_route_add(net, cfg, NLM_F_CREATE)
    except RtnlError:
        pass


# duplicate address detection --------------------------------------------------------
def _dad_enabled(net, ifp: Inet6Ifaddr) -> bool:
    idev = ifp.idev
    return not (idev.dev.is_loopback or (net.ipv6.devconf_all.accept_dad < 1 and idev.cnf.accept_dad < 1)
                or not ifp.flags & IFA_F_TENTATIVE or ifp.flags & IFA_F_NODAD)


def addrconf_dad_start(net, ifp: Inet6Ifaddr) -> None:
    """addrconf_dad_begin(): join the solicited-node group; without DAD the
    address is usable now, else solicitations start after a random delay up to
    router_solicitation_delay (on a device not ready, when it comes up)."""
    dev = ifp.idev.dev
    if not dev.is_loopback:
        ipv6_dev_mc_inc(dev, addrconf_addr_solict_mult(ifp.addr))
    if not _dad_enabled(net, ifp):
        ifp.flags &= ~(IFA_F_TENTATIVE | IFA_F_OPTIMISTIC | IFA_F_DADFAILED)
        addrconf_dad_completed(net, ifp)
        return
    if ifp.idev.if_ready:
        addrconf_dad_kick(net, ifp)


def addrconf_dad_kick(net, ifp: Inet6Ifaddr) -> None:
    """The first probe after a random number of jiffies below rtr_solicit_delay;
    with enhanced_dad (on the device or all) the probes carry a random nonce."""
    delay_jiffies = ifp.idev.cnf.rtr_solicit_delay * HZ or 1
    ifp.dad_probes = ifp.idev.cnf.dad_transmits
    if ifp.idev.cnf.enhanced_dad or net.ipv6.devconf_all.enhanced_dad:
        ifp.dad_nonce = net.random.randbytes(6)
    delay = net.random.randrange(max(delay_jiffies, 1)) / HZ
    net.clock.add_timer(delay, lambda: addrconf_dad_work(net, ifp))


def addrconf_dad_run(net, idev: Inet6Dev) -> None:
    """Addresses left tentative while the device was not ready start DAD."""
    for ifp in idev.addr_list:
        if ifp.flags & IFA_F_TENTATIVE and not ifp.flags & IFA_F_DADFAILED and _dad_enabled(net, ifp):
            addrconf_dad_kick(net, ifp)


def addrconf_dad_work(net, ifp: Inet6Ifaddr) -> None:
    """One probe, or the end of DAD once `dad_transmits` went unanswered."""
    if ifp.dead or not ifp.flags & IFA_F_TENTATIVE or ifp.flags & IFA_F_DADFAILED:
        return
    if ifp.dad_probes <= 0:
        ifp.flags &= ~(IFA_F_TENTATIVE | IFA_F_OPTIMISTIC | IFA_F_DADFAILED)
        addrconf_dad_completed(net, ifp)
        return
    ifp.dad_probes -= 1
    net.ipv6.ndisc_send_ns(net, ifp.idev.dev, ifp.addr, addrconf_addr_solict_mult(ifp.addr), IN6ADDR_ANY,
                      ifp.dad_nonce, why="addrconf_dad_work")
    net.clock.add_timer(ND_RETRANS_TIME, lambda: addrconf_dad_work(net, ifp))


def addrconf_dad_completed(net, ifp: Inet6Ifaddr) -> None:
    """The address is usable: its local route goes in (RTM_NEWADDR)."""
    _ipv6_ifa_notify(net, "RTM_NEWADDR", ifp)


def addrconf_dad_failure(net, ifp: Inet6Ifaddr) -> None:
    """Somebody else has the address: it stays, dadfailed and tentative, unusable."""
    ifp.flags |= IFA_F_DADFAILED


# lookups the datapath makes ------------------------------------------------------------
def ipv6_chk_addr(net, addr: bytes, dev=None, strict: bool = False) -> bool:
    """A local address that is not tentative (ipv6_chk_addr_and_flags()): with
    `dev`, on it, or on another device when it is neither link- nor
    host-scoped and the check is not strict."""
    for device in net.devices.values():
        idev = device.ip6_ptr
        if idev is None:
            continue
        for ifp in idev.addr_list:
            if ifp.addr == addr and not (ifp.flags & IFA_F_TENTATIVE and not ifp.flags & IFA_F_OPTIMISTIC):
                if dev is None or device is dev or not (ifp.scope & (IFA_LINK | IFA_HOST) or strict):
                    return True
    return False


def ipv6_get_lladdr(dev) -> bytes | None:
    """The device's first usable link-local address (ipv6_get_lladdr())."""
    idev = dev.ip6_ptr
    return next((ifp.addr for ifp in idev.addr_list if ifp.scope == IFA_LINK
                 and not ifp.flags & (IFA_F_TENTATIVE | IFA_F_OPTIMISTIC)), None) if idev is not None else None


def ipv6_get_ifaddr(net, addr: bytes, dev=None) -> Inet6Ifaddr | None:
    """The address entry, tentative or not (ipv6_get_ifaddr())."""
    for device in net.devices.values():
        idev = device.ip6_ptr
        if idev is not None and (dev is None or device is dev):
            for ifp in idev.addr_list:
                if ifp.addr == addr:
                    return ifp
    return None


def ipv6_dev_get_saddr(net, dst_dev, daddr: bytes) -> bytes | None:
    """ipv6_dev_get_saddr(): the candidates (the outgoing device's addresses,
    or every device's for a destination that is not link-scoped) ranked by
    __ipv6_dev_get_saddr()'s rules: 1 the destination itself, 2 scope (the
    smallest at least the destination's, else the largest), 3 not deprecated
    (tentative ones never count), 5 on the outgoing interface, 8 the longest
    common prefix. None when nothing qualifies."""
    dst_scope = ipv6_addr_src_scope(daddr)
    link_scoped = dst_scope <= IPV6_ADDR_SCOPE_LINKLOCAL
    devices = [dst_dev] if dst_dev is not None and (link_scoped or dst_dev.ip6_ptr is None
                                                    or dst_dev.ip6_ptr.cnf.use_oif_addrs_only) \
        else list(net.devices.values())
    best, best_key = None, None
    for device in devices:
        idev = device.ip6_ptr
        if idev is None or idev.cnf.disable_ipv6:
            continue
        for ifp in idev.addr_list:
            if ifp.flags & IFA_F_TENTATIVE and not ifp.flags & IFA_F_OPTIMISTIC:
                continue
            scope = ipv6_addr_src_scope(ifp.addr)
            key = (ifp.addr == daddr,
                   (scope >= dst_scope, -scope if scope >= dst_scope else scope),
                   not ifp.flags & IFA_F_DEPRECATED,
                   device is dst_dev,
                   ipv6_addr_diff(ifp.addr, daddr))
            if best_key is None or key > best_key:
                best, best_key = ifp.addr, key
    return best


# init ---------------------------------------------------------------------------------
def addrconf_init(net) -> None:
    """addrconf_init_net() (conf/all and conf/default) and the netdevice notifier."""
    net.ipv6.devconf_all = Ipv6DevConf("all", None)
    net.ipv6.devconf_dflt = Ipv6DevConf("default", None)
    for cnf in (net.ipv6.devconf_all, net.ipv6.devconf_dflt):
        for entry in DEVCONF_TABLE:
            default = DEVCONF_ALL_DEFAULTS.get(entry.name, entry.default) if cnf.scope == "all" \
                else entry.default
            setattr(cnf, entry.field, default)
        addrconf_sysctl_register(net, cnf)
    register_netdevice_notifier(net, addrconf_notify)
