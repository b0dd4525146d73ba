"""iptables' own command-line refusals (and two nft listings) on the mock
(cmd/iptables.py, netfilter/xt_matches.py, xt_stateful.py, xt_set.py,
xt_nfacct.py, xt_packet.py), each message and listing the one
iptables-nft 1.8.9 printed for the same command in a network namespace of
this machine (iptables/xshared.c do_parse(), libxtables xtopt_parse_mport(),
xtables_options_fcheck())."""
from __future__ import annotations

import pytest

from harness.mockkernel.target import MockTarget
from harness.target import CommandError

PREFIX = "iptables v1.8.9 (nf_tables): "
TRY = "Try `iptables -h' or 'iptables --help' for more information."


def refusal(rule: str) -> tuple[int, str]:
    with pytest.raises(CommandError) as err:
        MockTarget().sh(f"iptables -A INPUT {rule}")
    return err.value.returncode, str(err.value).split("failed: ", 1)[-1]


@pytest.mark.parametrize("rule, word", [("wrong", "wrong"), ("-", "-"), ("-p tcp foo -j ACCEPT", "foo"),
                                        ("-m state --state NEW extra", "extra"), ("! wrong", "wrong")])
def test_a_word_that_is_no_option_is_a_bad_argument_without_the_version_prefix(rule, word):
    assert refusal(rule) == (2, f"Bad argument `{word}'\n{TRY}")


def test_two_consecutive_inversions_are_refused():
    assert refusal("! ! -p tcp")[1].splitlines()[0] == PREFIX + "multiple consecutive ! not allowed"


@pytest.mark.parametrize("port, message", [
    ("-1", 'Port "-1" does not resolve to anything.'),
    ("0x10", 'Port "0x10" does not resolve to anything.'),
    ("5-6", 'Port "5-6" does not resolve to anything.'),
    ("1:2:3", 'udp: Too many components for option "--source-port" (max: 2)'),
])
def test_udp_ports_are_refused_as_xtopt_parse_mport_refuses_them(port, message):
    assert refusal(f"-p udp -m udp --sport {port}")[1].splitlines()[0] == PREFIX + message


def test_udp_ports_are_read_as_getaddrinfo_reads_a_service():
    """Decimal only, cut to 16 bits (65536 is 0, 70000 is 4464), an empty part
    its default bound, no order check; a second --sport names the option
    table's first name."""
    target = MockTarget()
    for port in ("65536", "70000", "010", "' 5'", "5:", ":5", "10:5", "domain:http", "ssh"):
        target.sh(f"iptables -A INPUT -p udp -m udp --sport {port}")
    saved = [line.split("--sport ")[1] for line in target.sh("iptables-save").splitlines() if "--sport" in line]
    assert saved == ["0", "4464", "10", "5", "5:65535", "0:5", "10:5", "53:80", "22"]
    assert refusal("-p udp -m udp --sport 5 --sport 6")[1].splitlines()[0] == \
        PREFIX + 'udp: option "--source-port" can only be used once.'


@pytest.mark.parametrize("command", ["--set", "--remove"])
def test_recent_rttl_cannot_go_with_set_or_remove(command):
    assert refusal(f"-m recent {command} --rttl")[1].splitlines()[0] == \
        PREFIX + f'recent: option "--rttl" cannot be used together with "{command}".'


@pytest.mark.parametrize("rule, message", [
    ("-m set --match-set foo src,dst", "Set foo doesn't exist."),
    ("-m set --match-set foo", "--match-set requires two args."),
    ("-m set --match-set foo !", "--match-set requires two args."),
    ("-m set --match-set 0123456789012345678901234567890123 src",
     "setname `0123456789012345678901234567890123' too long, max 31 characters."),
    ("-m set ! --return-nomatch", "--return-nomatch flag cannot be inverted"),
    ("-m set --packets-eq 5 --packets-lt 3", "only one of the --packets-[eq|lt|gt] is allowed"),
    ("-m set --return-nomatch", "You must specify `--match-set' with proper arguments"),
    ("-j SET --add-set foo src,dst", "Set foo doesn't exist."),
    ("-j SET --del-set foo", "--del-set requires two args."),
    ("-j SET --exist --timeout 5", "You must specify either `--add-set' or `--del-set' or `--map-set'"),
    ("-m nfacct", 'nfacct: option "--nfacct-name" must be specified'),
    ("-m nfacct --nfacct-name wrong", " RULE_APPEND failed (No such file or directory): rule in chain INPUT"),
])
def test_sets_and_accounting_objects_the_mock_never_has_are_refused_as_missing(rule, message):
    """No ipset and no nfacct command on the mock: every set and accounting
    object a rule names is missing, as on a kernel where none was made."""
    assert refusal(rule)[1].splitlines()[0] == PREFIX + message


def test_the_deprecated_set_option_warns_before_the_lookup_fails():
    assert refusal("-m set --set foo src")[1].splitlines()[:2] == [
        "--set option deprecated, please use --match-set", PREFIX + "Set foo doesn't exist."]


def test_a_multiport_range_must_rise():
    assert refusal("-p tcp -m multiport --ports 5:5,7")[1].splitlines()[0] == PREFIX + "invalid portrange specified"


def test_nft_lists_time_and_multiport_ports_by_their_translations():
    """time_xlate() (no --monthdays: a translation; days braced with spaces),
    __multiport_xlate_v1() (--ports pairs each stored port, a range's ends
    apart), as nft 1.0.6 on the lab lists them."""
    target = MockTarget()
    target.sh("iptables -A INPUT -m time --timestart 02:00:00 --timestop 03:00:00")
    target.sh("iptables -A INPUT -m time --weekdays Mon,Fri,Sun --datestart 2001-02-03T04:05:06")
    target.sh("iptables -A INPUT -p tcp -m multiport --ports 53,1024:65535")
    rules = [line.strip() for line in target.sh("nft list chain ip filter INPUT").splitlines()[3:6]]
    assert rules == [
        'meta hour "02:00:00"-"03:00:00" counter packets 0 bytes 0',
        'meta time "2001-02-03 04:05:06"-"2038-01-19 03:14:07" meta day { 1, 5, 0 } counter packets 0 bytes 0',
        "meta l4proto tcp tcp sport . tcp dport { 0-65535 . 53, 53 . 0-65535, 0-65535 . 1024, 1024 . 0-65535, "
        "0-65535 . 65535, 65535 . 0-65535 } counter packets 0 bytes 0"]


@pytest.mark.parametrize("table, message", [
    ("security", " RULE_APPEND failed (No such file or directory): rule in chain INPUT"),  # no LSM resolves it
    ("filter", " RULE_APPEND failed (Invalid argument): rule in chain INPUT"),  # mangle and security only
])
def test_secmark_is_refused_as_the_kernel_without_a_security_context_refuses_it(table, message):
    with pytest.raises(CommandError) as err:
        MockTarget().sh(f"iptables -t {table} -A INPUT -j SECMARK --selctx system_u:object_r:firewalld_exec_t:s0")
    assert str(err.value).split("failed: ", 1)[-1].splitlines()[0] == PREFIX + message


def test_flushing_a_builtin_chain_the_table_lacks_makes_it_as_iptables_nft_does():
    """nft_rule_flush() runs nft_xt_builtin_init() for the chain it names: on an
    empty namespace `iptables -F FORWARD` leaves table filter with that chain (the
    lab's listing), as does `-F FORWARD` after iptables-restore's table flush; a
    user chain that does not exist is still "No chain/target/match by that name"."""
    target = MockTarget()
    target.sh("iptables -F FORWARD")
    assert target.sh("nft list ruleset") == (
        "table ip filter {\n\tchain FORWARD {\n\t\ttype filter hook forward priority filter; policy accept;\n\t}\n}\n")
    target.sh("iptables-restore", stdin="*filter\n-F FORWARD\n-A FORWARD -p udp\nCOMMIT\n")
    assert target.sh("iptables -S FORWARD") == "-P FORWARD ACCEPT\n-A FORWARD -p udp\n"
    with pytest.raises(CommandError, match="No chain/target/match by that name"):
        target.sh("iptables -F NOPE")


@pytest.mark.parametrize("mark, message", [
    ("1_000", 'mark: trailing garbage after value for option "--mark".'),
    ("5 ", 'mark: trailing garbage after value for option "--mark".'),
    ("0x", 'mark: trailing garbage after value for option "--mark".'),
    ("5/0xffx", 'mark: trailing garbage after value for option "--mark".'),
    ("-0", 'mark: bad integer value for option "--mark", or out of range.'),
    ("5/", 'mark: bad integer value for option "--mark", or out of range.'),
    ("18446744073709551616", 'mark: bad integer value for option "--mark", or out of range.'),
])
def test_a_mark_is_read_as_xtables_parse_val_mask_reads_it(mark, message):
    """xtables_strtoul() (strtoumax() with blanks and `+` before the number)
    then `/MASK` or the end; as iptables 1.8.9 answers."""
    assert refusal(f"-m mark --mark '{mark}'")[1].splitlines()[0] == PREFIX + message


def test_a_mark_may_have_blanks_and_a_plus_before_it():
    target = MockTarget()
    target.sh("iptables -A INPUT -m mark --mark ' +5'")
    assert "-A INPUT -m mark --mark 0x5" in target.sh("iptables-save")
