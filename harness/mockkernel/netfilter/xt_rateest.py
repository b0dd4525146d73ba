"""The rate estimator family: `-j RATEEST` (libxt_RATEEST.c; net/netfilter/
xt_RATEEST.c) counts the packets it sees into a named estimator of the network
namespace (net/core/gen_estimator.c, core/gen_estimator.py); `-m rateest`
(libxt_rateest.c; net/netfilter/xt_rateest.c) compares an estimator's rates
with given ones or with another estimator's.

An estimator lives while a rule refers to it (xt_rateest_lookup() takes a
reference, xt_rateest_put() drops it): the RATEEST target that made it, or a
rateest match that found it. iptables-nft runs both through nft_compat
(`xt target RATEEST`, `xt match rateest` in `nft list`: neither has a
translation).
"""
from __future__ import annotations

import math
import weakref

from harness.mockkernel.core.gen_estimator import GnetStatsBasic, NetRateEstimator
from harness.mockkernel.lib.utils_math import TIME_UNITS_PER_SEC, c_uint32, get_time, rate_bytes
from harness.mockkernel.netfilter.nf_tables import ENOENT
from harness.mockkernel.netfilter.nft_compat import XtCompat
from harness.mockkernel.netfilter.nft_exprs import Stmt
from harness.mockkernel.netfilter.xt_matches import XtMatch, c_strtoul, kernel_refusal
from harness.mockkernel.netfilter.xt_options import XtOpt, usage_error
from harness.mockkernel.netfilter.xt_targets import XtTarget

NAME_SIZE = 16  # IFNAMSIZ: struct xt_rateest_target_info name, xt_rateest_match_info name1/name2
# xt_rateest_match_info flags and modes (include/uapi/linux/netfilter/xt_rateest.h)
XT_RATEEST_MATCH_INVERT, XT_RATEEST_MATCH_ABS, XT_RATEEST_MATCH_REL = 1, 2, 4
XT_RATEEST_MATCH_DELTA, XT_RATEEST_MATCH_BPS, XT_RATEEST_MATCH_PPS = 8, 16, 32
XT_RATEEST_MATCH_NONE, XT_RATEEST_MATCH_EQ, XT_RATEEST_MATCH_LT, XT_RATEEST_MATCH_GT = 0, 1, 2, 3
MODE_NAMES = {XT_RATEEST_MATCH_EQ: "eq", XT_RATEEST_MATCH_LT: "lt", XT_RATEEST_MATCH_GT: "gt"}


# ------------------------------------------------------------------ the namespace's estimators

class XtRateest:
    """struct xt_rateest: a named estimator, its counters and parameters."""

    __slots__ = ("name", "params", "bstats", "estimator", "__weakref__")

    def __init__(self, name: str, params: tuple[int, int], clock) -> None:
        self.name, self.params, self.bstats = name, params, GnetStatsBasic()
        self.estimator = NetRateEstimator(self.bstats, clock, *params)


# xt_rateest_net: each namespace's estimators by name, alive while a compiled rule holds one
_RATEEST_NETS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def xt_rateest_get(net, name: str, params: tuple[int, int]) -> XtRateest:
    """The namespace's estimator of that name, made now if no rule holds it
    (xt_rateest_tg_checkentry(): gen_new_estimator())."""
    estimators = _RATEEST_NETS.setdefault(net, weakref.WeakValueDictionary())
    est = estimators.get(name)
    if est is None:
        est = estimators[name] = XtRateest(name, params, net.clock)
    return est


def rateest_counters(net) -> list[GnetStatsBasic]:
    """The counters of the namespace's live estimators: what a line-rate train's
    packets add to in bulk (they only add up; est_timer() reads them)."""
    return [est.bstats for est in _RATEEST_NETS.get(net, {}).values()]


def xt_rateest_lookup(view, name: str) -> tuple[int, int] | None:
    """xt_rateest_lookup(): the parameters of the estimator of that name a
    rule of the namespace (any table, either family) holds, None if none
    does: a committed rule's (it holds its estimator until the transaction
    that deletes it commits, as a flushing iptables-restore does) or a rule's
    of this transaction."""
    live = (_RATEEST_NETS.get(view.net) or {}).get(name) if view.net is not None else None
    if live is not None:
        return live.params
    for table in view.ruleset.tables:
        for chain in table.chains.values():
            for rule in chain.rules:
                xt = rule.xt
                if xt is None:
                    continue
                for ext in (xt.target, *xt.matches):
                    params = ext.estimators.get(name) if isinstance(ext, (RateestTarget, RateestMatch)) else None
                    if params is not None:
                        return params
    return None


# ------------------------------------------------------------------ RATEEST

def print_time(usecs: int) -> str:
    """RATEEST_print_time()."""
    if usecs >= TIME_UNITS_PER_SEC:
        return f"{usecs / TIME_UNITS_PER_SEC:.1f}s"
    if usecs >= TIME_UNITS_PER_SEC // 1000:
        return f"{usecs / 1000:.1f}ms"
    return f"{usecs}us"


class RateestTarget(XtTarget):
    """libxt_RATEEST.c; xt_RATEEST.c xt_rateest_tg(): the packet's length and
    one packet added to the estimator's counters, the packet goes on
    (XT_CONTINUE). xt_rateest_tg_checkentry() makes the estimator, or takes
    the one of that name when its interval and ewma_log are the same (else
    EINVAL)."""

    name = "RATEEST"
    OPTIONS = (XtOpt(("--rateest-name",), mandatory=True), XtOpt(("--rateest-interval",), mandatory=True),
               XtOpt(("--rateest-ewmalog",), mandatory=True))

    def __init__(self, name: str = "", family=None, goto: bool = False) -> None:
        super().__init__(name, family, goto)
        self.est_name, self.interval_us, self.ewma_us = "", 0, 0  # the name, and struct rateest_tg_udata
        self.interval = self.ewma_log = 0  # xt_rateest_target_info: interval -2..3, ewma_log 1..30

    @property
    def estimators(self) -> dict[str, tuple[int, int]]:
        return {self.est_name: (self.interval, self.ewma_log)}

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        if option == "--rateest-name":
            self.est_name = value[:NAME_SIZE - 1]
            return
        usecs = get_time(value)
        if usecs is None:
            kind = "interval" if option == "--rateest-interval" else "ewmalog"
            raise usage_error(f'RATEEST: bad {kind} value "{value}"')
        if option == "--rateest-interval":
            self.interval_us = usecs
        else:
            self.ewma_us = usecs

    def check(self, rule) -> None:
        """RATEEST_final_check(): the interval as the power of two of 250 ms
        it fits, the averaging time as the largest ewma_log whose time
        constant, interval / -ln(1 - 2^-ewma_log), stays within it."""
        interval = next((i for i in range(6) if self.interval_us <= (1 << i) * (TIME_UNITS_PER_SEC // 4)), None)
        if interval is None:
            raise usage_error("RATEEST: interval value is too large")
        self.interval = interval - 2
        ewma_log = 1
        while ewma_log < 32:
            weight = 1.0 - 1.0 / (1 << ewma_log if ewma_log < 31 else -(1 << 31))  # 1 << 31 is INT_MIN in C
            if self.interval_us / -math.log(weight) > self.ewma_us:
                break
            ewma_log += 1
        self.ewma_log = ewma_log - 1
        if self.ewma_log == 0 or self.ewma_log >= 31:
            raise usage_error("RATEEST: ewmalog value is out of range")

    def _times(self) -> tuple[str, str]:
        interval = (TIME_UNITS_PER_SEC << (self.interval + 2)) // 4
        return print_time(interval), print_time(interval * (1 << self.ewma_log) & 0xFFFFFFFF)

    def save_options(self) -> str:
        interval, ewma = self._times()
        return f" --rateest-name {self.est_name} --rateest-interval {interval} --rateest-ewmalog {ewma}"

    def listing(self) -> str:
        interval, ewma = self._times()
        return f"name {self.est_name} interval {interval} ewmalog {ewma}"

    def net_check(self, view, chain: str) -> None:
        """xt_rateest_tg_checkentry(): an estimator of that name must have these parameters."""
        params = xt_rateest_lookup(view, self.est_name)
        if params is not None and params != (self.interval, self.ewma_log):
            raise kernel_refusal(chain)

    def stmts(self, rule) -> list[Stmt]:
        name, params = self.est_name, (self.interval, self.ewma_log)

        def build(ctx):
            est = xt_rateest_get(ctx.net, name, params)  # held by this function: the rule's reference

            def xt_rateest_tg(pkt) -> None:
                est.estimator.run_timers()
                bstats = est.bstats
                bstats.bytes += pkt.skb.len
                bstats.packets += 1
            return xt_rateest_tg
        return [XtCompat("target", "RATEEST", None, build)]


# ------------------------------------------------------------------ rateest

def get_rate(text: str) -> int | None:
    """rateest_get_rate(): bytes per second from bits per second (no suffix) or a suffixed rate."""
    rate = rate_bytes(text)
    return None if rate is None else c_uint32(rate)


def print_rate(rate: int, numeric: bool) -> str:
    """rateest_print_rate()."""
    bits = float(rate) * 8
    if numeric:
        return f"{rate}"
    if bits >= 1000.0 * 1000000.0:
        return f"{bits / 1000000.0:.0f}Mbit"
    if bits >= 1000.0 * 1000.0:
        return f"{bits / 1000.0:.0f}Kbit"
    return f"{bits:.0f}bit"


class RateestMatch(XtMatch):
    """libxt_rateest.c (an old-style parser: a rate after --rateest-bps* and
    --rateest-pps* is optional); xt_rateest.c xt_rateest_mt(): the first
    estimator's rates (DELTA: the given rates less them, not below 0) against
    the given rates (ABS) or the second estimator's (REL; DELTA: the given
    rates less them), each of bps and pps asked for compared lt/gt/eq, all
    of them true, INVERT turning the answer round."""

    name = "rateest"
    # option -> (flag bit of libxt_rateest's `*flags`, what it takes)
    WORDS = {"--rateest1": ("--rateest1", "name1"), "--rateest": ("--rateest1", "name1"),
             "--rateest2": ("--rateest2", "name2"), "--rateest-bps1": ("--rateest-bps1", "bps1"),
             "--rateest-pps1": ("--rateest-pps1", "pps1"), "--rateest-bps2": ("--rateest-bps2", "bps2"),
             "--rateest-pps2": ("--rateest-pps2", "pps2"), "--rateest-bps": ("--rateest-bps2", "bps2"),
             "--rateest-pps": ("--rateest-pps2", "pps2"), "--rateest-delta": ("--rateest-delta", "delta"),
             "--rateest-lt": ("--rateest-lt", XT_RATEEST_MATCH_LT),
             "--rateest-gt": ("--rateest-gt", XT_RATEEST_MATCH_GT),
             "--rateest-eq": ("--rateest-eq", XT_RATEEST_MATCH_EQ)}

    def __init__(self) -> None:
        super().__init__()
        self.name1 = self.name2 = ""
        self.flags, self.mode = 0, XT_RATEEST_MATCH_NONE
        self.bps1 = self.pps1 = self.bps2 = self.pps2 = 0
        self.estimators: dict[str, tuple[int, int]] = {}  # the estimators found (their parameters), by name

    def option(self, word: str) -> XtOpt | None:
        return XtOpt((word,), arg=word in ("--rateest1", "--rateest", "--rateest2")) if word in self.WORDS else None

    def take(self, word: str, words: list[str], invert: bool, rule) -> None:
        """rateest_parse()."""
        flag, what = self.WORDS[word]
        if isinstance(what, int):  # lt, gt, eq: each once, the last one given counts
            if flag in self.given:
                raise usage_error("rateest: can't specify lt/gt/eq twice")
            self.given.add(flag)
            self.mode = what
            if invert:
                self.flags |= XT_RATEEST_MATCH_INVERT
            return
        if invert:
            noun = {"name1": "rateest", "name2": "rateest", "delta": "rateest-delta"}.get(what, f"rateest-{what[:3]}")
            raise usage_error(f"rateest: {noun} can't be inverted")
        if flag in self.given:
            raise usage_error(f"rateest: can't specify {flag} twice")
        if what in ("name1", "name2") and not words:
            raise usage_error(f'option "{word}" requires an argument')
        self.given.add(flag)
        if what in ("name1", "name2"):
            setattr(self, what, words.pop(0)[:NAME_SIZE - 1])
            if what == "name2":
                self.flags |= XT_RATEEST_MATCH_REL
        elif what == "delta":
            self.flags |= XT_RATEEST_MATCH_DELTA
        else:
            self.flags |= XT_RATEEST_MATCH_BPS if what.startswith("bps") else XT_RATEEST_MATCH_PPS
            if not words or words[0][:1] in ("-", "!"):  # the rate is optional
                return
            text = words.pop(0)
            if what.startswith("bps"):
                value = get_rate(text)
                if value is None:
                    raise usage_error(f"rateest: could not parse rate `{text}'")
            else:
                value = c_strtoul(text)
                if value is None or value > 0xFFFFFFFF:
                    raise usage_error(f"rateest: could not parse pps `{text}'")
            setattr(self, what, value)

    def check(self, rule) -> None:
        """rateest_final_check(): without a second estimator the comparison is with given rates."""
        if not self.flags & XT_RATEEST_MATCH_REL:
            self.flags |= XT_RATEEST_MATCH_ABS

    def kernel_check(self, rule, chain: str, builtin: bool) -> None:
        """xt_rateest_mt_checkentry(): bps or pps, and lt, gt or eq, asked for."""
        if not self.flags & (XT_RATEEST_MATCH_BPS | XT_RATEEST_MATCH_PPS) or self.mode == XT_RATEEST_MATCH_NONE:
            raise kernel_refusal(chain)

    def net_check(self, view, chain: str) -> None:
        """xt_rateest_mt_checkentry(): the estimators named must exist (ENOENT)."""
        names = [self.name1] + ([self.name2] if self.flags & XT_RATEEST_MATCH_REL else [])
        for name in names:
            params = xt_rateest_lookup(view, name)
            if params is None:
                raise kernel_refusal(chain, ENOENT)
            self.estimators[name] = params

    def _mode(self) -> str:
        """rateest_print_mode() with the --rateest- prefix."""
        return f"{'! ' if self.flags & XT_RATEEST_MATCH_INVERT else ''}--rateest-{MODE_NAMES[self.mode]}"

    def _save_rate(self, unit: str, first: int, second: int) -> list[str]:
        """__rateest_save_rate(): bps rates in bits, pps as numbers."""
        text = (lambda rate: print_rate(rate, False)) if unit == "bps" else str
        if self.flags & XT_RATEEST_MATCH_DELTA:
            parts = [f"--rateest-{unit}1 {text(first)}", self._mode(), f"--rateest-{unit}2"]
        else:
            parts = [self._mode(), f"--rateest-{unit}"]
        if self.flags & (XT_RATEEST_MATCH_ABS | XT_RATEEST_MATCH_DELTA):
            parts[-1] += f" {text(second)}"
        return parts

    def save(self) -> str:
        """rateest_save()."""
        parts = ["-m rateest"]
        if self.flags & XT_RATEEST_MATCH_DELTA:
            parts.append("--rateest-delta")
        parts.append(f"--rateest1 {self.name1}" if self.flags & XT_RATEEST_MATCH_REL else f"--rateest {self.name1}")
        if self.flags & XT_RATEEST_MATCH_BPS:
            parts += self._save_rate("bps", self.bps1, self.bps2)
        if self.flags & XT_RATEEST_MATCH_PPS:
            parts += self._save_rate("pps", self.pps1, self.pps2)
        if self.flags & XT_RATEEST_MATCH_REL:
            parts.append(f"--rateest2 {self.name2}")
        return " ".join(parts)

    def listing(self) -> str:
        """rateest_print() as `iptables -L -n` prints it (rates in bytes per second)."""
        flags = self.flags
        mode = f"{'! ' if flags & XT_RATEEST_MATCH_INVERT else ''}{MODE_NAMES.get(self.mode, '')}"
        parts = ["rateest match", self.name1] if self.name1 else ["rateest match"]
        if flags & XT_RATEEST_MATCH_DELTA:
            parts.append("delta")
        if flags & XT_RATEEST_MATCH_BPS:
            parts.append("bps")
            if flags & XT_RATEEST_MATCH_DELTA:
                parts.append(str(self.bps1))
            if flags & XT_RATEEST_MATCH_ABS:
                parts += [str(self.bps2), mode]
        if flags & XT_RATEEST_MATCH_PPS:
            parts.append("pps")
            if flags & XT_RATEEST_MATCH_DELTA:
                parts.append(str(self.pps1))
            if flags & XT_RATEEST_MATCH_ABS:
                parts += [mode, str(self.pps2)]
        if flags & XT_RATEEST_MATCH_REL:
            parts += [mode, self.name2]
            if flags & XT_RATEEST_MATCH_BPS:
                parts += ["bps"] + ([str(self.bps2)] if flags & XT_RATEEST_MATCH_DELTA else [])
            if flags & XT_RATEEST_MATCH_PPS:
                parts += ["pps"] + ([str(self.pps2)] if flags & XT_RATEEST_MATCH_DELTA else [])
        return " ".join(parts)

    def stmts(self, rule) -> list[Stmt]:
        flags, mode = self.flags, self.mode
        names = [self.name1] + ([self.name2] if flags & XT_RATEEST_MATCH_REL else [])
        params = [self.estimators.get(name, (0, 1)) for name in names]
        given = ((self.bps1, self.pps1), (self.bps2, self.pps2))
        delta, absolute = flags & XT_RATEEST_MATCH_DELTA, flags & XT_RATEEST_MATCH_ABS
        want_bps, want_pps = flags & XT_RATEEST_MATCH_BPS, flags & XT_RATEEST_MATCH_PPS
        invert = bool(flags & XT_RATEEST_MATCH_INVERT)
        compare = {XT_RATEEST_MATCH_LT: lambda a, b: a < b, XT_RATEEST_MATCH_GT: lambda a, b: a > b,
                   XT_RATEEST_MATCH_EQ: lambda a, b: a == b}[mode]

        def build(ctx):
            held = [xt_rateest_get(ctx.net, name, p) for name, p in zip(names, params)]  # the rule's references

            def rates(index: int) -> tuple[int, int]:
                bps, pps = held[index].estimator.read()
                if not delta:
                    return bps, pps
                given_bps, given_pps = given[index]
                return (given_bps - bps if given_bps >= bps else 0), (given_pps - pps if given_pps >= pps else 0)

            def xt_rateest_mt(pkt) -> bool:
                bps1, pps1 = rates(0)
                bps2, pps2 = given[1] if absolute else rates(1)
                ret = True
                if want_bps:
                    ret &= compare(bps1, bps2)
                if want_pps:
                    ret &= compare(pps1, pps2)
                return ret != invert
            return xt_rateest_mt
        return [XtCompat("match", "rateest", None, build)]


RATEEST_MATCHES = {"rateest": RateestMatch}
RATEEST_TARGETS = {"RATEEST": RateestTarget}
