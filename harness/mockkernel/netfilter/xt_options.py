"""libxtables' option handling (iptables 1.8.9 libxtables/xtoptions.c) for the
mock's iptables extensions: each extension lists its options as the C ones do
in their `xt_option_entry` tables (a name and its aliases, whether it takes an
argument, may be inverted or given twice, must be given, excludes or needs
others); `XtExtension.take()` is xtables_option_parse() and `final_check()`
xtables_option_mfcall()/tfcall(): the extension's own check (x6_fcheck), then
the table's (xtables_options_fcheck), each refusing with libxtables' message.
"""
from __future__ import annotations

from dataclasses import dataclass

from harness.mockkernel.lib.libc import C_SPACE, strtoumax

PROG = "{prog}"  # the program's name in a message: iptables, ip6tables, iptables-restore, ...
VERSION = f"{PROG} v1.8.9 (nf_tables)"


class XtError(Exception):
    """What iptables prints on failure, and its exit status."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.message, self.status = message, status

    def render(self, prog: str) -> str:
        """The message as `prog` prints it."""
        return self.message.replace(PROG, prog)


def not_modelled_error(what: str) -> XtError:
    """Valid for iptables, left out by the mock kernel: said so, naming it."""
    return XtError(f"{what} is not modelled by the mock kernel", 1)


def usage_error(message: str) -> XtError:
    """xtables_error(PARAMETER_PROBLEM, ...): the message, then the help hint."""
    return XtError(f"{VERSION}: {message}\nTry `{PROG} -h' or '{PROG} --help' for more information.", 2)


@dataclass(frozen=True)
class XtOpt:
    """One entry of an extension's option table; `names[0]` is the one messages use."""

    names: tuple[str, ...]
    arg: bool = True  # takes a value (XTTYPE_NONE: no)
    invert: bool = False  # XTOPT_INVERT
    multi: bool = False  # XTOPT_MULTI: may be given again
    mandatory: bool = False  # XTOPT_MAND
    excl: tuple[str, ...] = ()  # canonical names it cannot go with
    also: tuple[str, ...] = ()  # canonical names it needs

    @property
    def name(self) -> str:
        return self.names[0]


def exclusive(names: tuple[str, ...], no_arg: tuple[str, ...] = ()) -> tuple[XtOpt, ...]:
    """Options of which at most one may be given (each excludes the others)."""
    return tuple(XtOpt((name,), arg=name not in no_arg, excl=tuple(n for n in names if n != name)) for name in names)


class XtExtension:
    """A match or target: its option table, what was given, and its checks."""

    name = ""
    OPTIONS: tuple[XtOpt, ...] = ()

    def __init__(self) -> None:
        self.given: set[str] = set()  # canonical option names seen

    def option(self, word: str) -> XtOpt | None:
        return next((o for o in self.OPTIONS if word in o.names), None)

    def take(self, word: str, words: list[str], invert: bool, rule) -> None:
        """xtables_option_parse(): one option and its value."""
        opt = self.option(word)
        if invert and not opt.invert:
            raise self.error(f'option "{opt.name}" cannot be inverted.\n')
        if opt.name in self.given and not opt.multi:
            raise self.error(f'option "{opt.name}" can only be used once.\n')
        if opt.arg and not words:
            raise usage_error(f'option "{word}" requires an argument')
        self.given.add(opt.name)
        self.parse(opt.name, words.pop(0) if opt.arg else None, invert, rule)

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        raise NotImplementedError

    def check(self, rule) -> None:
        """The extension's own final check (x6_fcheck)."""

    def final_check(self, rule) -> None:
        self.check(rule)
        for opt in self.OPTIONS:
            if opt.mandatory and opt.name not in self.given:
                raise self.error(f'option "{opt.name}" must be specified\n')
            if opt.name not in self.given:
                continue
            clash = next((o for o in opt.excl if o in self.given), None)
            if clash is not None:
                raise self.error(f'option "{opt.name}" cannot be used together with "{clash}".\n')
            missing = next((o for o in opt.also if o not in self.given), None)
            if missing is not None:
                raise self.error(f'option "{opt.name}" also requires "{missing}".\n')

    def net_check(self, view, chain: str) -> None:
        """What its checkentry refuses by what the namespace holds, looked up
        by name (xt_rateest_lookup()): `view` is the XtTables the rule joins
        (the transaction's ruleset, the namespace it commits to)."""

    def error(self, message: str) -> XtError:
        return usage_error(f"{self.name}: {message}")

    # -- libxtables' typed values

    def uint(self, option: str, value: str, low: int, high: int) -> int:
        """XTTYPE_UINT*: base 0 (0x.., 0..), within [low, high]."""
        number = c_strtoul(value)
        if number is None or not low <= number <= high:
            raise self.error(f'bad value for option "{option}", or out of range ({low}-{high}).\n')
        return number

    def uint_range(self, option: str, value: str, high: int) -> tuple[int, int]:
        """XTTYPE_UINT*RC: `N`, `N:M`, `N:` or `:M`, each within [0, high]."""
        low_text, colon, high_text = value.partition(":")
        bounds = []
        # xtopt_parse_mint() names the rest of the argument from the part it could not read
        for text, rest, default in ((low_text, value, 0), (high_text if colon else low_text, high_text, high)):
            number = c_strtoul(text) if text else default
            if number is None or number > high:
                raise self.error(f'bad value for option "{option}" near "{rest}", or out of range (0-{high}).\n')
            bounds.append(number)
        return bounds[0], bounds[1]

    def markmask(self, option: str, value: str) -> tuple[int, int]:
        """XTTYPE_MARKMASK32, xtables_parse_val_mask(): `VALUE[/MASK]`, the
        mask all ones when left out; anything after a number but the `/`
        before the mask is trailing garbage."""
        mark, end = self._u32_at(option, value, 0)
        if end == len(value):
            return mark, 0xFFFFFFFF
        if value[end] == "/":
            mask, end = self._u32_at(option, value, end + 1)
            if end == len(value):
                return mark, mask
        raise self.error(f'trailing garbage after value for option "{option}".\n')

    def _u32_at(self, option: str, value: str, at: int) -> tuple[int, int]:
        """xtables_strtoui(value + at, &end, 0, UINT32_MAX) or the mark's bad value."""
        read = xtables_strtoul(value, at)
        if read is None or read[0] > 0xFFFFFFFF:
            raise self.error(f'bad integer value for option "{option}", or out of range.\n')
        return read

    def bad_value(self, option: str, value: str) -> XtError:
        """xtables_param_act(XTF_BAD_VALUE)."""
        return usage_error(f'{self.name}: Bad value for "{option}" option: "{value}"')


def xtables_strtoul(text: str, at: int = 0) -> tuple[int, int] | None:
    """xtables_strtoul() (base 0): strtoumax(), a `-` (after blanks) refused
    first; (value, end), None when it reads no number or ERANGE."""
    if text[at:].lstrip(C_SPACE).startswith("-"):
        return None
    return strtoumax(text, at)


def c_strtoul(text: str) -> int | None:
    """xtables_strtoul(s, NULL, ...): the whole text one unsigned number
    (blanks and a `+` may lead it; decimal, 0x hex, 0 octal), else None."""
    read = xtables_strtoul(text)
    return read[0] if read is not None and read[1] == len(text) else None
