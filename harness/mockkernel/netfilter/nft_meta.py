"""nft_meta's other keys (net/netfilter/nft_meta.c nft_meta_get_eval()) and
their nft data types (nftables src/meta.c, datatype.c).

`MetaKey` is a `Meta` of one of these keys; each loads what the kernel loads:
- skuid, skgid, cgroup: the owner of the packet's full socket (skb->sk; a
  request or time-wait socket, or none, breaks the rule). The mock's sockets
  are root's (uid and gid 0, as the harness opens them as root) in no net_cls
  cgroup (classid 0).
- iifgroup, oifgroup: dev->group (`ip link set dev X group N`); iiftype,
  oiftype: dev->type (ARPHRD_ETHER, ARPHRD_LOOPBACK for lo); iifkind,
  oifkind: dev->rtnl_link_ops->kind (lo has none: the rule breaks); no input
  or output device breaks the rule.
- cpu: raw_smp_processor_id(), the CPU the packet is processed on (the mock's
  this_cpu); random: get_random_u32() (here a per-kernel seeded generator);
  ipsec (secpath): skb_sec_path() exists (never: the mock has no xfrm);
  rtclassid: skb_dst(skb)->tclassid (0: no realms; no route breaks the rule);
  sdif, sdifname: the L3 master device (VRF) of the input: none, 0 and "".
  nft_meta_get_validate() refuses sdif/sdifname and ipsec at hooks where
  they cannot be known (hook_refusal()).
- time, day, hour: the wall clock, ktime_get_real_ns() (time, ns since the
  epoch), nft_meta_weekday() (day: 0 Sunday, with sys_tz.tz_minuteswest 0)
  and nft_meta_hour() (hour: seconds since midnight, UTC). The mock's
  CLOCK_REALTIME is Clock.realtime(): REALTIME_AT_BOOT plus the virtual time.

nft prints time, hour and day in local time, parses them so too (date_type,
hour_type: tm_gmtoff of the local zone, the TZ of the process running it);
skuid/skgid names from the passwd and group databases (getpwnam()); device
groups and realms from iproute2's tables (/etc/iproute2/group, rt_realms:
`default` 0, `cosmos` 0, as iproute2 ships them).
"""
from __future__ import annotations

import calendar
import grp
import pwd
import random
import re
import time

from harness.mockkernel.ipv4.tcp_sock import RequestSock, TimewaitSock
from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.nft_exprs import CompileCtx, Meta

ARPHRD_ETHER, ARPHRD_LOOPBACK = 1, 772  # include/uapi/linux/if_arp.h
NSEC_PER_SEC = 1_000_000_000
EOPNOTSUPP = "Operation not supported"
SECONDS_PER_DAY = 86400


class UidType(types.Datatype):
    """uid_type / gid_type: a name from the passwd (group) database or a number."""

    def __init__(self, name: str, desc: str, lookup, missing: str):
        super().__init__(name, 32, desc, types.HOST)
        self.lookup, self.missing = lookup, missing

    def parse_symbol(self, text: str) -> int:
        try:
            return self.lookup(text)
        except KeyError:
            pass
        if text.isdigit():
            if int(text) > 0xFFFFFFFF:
                raise types.DatatypeError("Value too large")
            return int(text)
        raise types.DatatypeError(self.missing)


class QuotedSymbolType(types.SymbolicType):
    """A symbol table whose names print quoted (devgroup_type and realm_type:
    iproute2's tables; day_type), a number without one as a number; in JSON
    the name, or the number."""

    def format(self, value) -> str:
        name = self.names.get(value)
        return f'"{name}"' if name is not None else str(value)

    def json_value(self, value):
        return self.names.get(value, value)


class DateType(types.Datatype):
    """date_type (nft's `time`): "YYYY-MM-DD[ HH:MM[:SS]]" in local time, or
    seconds since the epoch; the value is in nanoseconds."""

    FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")

    def parse(self, text: str | int) -> int:
        return text * NSEC_PER_SEC if isinstance(text, int) else self.parse_symbol(text)

    def parse_symbol(self, text: str) -> int:
        for fmt in self.FORMATS:
            try:
                tm = time.strptime(text, fmt)
            except ValueError:
                continue
            ts = calendar.timegm(tm)
            return (ts - time.localtime(ts).tm_gmtoff) * NSEC_PER_SEC
        if text.isdigit():
            return int(text) * NSEC_PER_SEC
        raise types.DatatypeError("Cannot parse date")

    def json_value(self, value) -> str:
        return self.format(value).strip('"')

    def format(self, value) -> str:
        seconds = value // NSEC_PER_SEC
        return time.strftime('"%Y-%m-%d %H:%M:%S"', time.gmtime(seconds + time.localtime(seconds).tm_gmtoff))


class HourType(types.Datatype):
    """hour_type: "HH:MM[:SS]" local time (or seconds), as seconds since
    midnight UTC."""

    def parse_symbol(self, text: str) -> int:
        if text.isdigit():
            return int(text)
        for fmt in ("%H:%M:%S", "%H:%M"):
            try:
                tm = time.strptime(text, fmt)
                break
            except ValueError:
                continue
        else:
            return self._time_spec(text)
        result = tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec
        gmtoff = time.localtime().tm_gmtoff
        return (result - gmtoff) % SECONDS_PER_DAY if result >= gmtoff else SECONDS_PER_DAY - gmtoff + result

    def _time_spec(self, text: str) -> int:
        """time_parse()'s `[NUMd][NUMh][NUMm][NUMs][NUMms]`, as the hour after
        midnight it gives (local time, as the other forms)."""
        m = re.fullmatch(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?", text)
        if not m or not text:
            raise types.DatatypeError("wrong time format")
        d, h, mi, sec, ms = (int(g or 0) for g in m.groups())
        result = (d * 86400 + h * 3600 + mi * 60 + sec) + ms // 1000
        gmtoff = time.localtime().tm_gmtoff
        return (result - gmtoff) % SECONDS_PER_DAY if result >= gmtoff else SECONDS_PER_DAY - gmtoff + result

    def json_value(self, value) -> str:
        return self.format(value).strip('"')

    def format(self, value) -> str:
        seconds = (value + time.localtime().tm_gmtoff) % SECONDS_PER_DAY
        text = f'"{seconds // 3600:02d}:{seconds // 60 % 60:02d}'
        return text + (f':{seconds % 60:02d}"' if seconds % 60 else '"')


uid = UidType("uid", "user ID", lambda name: pwd.getpwnam(name).pw_uid, "User does not exist")
gid = UidType("gid", "group ID", lambda name: grp.getgrnam(name).gr_gid, "Group does not exist")
devgroup = QuotedSymbolType("devgroup", 32, "device group", {"default": 0}, byteorder=types.HOST)
realm = QuotedSymbolType("realm", 32, "routing realm", {"cosmos": 0}, byteorder=types.HOST)
arphrd = types.SymbolicType("iface_type", 16, "network interface type", {
    "ether": ARPHRD_ETHER, "ppp": 512, "ipip": 768, "ipip6": 769, "loopback": ARPHRD_LOOPBACK, "sit": 776,
    "ipgre": 778}, byteorder=types.HOST)
arphrd.hex_digits = 0
date = DateType("time", 64, "Relative time of packet reception", types.HOST)
class DayType(QuotedSymbolType):
    """day_type: a weekday's name or number; over 6 is out of range; a name
    prints quoted (symbolic_constant_print(..., quotes))."""

    def check_range(self, value: int) -> int:
        if value > 6:
            raise types.DatatypeError(f"Value {value} exceeds valid range 0-6")
        return value


day = DayType("day", 8, "Day of week of packet reception", {
    "Sunday": 0, "Monday": 1, "Tuesday": 2, "Wednesday": 3, "Thursday": 4, "Friday": 5, "Saturday": 6},
    byteorder=types.HOST)
hour = HourType("hour", 32, "Hour of day of packet reception", types.HOST)
random_type = types.IntegerType("integer", 32, "integer")


def _dev_attr(dev_of, attr):
    def load(pkt):
        dev = dev_of(pkt.state)
        return None if dev is None else attr(dev)
    return load


def _in(state):
    return state.in_dev


def _out(state):
    return state.out_dev


def _full_sock(pkt):
    """skb_to_full_sk() and sk_fullsock(): a request or time-wait socket is not one."""
    sk = pkt.skb.sk
    return None if sk is None or isinstance(sk, (RequestSock, TimewaitSock)) else sk


def _kind(dev):
    return None if dev.kind == "loopback" else dev.kind  # lo has no rtnl_link_ops


def _iftype(dev):
    return ARPHRD_LOOPBACK if dev.is_loopback else ARPHRD_ETHER


class MetaKey(Meta):
    """A meta key of nft_meta.c beyond nft_exprs.Meta's."""

    UNQUALIFIED = Meta.UNQUALIFIED + ("iifgroup", "oifgroup")  # src/meta.c meta_key_is_unqualified()
    TYPES = {"skuid": uid, "skgid": gid, "cgroup": types.integer, "iifgroup": devgroup, "oifgroup": devgroup,
             "iiftype": arphrd, "oiftype": arphrd, "iifkind": types.ifname, "oifkind": types.ifname,
             "cpu": types.integer, "random": random_type, "ipsec": types.boolean, "rtclassid": realm,
             "sdif": types.integer, "sdifname": types.ifname, "time": date, "day": day, "hour": hour}

    def hook_refusal(self, family: str, hook: str) -> str | None:
        """nft_meta_get_validate(): sdif and sdifname only at input and forward
        of ip, ip6 and inet chains, secpath (ipsec) only at netdev ingress and
        at their prerouting, input and forward; else EOPNOTSUPP (seen on 6.18)."""
        inet = family in ("ip", "ip6", "inet")
        if self.key in ("sdif", "sdifname"):
            allowed = inet and hook in ("input", "forward")
        elif self.key == "ipsec":
            allowed = hook == "ingress" if family == "netdev" else inet and hook in ("prerouting", "input", "forward")
        else:
            return None
        return None if allowed else EOPNOTSUPP

    def load(self, ctx: CompileCtx):
        key, net = self.key, ctx.net
        if key in ("skuid", "skgid", "cgroup"):
            return lambda pkt: None if _full_sock(pkt) is None else 0
        if key in ("iifgroup", "oifgroup", "iiftype", "oiftype", "iifkind", "oifkind"):
            attr = {"group": lambda dev: dev.group, "type": _iftype, "kind": _kind}[key[3:]]
            return _dev_attr(_in if key[0] == "i" else _out, attr)
        if key == "cpu":
            return lambda pkt: net.this_cpu
        if key == "random":
            draw = random.Random(0x6E667400).getrandbits
            return lambda pkt: draw(32)
        if key == "ipsec":
            return lambda pkt: 0
        if key == "rtclassid":
            return lambda pkt: None if pkt.skb.dst is None else 0
        if key in ("sdif", "sdifname"):
            value = 0 if key == "sdif" else ""
            return lambda pkt: value
        clock = net.clock
        if key == "time":
            return lambda pkt: int(clock.realtime() * NSEC_PER_SEC)
        if key == "day":
            return lambda pkt: (4 + int(clock.realtime()) // SECONDS_PER_DAY) % 7
        return lambda pkt: int(clock.realtime()) % SECONDS_PER_DAY
