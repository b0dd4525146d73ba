"""iptables matches that keep state between packets: recent (xt_recent.c: the
namespace's named address lists), hashlimit (xt_hashlimit.c: a rate per key),
connlimit (xt_connlimit.c over nf_conncount.c: connections per address) and
connbytes (libxt_connbytes.c parsed; its kernel side needs conntrack
accounting, which the mock's conntrack does not keep: refused as not modelled).
Options are libxt_recent.c's, libxt_hashlimit.c's, libxt_connlimit.c's.
"""
from __future__ import annotations

import weakref

from harness.mockkernel.netfilter.nf_conntrack import UNTRACKED
from harness.mockkernel.netfilter.nft_compat import XtCompat
from harness.mockkernel.netfilter.nft_exprs import Limit, Stmt
from harness.mockkernel.netfilter.xt_matches import LIMIT_UNITS, XtMatch, inv
from harness.mockkernel.netfilter.xt_options import XtError, XtOpt, c_strtoul, exclusive, usage_error
from harness.mockkernel.wire.ethernet import ETH_P_IP

IP_LIST_TOT = 100  # xt_recent's ip_list_tot: entries per table
IP_PKT_LIST_TOT = 255  # ip_pkt_list_tot: stamps per entry (the module's maximum hitcount)


def not_modelled(what: str) -> XtError:
    return XtError(f"{what} is not modelled by the mock kernel", 1)


def _addresses(pkt, source: bool) -> bytes:
    """The packet's source or destination address, as bytes (IPv4 or IPv6)."""
    buf, nh = pkt.buf, pkt.nh
    if pkt.skb.protocol == ETH_P_IP:
        at = nh + (12 if source else 16)
        return bytes(buf[at:at + 4])
    at = nh + (8 if source else 24)
    return bytes(buf[at:at + 16])


def _masked(addr: bytes, mask: int) -> bytes:
    """The address under a mask of its own width."""
    return (int.from_bytes(addr, "big") & mask).to_bytes(len(addr), "big")


# ------------------------------------------------------------------ recent

_RECENT_TABLES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # recent_net: the netns's tables


class RecentMatch(XtMatch):
    """libxt_recent.c revision 1; xt_recent.c recent_mt(): a table of
    addresses, each with the times it was seen (--set adds, --update and
    --rcheck look, within --seconds and at least --hitcount times)."""

    name = "recent"
    COMMANDS = ("--set", "--rcheck", "--update", "--remove")
    OPTIONS = exclusive(COMMANDS, no_arg=COMMANDS) + (
        XtOpt(("--seconds",)), XtOpt(("--reap",), arg=False, also=("--seconds",)), XtOpt(("--hitcount",)),
        XtOpt(("--rttl",), arg=False), XtOpt(("--name",)), XtOpt(("--mask",)),
        XtOpt(("--rsource",), arg=False, excl=("--rdest",)), XtOpt(("--rdest",), arg=False, excl=("--rsource",)))

    def __init__(self) -> None:
        super().__init__()
        self.command, self.invert, self.seconds, self.hitcount = None, False, 0, 0
        self.table, self.mask, self.family = "DEFAULT", None, None

    def option(self, word: str) -> XtOpt | None:
        opt = super().option(word)
        return XtOpt(opt.names, arg=opt.arg, invert=True, excl=opt.excl) if opt and word in self.COMMANDS else opt

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        if option in self.COMMANDS:
            self.command, self.invert = option, invert
        elif option == "--seconds":
            self.seconds = self.uint(option, value, 0, 0xFFFFFFFF)
        elif option == "--hitcount":
            self.hitcount = self.uint(option, value, 0, 0xFFFFFFFF)
        elif option == "--name":
            self.table = value
        elif option == "--mask":
            self.mask = rule.family.parse_addresses(value)[0][0]

    def check(self, rule) -> None:
        if self.command is None:
            raise usage_error("recent: you must specify one of `--set', `--rcheck' `--update' or `--remove'")
        self.family = rule.family
        if self.mask is None:
            self.mask = rule.family.all_ones
        if self.command in ("--set", "--remove") and ({"--seconds", "--hitcount", "--rttl"} & self.given):
            raise usage_error("recent: --seconds, --hitcount and --rttl only work with --rcheck or --update")

    def kernel_check(self, rule, chain: str, builtin: bool) -> None:
        if self.hitcount > IP_PKT_LIST_TOT:
            raise XtError(f"{{prog}} v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain {chain}",
                          4)

    def save(self) -> str:
        parts = ["-m recent", f"{inv(self.invert)}{self.command}"]
        if self.seconds:
            parts.append(f"--seconds {self.seconds}")
        if "--reap" in self.given:
            parts.append("--reap")
        if self.hitcount:
            parts.append(f"--hitcount {self.hitcount}")
        if "--rttl" in self.given:
            parts.append("--rttl")
        parts += [f"--name {self.table}", f"--mask {self.family.address_text(self.mask)}",
                  "--rdest" if "--rdest" in self.given else "--rsource"]
        return " ".join(parts)

    def listing(self) -> str:
        word = {"--set": "SET", "--rcheck": "CHECK", "--update": "UPDATE", "--remove": "REMOVE"}[self.command]
        parts = [f"recent: {'!' if self.invert else ''}{word}"]
        if self.seconds:
            parts.append(f"seconds: {self.seconds}")
        if "--reap" in self.given:
            parts.append("reap")
        if self.hitcount:
            parts.append(f"hit_count: {self.hitcount}")
        if "--rttl" in self.given:
            parts.append("TTL-Match")
        parts += [f"name: {self.table}", "side: " + ("dest" if "--rdest" in self.given else "source"),
                  f"mask: {self.family.address_text(self.mask)}"]
        return " ".join(parts)

    def stmts(self, rule) -> list[Stmt]:
        command, seconds, hitcount, name = self.command, self.seconds, self.hitcount, self.table
        source, mask, use_ttl = "--rdest" not in self.given, self.mask, "--rttl" in self.given
        reap = "--reap" in self.given

        def build(ctx):
            tables = _RECENT_TABLES.setdefault(ctx.net, {})
            clock = ctx.net.clock

            def recent_mt(pkt) -> bool:
                table = tables.setdefault(name, {})  # address -> (ttl, [times seen])
                key = _masked(_addresses(pkt, source), mask)
                ttl = pkt.buf[pkt.nh + 8] if pkt.skb.protocol == ETH_P_IP else pkt.buf[pkt.nh + 7]
                entry = table.get(key)
                if entry is not None and use_ttl and entry[0] != ttl:
                    entry = None
                now = clock.now
                if entry is None:
                    if command != "--set":
                        return False
                    if len(table) >= IP_LIST_TOT:  # recent_entry_init(): the oldest entry makes room
                        del table[next(iter(table))]
                    table[key] = (ttl, [now])
                    return True
                found = command in ("--set", "--remove")
                if command == "--remove":
                    del table[key]
                elif command in ("--rcheck", "--update"):
                    recent = [t for t in entry[1] if not seconds or t >= now - seconds]
                    found = len(recent) >= max(hitcount, 1)
                    if reap:
                        entry[1][:] = recent
                if command == "--set" or command == "--update" and found:
                    entry[1].append(now)
                    del entry[1][:-IP_PKT_LIST_TOT]
                    table[key] = (ttl, entry[1])
                return found
            return recent_mt
        return [XtCompat("match", "recent", None, build, invert=self.invert)]


# ------------------------------------------------------------------ hashlimit

HASHLIMIT_MODES = ("srcip", "srcport", "dstip", "dstport")


class HashlimitMatch(XtMatch):
    """libxt_hashlimit.c revision 3; xt_hashlimit.c hashlimit_mt(): a bucket
    per key (the modes' fields, addresses masked), each as nft_limit's
    (the meter of limits nft shows for it); a key idle longer than
    --hashlimit-htable-expire starts again full."""

    name = "hashlimit"
    OPTIONS = (XtOpt(("--hashlimit-upto",), invert=True, excl=("--hashlimit-above",)),
               XtOpt(("--hashlimit-above",), invert=True, excl=("--hashlimit-upto",)),
               XtOpt(("--hashlimit-burst",)), XtOpt(("--hashlimit-mode",)), XtOpt(("--hashlimit-srcmask",)),
               XtOpt(("--hashlimit-dstmask",)), XtOpt(("--hashlimit-name",), mandatory=True),
               XtOpt(("--hashlimit-htable-expire",)))
    UNMODELLED = ("--hashlimit-htable-size", "--hashlimit-htable-max", "--hashlimit-htable-gcinterval",
                  "--hashlimit-rate-match", "--hashlimit-rate-interval")

    def __init__(self) -> None:
        super().__init__()
        self.rate = self.unit = None
        self.above, self.burst, self.modes, self.table = False, 5, (), ""
        self.srcmask = self.dstmask = self.expire = None

    def option(self, word: str) -> XtOpt | None:
        if word in self.UNMODELLED:
            raise not_modelled(f"-m hashlimit {word}")
        return super().option(word)

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        if option in ("--hashlimit-upto", "--hashlimit-above"):
            number, slash, unit = value.partition("/")
            rate = c_strtoul(number)
            unit = unit if slash else "sec"
            if rate is None or rate == 0 or not any(u.startswith(unit) for u in ("second", "minute", "hour",
                                                                                 "day")):
                raise usage_error(f'hashlimit: bad value for option "{option}", or out of range.')
            self.rate = rate
            self.unit = next(u for u in ("second", "minute", "hour", "day") if u.startswith(unit))
            self.above = (option == "--hashlimit-above") != invert
        elif option == "--hashlimit-burst":
            self.burst = self.uint(option, value, 1, 0xFFFFFFFF)
        elif option == "--hashlimit-mode":
            modes = value.split(",")
            bad = next((m for m in modes if m not in HASHLIMIT_MODES), None)
            if bad is not None:
                raise usage_error(f"hashlimit: bad mode \"{bad}\"")
            self.modes = tuple(m for m in HASHLIMIT_MODES if m in modes)
        elif option in ("--hashlimit-srcmask", "--hashlimit-dstmask"):
            setattr(self, option[12:15] + "mask", self.uint(option, value, 0, rule.family.bits))
        elif option == "--hashlimit-name":
            self.table = value
        else:
            self.expire = self.uint(option, value, 0, 0xFFFFFFFF)

    def check(self, rule) -> None:
        if self.rate is None:
            raise usage_error("hashlimit: You have to specify --hashlimit")

    def save(self) -> str:
        unit = {"second": "sec", "minute": "min"}.get(self.unit, self.unit)
        parts = [f"-m hashlimit --hashlimit-{'above' if self.above else 'upto'} {self.rate}/{unit}",
                 f"--hashlimit-burst {self.burst}"]
        if self.modes:
            parts.append(f"--hashlimit-mode {','.join(self.modes)}")
        for option, bits in (("--hashlimit-srcmask", self.srcmask), ("--hashlimit-dstmask", self.dstmask)):
            if bits is not None:
                parts.append(f"{option} {bits}")
        parts.append(f"--hashlimit-name {self.table}")
        if self.expire is not None:
            parts.append(f"--hashlimit-htable-expire {self.expire}")
        return " ".join(parts)

    def listing(self) -> str:
        unit = {"second": "sec", "minute": "min"}.get(self.unit, self.unit)
        mode = f" mode {'-'.join(self.modes)}" if self.modes else ""
        return f"limit: {'above' if self.above else 'up to'} {self.rate}/{unit} burst {self.burst}{mode}"

    def _expire(self) -> float:
        """Seconds an idle key lives: --hashlimit-htable-expire (ms), by default the rate's unit."""
        return self.expire / 1000 if self.expire is not None else LIMIT_UNITS[self.unit][1]

    def stmts(self, rule) -> list[Stmt]:
        rate, unit, burst, above, modes = self.rate, self.unit, self.burst, self.above, self.modes
        family, expire = rule.family, self._expire()
        text = None
        if modes in (("srcip",), ("dstip",)) and self.srcmask is None and self.dstmask is None:
            field = f"{family.nft_family} {'saddr' if modes == ('srcip',) else 'daddr'}"
            limit = Limit(rate, unit, burst, above)
            text = f"meter {self.table} {{ {field} timeout {int(expire)}s {limit.text(None)} }}"
        src_mask = family.all_ones ^ ((1 << (family.bits - self.srcmask)) - 1) if self.srcmask is not None \
            else family.all_ones
        dst_mask = family.all_ones ^ ((1 << (family.bits - self.dstmask)) - 1) if self.dstmask is not None \
            else family.all_ones

        def build(ctx):
            buckets: dict[tuple, tuple] = {}  # key -> (bucket's compiled limit, last seen)
            clock = ctx.net.clock

            def key_of(pkt) -> tuple:
                key = []
                if "srcip" in modes:
                    key.append(_masked(_addresses(pkt, True), src_mask))
                if "dstip" in modes:
                    key.append(_masked(_addresses(pkt, False), dst_mask))
                if ("srcport" in modes or "dstport" in modes) and pkt.thoff >= 0 and not pkt.fragoff:
                    th = pkt.thoff
                    if "srcport" in modes:
                        key.append(pkt.buf[th] << 8 | pkt.buf[th + 1])
                    if "dstport" in modes:
                        key.append(pkt.buf[th + 2] << 8 | pkt.buf[th + 3])
                return tuple(key)

            def hashlimit_mt(pkt) -> bool:
                key, now = key_of(pkt), clock.now
                bucket = buckets.get(key)
                if bucket is None or now - bucket[1] > expire:
                    bucket = (Limit(rate, unit, burst, False).compile(ctx), now)
                buckets[key] = (bucket[0], now)
                under = bucket[0](pkt) is None
                return under != above
            return hashlimit_mt
        return [XtCompat("match", "hashlimit", text, build)]


# ------------------------------------------------------------------ connlimit

class ConnlimitMatch(XtMatch):
    """libxt_connlimit.c revision 1; xt_connlimit.c connlimit_mt() counting
    with nf_conncount: the connections this rule saw from (or to) the masked
    address that conntrack still holds, the packet's own included."""

    name = "connlimit"
    OPTIONS = (XtOpt(("--connlimit-upto",), invert=True, excl=("--connlimit-above",)),
               XtOpt(("--connlimit-above",), invert=True, excl=("--connlimit-upto",)),
               XtOpt(("--connlimit-mask",)), XtOpt(("--connlimit-saddr",), arg=False, excl=("--connlimit-daddr",)),
               XtOpt(("--connlimit-daddr",), arg=False, excl=("--connlimit-saddr",)))

    def __init__(self) -> None:
        super().__init__()
        self.limit, self.upto, self.plen = None, False, None  # plen: the family's full length unless given

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        if option in ("--connlimit-upto", "--connlimit-above"):
            self.limit = self.uint(option, value, 0, 0xFFFFFFFF)
            self.upto = (option == "--connlimit-upto") != invert
        elif option == "--connlimit-mask":
            self.plen = self.uint(option, value, 0, rule.family.bits)

    def check(self, rule) -> None:
        if self.limit is None:
            raise usage_error('You must specify "--connlimit-above" or "--connlimit-upto".')
        if self.plen is None:
            self.plen = rule.family.bits

    def save(self) -> str:
        side = "--connlimit-daddr" if "--connlimit-daddr" in self.given else "--connlimit-saddr"
        return (f"-m connlimit --connlimit-{'upto' if self.upto else 'above'} {self.limit} "
                f"--connlimit-mask {self.plen} {side}")

    def listing(self) -> str:
        side = "dst" if "--connlimit-daddr" in self.given else "src"
        return f"#conn {side}/{self.plen} {'<=' if self.upto else '>'} {self.limit}"

    def stmts(self, rule) -> list[Stmt]:
        limit, upto, source = self.limit, self.upto, "--connlimit-daddr" not in self.given
        family = rule.family
        mask = family.all_ones ^ ((1 << (family.bits - self.plen)) - 1)

        def build(ctx):
            lists: dict[bytes, list] = {}  # nf_conncount: masked address -> the connections it counted
            net = ctx.net

            def alive(ct) -> bool:  # still in the table, and for TCP not closing (already_closed())
                return net.conntrack.hash.get(ct.original) is ct and ct.timeout > net.clock.now and \
                    ct.proto_state not in ("TIME_WAIT", "CLOSE")

            def connlimit_mt(pkt) -> bool:
                ct = pkt.skb.nfct
                if ct is None or ct is UNTRACKED:
                    return False
                key = _masked(_addresses(pkt, source), mask)
                seen = [c for c in lists.get(key, ()) if c is ct or alive(c)]
                if ct not in seen:
                    seen.append(ct)
                lists[key] = seen
                return (len(seen) > limit) != upto
            return connlimit_mt
        return [XtCompat("match", "connlimit", None, build, needs_conntrack=True)]


# ------------------------------------------------------------------ connbytes

class ConnbytesMatch(XtMatch):
    """libxt_connbytes.c: parsed and checked as iptables does; the kernel
    side reads conntrack's byte and packet counters (nf_conn_acct), which the
    mock's conntrack does not keep, so a valid rule is refused as not modelled."""

    name = "connbytes"
    OPTIONS = (XtOpt(("--connbytes",), invert=True, mandatory=True), XtOpt(("--connbytes-dir",), mandatory=True),
               XtOpt(("--connbytes-mode",), mandatory=True))

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        if option == "--connbytes":
            self.uint_range(option, value, 0xFFFFFFFFFFFFFFFF)
        elif option == "--connbytes-dir" and value not in ("original", "reply", "both"):
            raise usage_error(f"Unknown --connbytes-dir `{value}'")
        elif option == "--connbytes-mode" and value not in ("packets", "bytes", "avgpkt"):
            raise usage_error(f"Unknown --connbytes-mode `{value}'")

    def final_check(self, rule) -> None:
        super().final_check(rule)
        raise not_modelled("-m connbytes (conntrack accounting)")


STATEFUL_MATCHES = {"recent": RecentMatch, "hashlimit": HashlimitMatch, "connlimit": ConnlimitMatch,
                    "connbytes": ConnbytesMatch}
