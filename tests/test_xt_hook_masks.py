"""The hooks an xtables extension's registration allows it at (`.hooks` of struct
xt_target / xt_match, nft_compat.XT_HOOKS) hold through user chains under
iptables-nft: nft_table_validate() walks every jump from each base chain and
nft_target_validate()/nft_match_validate() refuse the extension, EINVAL, at a hook
it leaves out, so whichever rule makes the path (the jump, or the extension added
behind a jump) fails its commit; and a target's `.table` (ipt_REJECT.c "filter")
is checked in any chain (xt_check_target()). Each expectation is what iptables-nft
1.8.9 printed on the 6.18 netns lab for the same commands."""
from __future__ import annotations

import pytest

from harness.mockkernel.target import MockTarget
from harness.target import CommandError

PREFIX = "iptables v1.8.9 (nf_tables):  "
CHAINS = {"filter": ("INPUT", "FORWARD", "OUTPUT"), "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
          "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")}

# (tool, table, extension, builtin chains whose jump to it the lab refused)
LAB = [
    ("iptables", "nat", "-p tcp -j DNAT --to-destination 1.2.3.4", {"INPUT", "POSTROUTING"}),
    ("iptables", "nat", "-p tcp -j SNAT --to-source 1.2.3.4", {"PREROUTING", "OUTPUT"}),
    ("iptables", "nat", "-j MASQUERADE", {"PREROUTING", "INPUT", "OUTPUT"}),
    ("iptables", "nat", "-p tcp -j REDIRECT --to-ports 1", {"INPUT", "POSTROUTING"}),
    ("iptables", "nat", "-j NETMAP --to 10.0.0.0/24", set()),
    ("iptables", "mangle", "-p tcp -j TPROXY --on-port 1", {"INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}),
    ("iptables", "filter", "-p tcp -j SYNPROXY", {"OUTPUT"}),
    ("iptables", "mangle", "-j CLASSIFY --set-class 1:1", {"PREROUTING", "INPUT"}),
    ("iptables", "filter", "-m owner --uid-owner 0", {"INPUT", "FORWARD"}),
    ("iptables", "mangle", "-m socket", {"FORWARD", "OUTPUT", "POSTROUTING"}),
    ("iptables", "filter", "-m cgroup --cgroup 1", {"FORWARD"}),
    ("iptables", "filter", "-m mac --mac-source 00:11:22:33:44:55", {"OUTPUT"}),
    ("iptables", "filter", "-p tcp -m osf --genre Linux", {"OUTPUT"}),
    ("iptables", "mangle", "-m rpfilter", {"INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}),
    ("iptables", "mangle", "-p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu", set()),
    ("iptables", "filter", "-m physdev --physdev-out p0", set()),
    ("iptables", "filter", "-m policy --dir out --pol none", set()),
    ("ip6tables", "nat", "-p tcp -j DNAT --to-destination ::1", {"INPUT", "POSTROUTING"}),
    ("ip6tables", "filter", "-m owner --uid-owner 0", {"INPUT", "FORWARD"}),
    ("ip6tables", "mangle", "-m rpfilter", {"INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}),
]


def _sh(target: MockTarget, line: str) -> CommandError | None:
    try:
        target.sh(line)
    except CommandError as err:
        return err
    return None


@pytest.mark.parametrize("tool, table, spec, refused", LAB, ids=[f"{t}:{s}" for t, _, s, _ in LAB])
def test_a_jump_reaching_an_extension_from_a_hook_its_registration_leaves_out_is_refused_einval(
        tool, table, spec, refused):
    for chain in CHAINS[table]:
        target = MockTarget()
        target.sh(f"{tool} -t {table} -N u")
        target.sh(f"{tool} -t {table} -A u {spec}")
        err = _sh(target, f"{tool} -t {table} -A {chain} -j u")
        if chain in refused:
            assert err is not None and err.returncode == 4, chain
            assert str(err).endswith(f"{PREFIX.replace('iptables', tool)}RULE_APPEND failed (Invalid argument): "
                                     f"rule in chain {chain}")
            assert f"-A {chain} -j u" not in target.sh(f"{tool} -t {table} -S")
        else:
            assert err is None, (chain, err)


@pytest.mark.parametrize("tool, table, spec, refused", LAB, ids=[f"{t}:{s}" for t, _, s, _ in LAB])
def test_an_extension_inserted_behind_a_jump_from_a_hook_it_leaves_out_is_the_rule_refused(
        tool, table, spec, refused):
    """The jump exists first (two chains deep): the extension's own rule fails,
    named by its chain and RULE_INSERT, and is not left in the chain."""
    for chain in CHAINS[table]:
        target = MockTarget()
        for line in ("-N u", "-N v", f"-A {chain} -j u", "-I u -j v"):
            target.sh(f"{tool} -t {table} {line}")
        err = _sh(target, f"{tool} -t {table} -I v 1 {spec}")
        if chain in refused:
            assert err is not None and str(err).endswith("RULE_INSERT failed (Invalid argument): rule in chain v")
            assert target.sh(f"{tool} -t {table} -S v") == "-N v\n"
        else:
            assert err is None, (chain, err)


@pytest.mark.parametrize("tool", ["iptables", "ip6tables"])
def test_reject_outside_the_filter_table_is_refused_even_in_a_user_chain(tool):
    """ipt_REJECT.c / ip6t_REJECT.c register REJECT for table "filter":
    xt_check_target() refuses it in mangle, in a user chain no hook reaches too."""
    target = MockTarget()
    target.sh(f"{tool} -t mangle -N u")
    err = _sh(target, f"{tool} -t mangle -A u -j REJECT")
    assert err is not None and err.returncode == 4
    assert str(err).endswith("RULE_APPEND failed (Invalid argument): rule in chain u")
