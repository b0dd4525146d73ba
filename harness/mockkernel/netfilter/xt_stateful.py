"""iptables matches that keep state between packets: recent (xt_recent.c: the
namespace's named address lists), hashlimit (xt_hashlimit.c: a rate per key),
connlimit (xt_connlimit.c over nf_conncount.c: connections per address) and
connbytes (xt_connbytes.c: conntrack's accounting counters) and connlabel
(xt_connlabel.c: the connection's label bits). Options are their libxt_*.c's.
"""
from __future__ import annotations

import weakref

from harness.mockkernel.lib.libc import atoi, atoll
from harness.mockkernel.netfilter.nf_conntrack import UNTRACKED
from harness.mockkernel.netfilter.nft_compat import XtCompat
from harness.mockkernel.netfilter.nft_exprs import Stmt
from harness.mockkernel.core.sysctl import HZ
from harness.mockkernel.netfilter.xt_matches import XtMatch, inv, kernel_refusal
from harness.mockkernel.netfilter.xt_options import XtError, XtOpt, c_strtoul, exclusive, usage_error
from harness.mockkernel.wire.ethernet import ETH_P_IP
from harness.mockkernel.wire.ipv4 import Ipv4Packet
from harness.mockkernel.wire.ipv6 import Ipv6Packet
from harness.mockkernel.wire.tcp import PORTS

IP_LIST_TOT = 100  # xt_recent's ip_list_tot: entries per table
IP_PKT_LIST_TOT = 20  # ip_pkt_list_tot: stamps an entry keeps, unless a rule's --hitcount needs more


def not_modelled(what: str) -> XtError:
    return XtError(f"{what} is not modelled by the mock kernel", 1)


def _addresses(pkt, source: bool) -> bytes:
    """The packet's source or destination address, as bytes (IPv4 or IPv6)."""
    if pkt.skb.protocol == ETH_P_IP:
        header = Ipv4Packet(pkt.buf, pkt.nh)
        return header.saddr_bytes if source else header.daddr_bytes
    header = Ipv6Packet(pkt.buf, pkt.nh)
    return header.saddr if source else header.daddr


def _hop_limit(pkt) -> int:
    """The TTL, or the IPv6 hop limit."""
    return Ipv4Packet(pkt.buf, pkt.nh).ttl if pkt.skb.protocol == ETH_P_IP else Ipv6Packet(pkt.buf, pkt.nh).hop_limit


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
        XtOpt(("--rttl",), arg=False, excl=("--set", "--remove")), XtOpt(("--name",)), XtOpt(("--mask",)),
        XtOpt(("--rsource",), arg=False, multi=True), XtOpt(("--rdest",), arg=False, multi=True))

    def __init__(self) -> None:
        super().__init__()
        self.command, self.invert, self.seconds, self.hitcount = None, False, 0, 0
        self.table, self.mask, self.family, self.source = "DEFAULT", None, None, True

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
        elif option in ("--rsource", "--rdest"):  # the last one given counts
            self.source = option == "--rsource"

    def check(self, rule) -> None:
        if self.command is None:
            raise usage_error("recent: you must specify one of `--set', `--rcheck' `--update' or `--remove'")
        self.family = rule.family
        if self.mask is None:
            self.mask = rule.family.all_ones

    def kernel_check(self, rule, chain: str, builtin: bool) -> None:
        """recent_mt_check(): --set and --remove take no --seconds, --hitcount, --rttl or --reap."""
        if self.command in ("--set", "--remove") and {"--seconds", "--hitcount", "--rttl", "--reap"} & self.given:
            raise kernel_refusal(chain)

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
        parts = [f"{'! ' if self.invert else ''}recent: {word}"]
        if self.seconds:
            parts.append(f"seconds: {self.seconds}")
        if "--reap" in self.given:
            parts.append("reap")
        if self.hitcount:
            parts.append(f"hit_count: {self.hitcount}")
        if "--rttl" in self.given:
            parts.append("TTL-Match")
        parts += [f"name: {self.table}", "side: " + ("source" if self.source else "dest"),
                  f"mask: {self.family.address_text(self.mask)}"]
        return " ".join(parts)

    def stmts(self, rule) -> list[Stmt]:
        command, seconds, hitcount, name = self.command, self.seconds, self.hitcount, self.table
        source, mask, use_ttl = self.source, self.mask, "--rttl" in self.given
        reap = "--reap" in self.given
        stamps = 1 << (max(hitcount, IP_PKT_LIST_TOT) - 1).bit_length()  # nstamps_max_mask + 1

        def build(ctx):
            tables = _RECENT_TABLES.setdefault(ctx.net, {})
            clock = ctx.net.clock

            def recent_mt(pkt) -> bool:
                table = tables.setdefault(name, {})  # address -> (ttl, [times seen])
                key = _masked(_addresses(pkt, source), mask)
                ttl = _hop_limit(pkt)
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
                    del entry[1][:-stamps]
                    table[key] = (ttl, entry[1])
                return found
            return recent_mt
        return [XtCompat("match", "recent", None, build, invert=self.invert)]


# ------------------------------------------------------------------ hashlimit

HASHLIMIT_MODES = ("srcip", "srcport", "dstip", "dstport")
XT_HASHLIMIT_SCALE_V2 = 1_000_000
U64 = (1 << 64) - 1
CREDITS_PER_JIFFY = 1 << ((U64 // (HZ * 60 * 60 * 24)).bit_length() - 1)  # POW2_BELOW64(MAX_CPJ)
CREDITS_PER_JIFFY_BYTES = 1 << ((0xFFFFFFFF // HZ).bit_length() - 1)  # POW2_BELOW32(MAX_CPJ_BYTES)
XT_HASHLIMIT_BYTE_SHIFT, XT_HASHLIMIT_BYTE_EXPIRE, XT_HASHLIMIT_BYTE_EXPIRE_BURST = 4, 15, 60
XT_HASHLIMIT_BURST, XT_HASHLIMIT_BURST_MAX, XT_HASHLIMIT_GCINTERVAL = 5, 1_000_000, 1000
# libxt_hashlimit.c rates[] (iptables-save's names) and rates_xlate[] (nft's): a unit's millionths of a second
SAVE_RATES = (("day", 86400 * 10 ** 6), ("hour", 3600 * 10 ** 6), ("min", 60 * 10 ** 6), ("sec", 10 ** 6))
XLATE_RATES = (("day", 86400 * 10 ** 6), ("hour", 3600 * 10 ** 6), ("minute", 60 * 10 ** 6), ("second", 10 ** 6))
BYTE_UNITS = (("m", 1024 * 1024), ("k", 1024), ("", 1))  # libxt_hashlimit.c units[]


def bytes_to_cost(octets: int) -> int:
    """libxt_hashlimit.c bytes_to_cost(): a byte rate as a cost (the shift kept in 32 bits)."""
    return 0xFFFFFFFF // ((octets >> XT_HASHLIMIT_BYTE_SHIFT & 0xFFFFFFFF) + 1)


def cost_to_bytes(cost: int) -> int:
    return ((0xFFFFFFFF // cost if cost else 0xFFFFFFFF) - 1) << XT_HASHLIMIT_BYTE_SHIFT


def user2credits_byte(user: int) -> int:
    """xt_hashlimit.c user2credits_byte(): (user * HZ * CREDITS_PER_JIFFY_BYTES) >> 32, in 32 bits."""
    return (user * HZ * CREDITS_PER_JIFFY_BYTES & U64) >> 32 & 0xFFFFFFFF


def user2credits(user: int) -> int:
    """xt_hashlimit.c user2credits() for revision 3, in u64 as the kernel computes it."""
    if XT_HASHLIMIT_SCALE_V2 >= HZ * CREDITS_PER_JIFFY:
        return user // (XT_HASHLIMIT_SCALE_V2 // (HZ * CREDITS_PER_JIFFY))
    return user * (HZ * CREDITS_PER_JIFFY // XT_HASHLIMIT_SCALE_V2) & U64


class HashlimitMatch(XtMatch):
    """libxt_hashlimit.c revision 3; xt_hashlimit.c hashlimit_mt_common(): an
    entry per key (the modes' fields, addresses masked), each a token bucket
    in credits (rateinfo_init(), rateinfo_recalc(): CREDITS_PER_JIFFY a
    jiffy, `cost` a packet, `burst` packets at most); an entry idle past
    --hashlimit-htable-expire (by default the rate's unit) is gone and starts
    again full. The table is the namespace's, shared by the rules naming it.

    --hashlimit-rate-match (XT_HASHLIMIT_RATE_MATCH) counts instead of
    limiting: an entry counts the packets (bytes) of a window of
    --hashlimit-rate-interval seconds and matches while the count stays
    within burst + rate and the window before did not go over the rate."""

    name = "hashlimit"
    OPTIONS = (XtOpt(("--hashlimit-upto",), invert=True, excl=("--hashlimit-above",)),
               XtOpt(("--hashlimit-above",), invert=True, excl=("--hashlimit-upto",)),
               XtOpt(("--hashlimit-burst",)), XtOpt(("--hashlimit-mode",)), XtOpt(("--hashlimit-srcmask",)),
               XtOpt(("--hashlimit-dstmask",)), XtOpt(("--hashlimit-name",), mandatory=True),
               XtOpt(("--hashlimit-htable-expire",)), XtOpt(("--hashlimit-htable-size",)),
               XtOpt(("--hashlimit-htable-max",)), XtOpt(("--hashlimit-htable-gcinterval",)),
               XtOpt(("--hashlimit-rate-match",), arg=False), XtOpt(("--hashlimit-rate-interval",)))

    def __init__(self) -> None:
        super().__init__()
        self.avg = None  # cfg.avg: a packet's worth in millionths of a second, or (bytes) the cost of 16 bytes
        self.mult = 1  # struct hashlimit_mt_udata mult: the rate's unit in seconds (bytes: 15)
        self.above, self.burst, self.modes, self.table = False, 5, (), ""
        self.srcmask = self.dstmask = self.expire = None
        self.byte_mode = False  # XT_HASHLIMIT_BYTES
        self.burst_bytes = None
        self.size = self.max = 0
        self.gc_interval = XT_HASHLIMIT_GCINTERVAL
        self.interval = 0  # cfg.interval: the rate match's window, in seconds
        self.family_bits = 32
        self.htable = None  # the match whose settings made the table it shares (None: its own)

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        if option in ("--hashlimit-upto", "--hashlimit-above"):
            if not self._parse_bytes(value) and not self._parse_rate(value):
                raise self.bad_value(option, value)
            self.above = (option == "--hashlimit-above") != invert
        elif option == "--hashlimit-burst":
            self._parse_burst(value)
        elif option in ("--hashlimit-htable-size", "--hashlimit-htable-max", "--hashlimit-htable-gcinterval"):
            setattr(self, {"size": "size", "max": "max", "gcinterval": "gc_interval"}[option.rsplit("-", 1)[1]],
                    self.uint(option, value, 0, 0xFFFFFFFF))
        elif option == "--hashlimit-mode":
            modes = value.split(",")
            if any(m not in HASHLIMIT_MODES for m in modes):
                raise self.bad_value(option, value)
            self.modes = tuple(m for m in HASHLIMIT_MODES if m in modes)
        elif option in ("--hashlimit-srcmask", "--hashlimit-dstmask"):
            setattr(self, option[12:15] + "mask", self.uint(option, value, 0, rule.family.bits))
        elif option == "--hashlimit-name":
            self.table = value
        elif option == "--hashlimit-rate-interval":
            interval = atoi(value)  # parse_interval()
            if interval <= 0:
                raise self.bad_value(option, value)
            self.interval = interval
        elif option == "--hashlimit-htable-expire":
            self.expire = self.uint(option, value, 0, 0xFFFFFFFF)

    def _parse_rate(self, value: str) -> bool:
        """parse_rate(): `N[/second|minute|hour|day]` (any prefix of the unit, any case)."""
        _, slash, unit = value.partition("/")
        mult = 1
        if slash:
            mult = next((seconds for name, seconds in (("second", 1), ("minute", 60), ("hour", 3600), ("day", 86400))
                         if unit and name.startswith(unit.lower())), None)
            if mult is None:
                return False
        rate = atoll(value) & U64
        if not rate:
            return False
        avg = XT_HASHLIMIT_SCALE_V2 * mult // rate
        if avg == 0:
            raise usage_error(f'Rate too fast "{value}"')
        self.avg, self.mult, self.byte_mode = avg, mult, False
        return True

    def _parse_bytes(self, value: str) -> bool:
        """parse_bytes(): `N[k|m]b/s`, kept as the cost of 16 bytes."""
        at = value.find("b/s")
        if at <= 0:
            return False
        rate = atoll(value) & U64
        if rate == 0:
            return False
        octets = rate * {"m": 1024 * 1024, "k": 1024}.get(value[at - 1], 1)
        if octets > U64:
            raise usage_error(f'Rate value too large "{octets}" (max {U64})')
        cost = bytes_to_cost(octets)
        if cost == 0:
            raise usage_error(f'Rate too high "{value}"')
        self.avg, self.mult, self.byte_mode = cost, XT_HASHLIMIT_BYTE_EXPIRE, True
        return True

    def _parse_burst(self, value: str) -> None:
        """parse_burst() of revision 3: a number, a k or m factor after it
        (a plain number at most XT_HASHLIMIT_BURST_MAX)."""
        digits = value[:len(value) - len(value.lstrip("0123456789"))]
        number, end = (int(digits) if digits else None), value[len(digits):]
        if number is None or number < 1 or not end and number > XT_HASHLIMIT_BURST_MAX:
            raise usage_error(f'bad value for option "--hashlimit-burst", or out of range (1-{XT_HASHLIMIT_BURST_MAX}).')
        number *= {"m": 1024 * 1024, "k": 1024}.get(end[:1], 1)
        if number > U64:
            raise usage_error(f'bad value for option "--hashlimit-burst", value "{value}" too large '
                              f'(max {U64 // 1024 // 1024}mb).')
        self.burst, self.burst_bytes = number, number

    @property
    def rate_match(self) -> bool:
        return "--hashlimit-rate-match" in self.given

    def check(self, rule) -> None:
        """hashlimit_mt_check(): the expiry by default the rate's unit; a byte
        rate's burst in bytes becomes a count of refills (rounded up, the
        expiry then 60 s), none when not given; a rate match's packet rate
        per second, its window by default the rate's unit (a byte rate's 1 s)."""
        if self.avg is None:
            raise usage_error("You have to specify --hashlimit")
        self.family_bits = rule.family.bits
        if self.expire is None:
            self.expire = self.mult * 1000
        if self.byte_mode:
            quantum = cost_to_bytes(self.avg)
            if "--hashlimit-burst" in self.given:
                if self.burst_bytes < quantum:
                    raise usage_error(f"burst cannot be smaller than {quantum}b")
                self.burst = -(-self.burst_bytes // quantum)
                if "--hashlimit-htable-expire" not in self.given:
                    self.expire = XT_HASHLIMIT_BYTE_EXPIRE_BURST * 1000
            else:
                self.burst = 0
        if self.rate_match:
            if not self.byte_mode:
                self.avg //= self.mult
            if self.interval == 0:
                self.interval = 1 if self.byte_mode else self.mult

    def kernel_check(self, rule, chain: str, builtin: bool) -> None:
        """hashlimit_mt_check_common(): a garbage collection interval and an
        expiry; a rate match's rate within 32 bits; a byte rate's cost worth
        a credit; a burst's credits within 64 bits."""
        if self.gc_interval == 0 or self.expire == 0:
            raise kernel_refusal(chain)
        if self.rate_match:
            if self.avg == 0 or self.avg > 0xFFFFFFFF:
                raise _out_of_range(chain)
            return
        if self.byte_mode:
            if user2credits_byte(self.avg) == 0:
                raise kernel_refusal(chain)
            return
        if user2credits(self.avg * self.burst & U64) < user2credits(self.avg):
            raise _out_of_range(chain)

    def _rate_text(self, separator: str, window: bool) -> tuple[str, int]:
        """The rate and burst as print_bytes() or print_rate() print them (`window`: a
        rate match's rate over its window, as hashlimit_mt_print() has it), and the
        expiry they leave unsaid."""
        if self.byte_mode:
            octets = cost_to_bytes(self.avg)
            name, unit = next((n, u) for n, u in BYTE_UNITS
                              if not u > 1 or octets >= u and bytes_to_cost(octets & ~(u - 1)) == self.avg)
            text = f"{octets // unit}{name}b/s"
            if not self.burst:
                return text, XT_HASHLIMIT_BYTE_EXPIRE * 1000
            total = octets * self.burst
            name, unit = next((n, u) for n, u in BYTE_UNITS if total >= u or u == 1)
            return f"{text} {separator}burst {total // unit}{name}b", XT_HASHLIMIT_BYTE_EXPIRE_BURST * 1000
        period = self.avg * self.interval if window and self.interval else self.avg
        text, quantum = print_rate(period)
        return f"{text} {separator}burst {self.burst}", quantum

    def _tail(self, prefix: str, quantum: int) -> list[str]:
        """What hashlimit_mt_save() and hashlimit_mt_print() print after the rate alike."""
        parts = []
        if self.size:
            parts.append(f"{prefix}htable-size {self.size}")
        if self.max:
            parts.append(f"{prefix}htable-max {self.max}")
        if self.gc_interval != XT_HASHLIMIT_GCINTERVAL:
            parts.append(f"{prefix}htable-gcinterval {self.gc_interval}")
        if self.expire != quantum:
            parts.append(f"{prefix}htable-expire {self.expire}")
        for option, bits in (("srcmask", self.srcmask), ("dstmask", self.dstmask)):
            if bits is not None and bits != self.family_bits:
                parts.append(f"{prefix}{option} {bits}")
        if self.rate_match:
            parts.append(f"{prefix}rate-match")
            if self.interval != 1:
                parts.append(f"{prefix}rate-interval {self.interval}")
        return parts

    def save(self) -> str:
        """hashlimit_mt_save()."""
        rate, quantum = self._rate_text("--hashlimit-", False)
        parts = [f"-m hashlimit --hashlimit-{'above' if self.above else 'upto'} {rate}"]
        if self.modes:
            parts.append(f"--hashlimit-mode {','.join(self.modes)}")
        parts.append(f"--hashlimit-name {self.table}")
        return " ".join(parts + self._tail("--hashlimit-", quantum))

    def listing(self) -> str:
        """hashlimit_mt_print(): a rate match's rate over its whole window."""
        rate, quantum = self._rate_text("", True)
        parts = [f"limit: {'above' if self.above else 'up to'} {rate}"]
        if self.modes:
            parts.append(f"mode {'-'.join(self.modes)}")
        return " ".join(parts + self._tail("", quantum))

    def _xlate(self) -> str | None:
        """hashlimit_mt_xlate(): a meter keyed by the modes' fields (the
        destination first, ports as tcp's whatever the protocol), none without
        a mode; the rate match's mode bit indexes past the names' array and
        prints as glibc prints a NULL string, `(null)`."""
        keys = []
        for mode, field, bits in (("dstip", "daddr", self.dstmask), ("dstport", "tcp dport", None),
                                  ("srcip", "saddr", self.srcmask), ("srcport", "tcp sport", None)):
            if mode in self.modes:
                key = field if mode.endswith("port") else f"{'ip' if self.family_bits == 32 else 'ip6'} {field}"
                if bits is not None and bits != self.family_bits:
                    key += f" and {_subnet_xlate(bits, self.family_bits)}"
                keys.append(key)
        if self.rate_match:
            keys.append("(null)")
        if not keys:
            return None
        timeout = f" timeout {self.expire // 1000}s" if self.expire != 1000 else ""
        over = " over" if self.above else ""
        if self.byte_mode:
            octets = cost_to_bytes(self.avg)
            name, unit = next((n, u) for n, u in BYTE_UNITS
                              if not u > 1 or octets >= u and bytes_to_cost(octets & ~(u - 1)) == self.avg)
            rate = f" {octets // unit} {name}bytes/second"
            if self.burst:
                total = octets * self.burst
                name, unit = next((n, u) for n, u in BYTE_UNITS if total >= u or u == 1)
                rate += f" burst {total // unit} {name}bytes"
        else:
            rate = f" {print_rate(self.avg, XLATE_RATES)[0]} "
            if self.burst != XT_HASHLIMIT_BURST:
                rate += f"burst {self.burst} packets"
        text = f"meter {self.table} {{ {' . '.join(keys)}{timeout} limit rate{over}{rate}"
        return text + ("}" if text.endswith(" ") else " }")  # xt_xlate_add(): a brace after a word gets a space

    def net_check(self, view, chain: str) -> None:
        """hashlimit_mt_check_common(): htable_find_get() finds the namespace's
        table of this name and family (a rule of the transaction's, or a committed
        one's still holding it) and the rule shares it as it is: its key, rate,
        burst, expiry and sizes stay the settings of the rule that made it
        (htable_create()); hashlimit_mt_common() reads only the upto/above of
        the rule's own. A rule of the other kind (rate match, bytes) on one
        table mixes two layouts of the entries' union: not modelled."""
        creator = htable_find_get(view, self.table)
        if creator is not None and (creator.rate_match, creator.byte_mode) != (self.rate_match, self.byte_mode):
            raise not_modelled(f"--hashlimit-name {self.table} shared by rules of another kind "
                               "(rate match or bytes)")
        self.htable = creator

    def table_settings(self) -> tuple:
        """struct hashlimit_cfg3 as htable_create() keeps it in the table."""
        return (self.modes, self.srcmask, self.dstmask, self.avg, self.burst, self.expire, self.size, self.max,
                self.gc_interval, self.byte_mode, self.rate_match, self.interval)

    def stmts(self, rule) -> list[Stmt]:
        above, family = self.above, rule.family
        cfg = self.htable or self  # hinfo->cfg: the table's settings
        settings = cfg.table_settings()
        modes, byte_mode, max_entries, rate_match = cfg.modes, cfg.byte_mode, cfg.max, cfg.rate_match
        window = per_window = 0
        if rate_match:  # rateinfo_init(): the rate per window and what the window may count
            if byte_mode:
                per_window = (((0xFFFFFFFF // cfg.avg if cfg.avg else 0xFFFFFFFF) - 1)
                              << XT_HASHLIMIT_BYTE_SHIFT)  # user2rate_bytes()
                cap = cfg.burst * per_window if cfg.burst else per_window
            else:
                per_window = XT_HASHLIMIT_SCALE_V2 // cfg.avg  # user2rate()
                cap = cfg.burst + per_window
            cost, window = 0, cfg.interval * HZ
        elif byte_mode:
            cost, cap = user2credits_byte(cfg.avg), CREDITS_PER_JIFFY_BYTES * HZ
        else:
            cost, cap = user2credits(cfg.avg), user2credits(cfg.avg * cfg.burst & U64)
        refills = cfg.burst
        expire = cfg.expire * HZ // 1000  # msecs_to_jiffies()
        masks = [family.all_ones ^ ((1 << (family.bits - bits)) - 1) if bits is not None else family.all_ones
                 for bits in (cfg.srcmask, cfg.dstmask)]
        name = self.table

        def key_of(pkt) -> tuple:
            """hashlimit_init_dst(): the fields the modes name."""
            key = []
            if "srcip" in modes:
                key.append(_masked(_addresses(pkt, True), masks[0]))
            if "dstip" in modes:
                key.append(_masked(_addresses(pkt, False), masks[1]))
            if ("srcport" in modes or "dstport" in modes) and pkt.thoff >= 0 and not pkt.fragoff:
                sport, dport = PORTS.unpack_from(pkt.buf, pkt.thoff)
                if "srcport" in modes:
                    key.append(sport)
                if "dstport" in modes:
                    key.append(dport)
            return tuple(key)

        def build(ctx):
            tables = _HASHLIMIT_TABLES.setdefault(ctx.net, {})
            table = tables.get((family.nft_family, name))
            if table is None or table.settings != settings:  # a table its last rule left is made anew
                table = tables[(family.nft_family, name)] = HashlimitHtable(settings)
            clock = ctx.net.clock

            def hashlimit_rate_mt(pkt) -> bool:
                """The XT_HASHLIMIT_RATE_MATCH branch of hashlimit_mt_common()."""
                key, now = key_of(pkt), int(clock.now * HZ)
                entry = table.get(key)
                if entry is None or now >= entry.expires:
                    if entry is None and max_entries and len(table) >= max_entries:
                        return False  # dsthash_alloc_init(): "max count reached", the packet hotdropped
                    entry = table[key] = RateMatchEnt(now, cap)  # rateinfo_init()
                elif now - entry.prev >= window:  # rateinfo_recalc(): a window has passed
                    entry.prev_window = entry.current_rate * window > (now - entry.prev) * per_window
                    entry.prev, entry.current_rate = now, 0
                entry.expires = now + expire
                entry.current_rate += pkt.skb.len if byte_mode else 1
                return (not entry.prev_window and entry.current_rate <= cap) != above

            def hashlimit_mt(pkt) -> bool:
                key, now = key_of(pkt), int(clock.now * HZ)
                entry = table.get(key)
                if entry is None or now >= entry.expires:  # htable_gc() removes an entry once it expires
                    if entry is None and max_entries and len(table) >= max_entries:
                        return False  # dsthash_alloc_init(): "max count reached", the packet hotdropped
                    entry = table[key] = DsthashEnt(now, cap, refills, byte_mode)  # rateinfo_init()
                elif byte_mode:  # rateinfo_recalc() in bytes: refilled per jiffy, a u32 overflow fills it
                    credit = entry.credit + (now - entry.prev) * CREDITS_PER_JIFFY_BYTES
                    entry.credit = cap if credit > 0xFFFFFFFF else min(credit, cap)
                    entry.prev = now
                else:
                    entry.credit = min(entry.credit + (now - entry.prev) * CREDITS_PER_JIFFY, cap)
                    entry.prev = now
                entry.expires = now + expire
                needed = cost
                if byte_mode:  # hashlimit_byte_cost(): per started 16 bytes, a refill from the burst count
                    needed = min((((pkt.end - pkt.nh) >> XT_HASHLIMIT_BYTE_SHIFT) + 1) * cost, cap)
                    if entry.credit < needed and entry.credit_cap:
                        entry.credit_cap -= 1
                        entry.credit = cap
                if entry.credit >= needed:
                    entry.credit -= needed
                    return not above
                return above
            return hashlimit_rate_mt if rate_match else hashlimit_mt
        return [XtCompat("match", "hashlimit", self._xlate(), build)]


def print_rate(period: int, rates: tuple = SAVE_RATES) -> tuple[str, int]:
    """print_rate() (print_packets_rate_xlate() with nft's unit names): the
    largest unit whose count of periods is exact enough, and that unit's
    milliseconds (the expiry it leaves unsaid)."""
    if period == 0:
        return "inf", 0
    index = next((i for i in range(1, len(rates)) if period > rates[i][1] or
                  rates[i][1] // period < rates[i][1] % period), len(rates))
    name, mult = rates[index - 1]
    return f"{mult // period}/{name}", mult // XT_HASHLIMIT_SCALE_V2 * 1000


def _subnet_xlate(bits: int, width: int) -> str:
    """hashlimit_print_subnet_xlate(): the mask in dotted quads, or eight 4-digit hex groups."""
    mask = ((1 << width) - 1) ^ ((1 << (width - bits)) - 1)
    if width == 32:
        return ".".join(str(mask >> shift & 0xFF) for shift in (24, 16, 8, 0))
    return ":".join(f"{mask >> shift & 0xFFFF:04x}" for shift in range(112, -1, -16))


def _out_of_range(chain: str) -> XtError:
    return kernel_refusal(chain, "Numerical result out of range")


class DsthashEnt:
    """struct dsthash_ent's rateinfo for a token bucket: jiffies it expires at
    and was last refilled at, its credit, and (bytes) the refills left."""

    __slots__ = ("expires", "prev", "credit", "credit_cap", "byte_mode")

    def __init__(self, now: int, credit: int, credit_cap: int, byte_mode: bool) -> None:
        self.expires, self.prev, self.credit, self.credit_cap, self.byte_mode = 0, now, credit, credit_cap, byte_mode


class RateMatchEnt:
    """struct dsthash_ent's rateinfo for a rate match: when its window began,
    whether the window before went over the rate, what this one counted,
    and what it may count (rateinfo.burst)."""

    __slots__ = ("expires", "prev", "prev_window", "current_rate", "burst")

    def __init__(self, now: int, burst: int) -> None:
        self.expires, self.prev, self.prev_window, self.current_rate, self.burst = 0, now, False, 0, burst


class HashlimitHtable(dict):
    """struct xt_hashlimit_htable: the entries by key, and the settings it was made with."""

    def __init__(self, settings: tuple) -> None:
        super().__init__()
        self.settings = settings


_HASHLIMIT_TABLES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # hashlimit_net: the netns's tables


def htable_find_get(view, name: str) -> "HashlimitMatch | None":
    """htable_find_get() by name and family: the match whose settings made the
    table, from a rule of the transaction (`view`'s ruleset) or, failing that, of
    the committed ruleset (its rules hold the table until the transaction that
    deletes them commits); None when no rule holds it (the table is gone)."""
    family = view.family.nft_family
    committed = view.net.nft.ruleset if view.net is not None else None
    for ruleset in (view.ruleset, committed):
        for table in ruleset.tables if ruleset is not None else ():
            if table.family != family:
                continue
            for chain in table.chains.values():
                for rule in chain.rules:
                    for ext in rule.xt.matches if rule.xt is not None else ():
                        if isinstance(ext, HashlimitMatch) and ext.table == name:
                            return ext.htable or ext
    return None


# -- what the line-rate engine reads (harness/mockkernel/linerate/trains.py): a
# train's packets repeat in bulk only what leaves the rest of this state alone

def per_key_cells(net) -> list[tuple]:
    """(entry, attribute, lowest value or None, refill per second or None) of
    each hashlimit entry's number a train may move in bulk: a packet bucket's
    credit (it passes while the credit lasts, refilled CREDITS_PER_JIFFY a
    jiffy) and a rate match's count (it only adds up)."""
    cells = []
    for table in (_HASHLIMIT_TABLES.get(net) or {}).values():
        for entry in table.values():
            if entry.__class__ is RateMatchEnt:
                cells.append((entry, "current_rate", None, None))
            elif not entry.byte_mode:
                cells.append((entry, "credit", 0, CREDITS_PER_JIFFY * HZ))
    return cells


def per_key_entries(net) -> tuple:
    """Which hashlimit entries there are: per_key_cells() changes with them."""
    return tuple(id(entry) for table in (_HASHLIMIT_TABLES.get(net) or {}).values() for entry in table.values())


def per_key_state(net) -> tuple:
    """The rest of what hashlimit and recent keep per key, for the engine's
    shape: a packet that changes it (a new entry, a byte bucket's credit, a
    rate match's count up to one past what the window may count, an
    address's stamps) is not one a train may repeat in bulk."""
    hashlimit = _HASHLIMIT_TABLES.get(net)
    recent = _RECENT_TABLES.get(net)
    if not hashlimit and not recent:
        return ()
    return (tuple((key, tuple((id(entry), *_entry_shape(entry)) for entry in table.values()))
                  for key, table in (hashlimit or {}).items()),
            tuple((name, tuple((ttl, tuple(stamps)) for ttl, stamps in table.values()))
                  for name, table in (recent or {}).items()))


def _entry_shape(entry) -> tuple:
    if entry.__class__ is RateMatchEnt:
        return entry.expires, entry.prev, entry.prev_window, min(entry.current_rate, entry.burst + 1)
    if entry.byte_mode:
        return entry.expires, entry.prev, entry.credit, entry.credit_cap
    return entry.expires, entry.prev


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
        elif option == "--connlimit-mask":  # a length past the family's width is all of it
            self.plen = min(self.uint(option, value, 0, 128), rule.family.bits)

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
    """libxt_connbytes.c; xt_connbytes.c connbytes_mt(): the connection's
    packets, bytes or average packet size (nf_conn_acct) in one direction
    or both, within FROM:TO (`!`: FROM and TO swapped, outside them).
    connbytes_mt_check() turns accounting on (nf_ct_set_acct()); a packet
    without an entry, or an entry made before, does not match."""

    name = "connbytes"
    OPTIONS = (XtOpt(("--connbytes",), invert=True, mandatory=True), XtOpt(("--connbytes-dir",), mandatory=True),
               XtOpt(("--connbytes-mode",), mandatory=True))
    DIRECTIONS, MODES = ("original", "reply", "both"), ("packets", "bytes", "avgpkt")

    def __init__(self) -> None:
        super().__init__()
        self.low, self.high, self.direction, self.mode = 0, 0, "original", "packets"

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        if option == "--connbytes":
            low, high = self.uint_range(option, value, U64)
            high = high if ":" in value else U64
            if high < low:
                raise usage_error(f"{low} should be less than {high}")
            self.low, self.high = (high, low) if invert else (low, high)
        elif option == "--connbytes-dir":
            if value not in self.DIRECTIONS:
                raise usage_error(f"Unknown --connbytes-dir `{value}'")
            self.direction = value
        elif value not in self.MODES:
            raise usage_error(f"Unknown --connbytes-mode `{value}'")
        else:
            self.mode = value

    def _bounds(self) -> tuple[bool, int, int]:
        invert = self.low > self.high
        return (invert, self.high, self.low) if invert else (invert, self.low, self.high)

    def save(self) -> str:
        invert, low, high = self._bounds()
        count = f"{low}" + (f":{high}" if high and high < U64 else "")
        return (f"-m connbytes {inv(invert)}--connbytes {count} --connbytes-mode {self.mode} "
                f"--connbytes-dir {self.direction}")

    def listing(self) -> str:
        invert, low, high = self._bounds()
        count = f"{low}" + (f":{high}" if high and high < U64 else "")
        return f"{'! ' if invert else ''}connbytes {count} connbytes mode {self.mode} connbytes direction " \
               f"{self.direction}"

    def _xlate(self) -> str:
        invert, low, high = self._bounds()
        where = "" if self.direction == "both" else f"{self.direction} "
        value = str(low) if low == high else f"{'lt' if invert else 'ge'} {low}" if high == U64 else \
            f"{'!= ' if invert else ''}{low}-{high}"
        return f"ct {where}{self.mode} {value}"

    def stmts(self, rule) -> list[Stmt]:
        low, high, direction, mode = self.low, self.high, self.direction, self.mode

        def build(ctx):
            ctx.net.conntrack.acct = True  # connbytes_mt_check(): nf_ct_set_acct(net, true)

            def connbytes_mt(pkt) -> bool:
                ct = pkt.skb.nfct
                if ct is None or ct is UNTRACKED or ct.acct is None:
                    return False
                counters = ct.acct if direction == "both" else [ct.acct[direction == "reply"]]
                packets, octets = sum(c[0] for c in counters), sum(c[1] for c in counters)
                what = packets if mode == "packets" else octets if mode == "bytes" else \
                    (octets // packets if packets else 0)
                if high >= low:
                    return low <= what <= high
                return what < high or what > low
            return connbytes_mt
        return [XtCompat("match", "connbytes", self._xlate(), build, needs_conntrack=True)]


# ------------------------------------------------------------------ connlabel

XT_CONNLABEL_MAXBIT = 127
CONNLABEL_CONF = "/etc/xtables/connlabel.conf"


class ConnlabelMatch(XtMatch):
    """libxt_connlabel.c; xt_connlabel.c connlabel_mt(): the connection's
    label bit set (`!`: not set); with --set the bit is set and it matches.
    No entry or an untracked packet matches only `!`. Label names come from
    /etc/xtables/connlabel.conf, which the mock kernel's DUT does not have."""

    name = "connlabel"
    OPTIONS = (XtOpt(("--label",), invert=True, mandatory=True), XtOpt(("--set",), arg=False))

    def __init__(self) -> None:
        super().__init__()
        self.bit, self.invert = 0, False

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        if option == "--set":
            return
        number = c_strtoul(value) if value else None
        if number is None:
            raise XtError(f"Warning: cannot open {CONNLABEL_CONF}: No such file or directory\n"
                          f"{{prog}} v1.8.9 (nf_tables): label '{value}' not found or invalid value\n"
                          "Try `{prog} -h' or '{prog} --help' for more information.", 2)
        self.bit, self.invert = number & 0xFFFF, invert  # info->bit is a __u16

    def kernel_check(self, rule, chain: str, builtin: bool) -> None:
        if self.bit > XT_CONNLABEL_MAXBIT:  # connlabel_mt_check(): -ERANGE
            raise XtError(f"{{prog}} v1.8.9 (nf_tables):  RULE_APPEND failed (Numerical result out of range): "
                          f"rule in chain {chain}", 4)

    def save(self) -> str:
        return f'-m connlabel {inv(self.invert)}--label "{self.bit}"' + (" --set" if "--set" in self.given else "")

    def listing(self) -> str:
        return f"connlabel {'! ' if self.invert else ''}{self.bit}" + (" set" if "--set" in self.given else "")

    def stmts(self, rule) -> list[Stmt]:
        bit, invert, set_it = 1 << self.bit, self.invert, "--set" in self.given
        text = (f"ct label set {self.bit} " if set_it else "") + \
            f"ct label {f'and {self.bit} != ' if invert else ''}{self.bit}"

        def build(ctx):
            def connlabel_mt(pkt) -> bool:
                ct = pkt.skb.nfct
                if ct is None or ct is UNTRACKED:
                    return invert
                if ct.labels & bit:
                    return not invert
                if set_it:
                    ct.labels |= bit
                    return not invert
                return invert
            return connlabel_mt
        return [XtCompat("match", "connlabel", text, build, needs_conntrack=True)]


STATEFUL_MATCHES = {"recent": RecentMatch, "hashlimit": HashlimitMatch, "connlimit": ConnlimitMatch,
                    "connbytes": ConnbytesMatch, "connlabel": ConnlabelMatch}
