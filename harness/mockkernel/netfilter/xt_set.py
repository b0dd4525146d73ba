"""-m set and -j SET (iptables 1.8.9 extensions/libxt_set.c revision 4,
libxt_SET.c revision 3; net/netfilter/xt_set.c over ipset).

The mock models no ipset: no `ipset` command creates a set, so every set a
rule names is missing, and libxt_set's lookup while parsing
(get_set_byname(): IP_SET_OP_GET_FNAME answers IPSET_INVALID_ID) refuses the
rule with "Set NAME doesn't exist." as iptables does on a kernel with no
such set. What comes before the lookup is parsed as the extensions parse it
(old-style getopt options): a set option takes the set's name and the next
word (its flags, which must not start with `-` or `!`), a name of 32
characters or more is too long; the other options are checked as far as
they refuse anything; with no set option the final check refuses the rule.
"""
from __future__ import annotations

from harness.mockkernel.netfilter.xt_matches import XtMatch
from harness.mockkernel.netfilter.xt_options import XtError, XtOpt, c_strtoul, usage_error
from harness.mockkernel.netfilter.xt_targets import XtTarget

IPSET_MAXNAMELEN = 32  # include/linux/netfilter/ipset/ip_set.h
UINT64_MAX = (1 << 64) - 1
COUNTERS = tuple(f"--{what}-{op}" for what in ("packets", "bytes") for op in ("eq", "lt", "gt"))
SET_MATCH_OPTIONS = ("--match-set", "--set", "--return-nomatch", "--update-counters", "--update-subcounters") + COUNTERS


def get_set_byname(words: list[str], option: str, name: str) -> None:
    """parse_target() / set_parse_v4()'s set option: the flags word must be
    there, the name short enough, and the set must exist (none does)."""
    if not words or words[0].startswith(("-", "!")):
        raise usage_error(f"--{option} requires two args.")
    if len(name.encode()) > IPSET_MAXNAMELEN - 1:
        raise usage_error(f"setname `{name}' too long, max {IPSET_MAXNAMELEN - 1} characters.")
    raise usage_error(f"Set {name} doesn't exist.\n")


class SetMatch(XtMatch):
    """[!] --match-set NAME FLAGS (--set, deprecated, alike), --return-nomatch,
    [!] --update-counters, [!] --update-subcounters, [!] --packets-eq N,
    --packets-lt/-gt N, [!] --bytes-eq N, --bytes-lt/-gt N."""

    name = "set"
    OPTIONS = tuple(XtOpt((option,), arg=option in ("--match-set", "--set") + COUNTERS, invert=True, multi=True)
                    for option in SET_MATCH_OPTIONS)

    def __init__(self) -> None:
        super().__init__()
        self.counters: set[str] = set()  # packets, bytes: the counter compared

    def take(self, word: str, words: list[str], invert: bool, rule) -> None:
        """set_parse_v4(), which reads the word after a set option itself."""
        option = self.option(word).name
        if option in ("--match-set", "--set", *COUNTERS) and not words:
            raise usage_error(f'option "{word}" requires an argument')
        if option in ("--match-set", "--set"):
            try:
                get_set_byname(words[1:], "match-set", words.pop(0))
            except XtError as err:
                if option == "--set":  # written to stderr before the set is looked at
                    err.message = "--set option deprecated, please use --match-set\n" + err.message
                raise
        elif option == "--return-nomatch" and invert:
            raise usage_error("--return-nomatch flag cannot be inverted")
        elif option in COUNTERS:
            what, op = option[2:].split("-")
            if what in self.counters:
                raise usage_error(f"only one of the --{what}-[eq|lt|gt] is allowed")
            if invert and op != "eq":
                raise usage_error(f"{option} option cannot be inverted")
            value = words.pop(0)
            number = c_strtoul(value.lstrip(" \t\n\v\f\r").lstrip("+"))
            if number is None or number > UINT64_MAX:
                raise usage_error(f"Cannot parse {value} as a counter value\n")
            self.counters.add(what)
        self.given.add(option)

    def check(self, rule) -> None:
        raise usage_error("You must specify `--match-set' with proper arguments")


class SetTarget(XtTarget):
    """--add-set/--del-set/--map-set NAME FLAGS, --exist, --timeout N,
    --map-mark, --map-prio, --map-queue."""

    name = "SET"
    OPTIONS = tuple(XtOpt((option,), arg=option in ("--add-set", "--del-set", "--map-set", "--timeout"),
                          invert=True, multi=True)
                    for option in ("--add-set", "--del-set", "--exist", "--timeout", "--map-set", "--map-mark",
                                   "--map-prio", "--map-queue"))

    def take(self, word: str, words: list[str], invert: bool, rule) -> None:
        """set_target_parse_v3(), which reads the word after a set option itself."""
        option = self.option(word).name
        if self.option(word).arg and not words:
            raise usage_error(f'option "{word}" requires an argument')
        if option in ("--add-set", "--del-set", "--map-set"):
            get_set_byname(words[1:], option[2:], words.pop(0))
        elif option == "--timeout":
            value = words.pop(0)
            number = c_strtoul(value)
            if number is None or number > 0xFFFFFFFE:
                raise usage_error(f"Invalid value for option --timeout or out of range 0-{0xFFFFFFFE}")
        self.given.add(option)

    def check(self, rule) -> None:
        raise usage_error("You must specify either `--add-set' or `--del-set' or `--map-set'")


SET_MATCHES = {"set": SetMatch}
SET_TARGETS = {"SET": SetTarget}
