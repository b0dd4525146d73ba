"""nft flowtables on the mock (nft_flow_offload.py, the flowtable commands of
nf_tables.py): the kernel modelled (the 6.18 netns lab's) has no nf_flow_table, so
every flowtable and every `flow add|offload @FT` is refused as it refuses them, after
nft's own syntax and cache checks; the answers recorded from nft 1.0.6 in
tests/golden/nft/ by tests/golden/record_nft."""
from __future__ import annotations

from test_nft import _without_json_handles, real_tools  # noqa: F401

COMMANDS = [
    "add flowtable inet nosuch ft { hook ingress priority 0; devices = { p0 }; }",
    "add table inet t", "add table ip u",
    "add flowtable inet t ft", "add flowtable inet t ft { }",
    "add flowtable inet t ft { hook ingress priority 0; devices = { p0, p1 }; }",
    "add flowtable inet t ft { hook ingress priority 0 ; devices = { p9 } ; counter ; }",
    "add flowtable inet t ft { hook ingress priority filter; devices = p0; flags offload; }",
    "add flowtable inet t ft { devices = { p0 } ; }", "add flowtable t ft { hook ingress priority 0; devices = { p0 }; }",
    "create flowtable inet t ft { hook ingress priority 0; devices = { p0 }; }",
    "delete flowtable inet t ft", "delete flowtable inet t handle 4", "list flowtable inet t ft",
    "list flowtables", "list flowtables inet",
    "add chain inet t c { type filter hook forward priority 0; }",
    "add rule inet t c flow add", "add rule inet t c flow add ft", "add rule inet t c flow add @ft",
    "add rule inet t c flow offload @ft", "add rule inet t c flow add @ft counter",
    "add rule inet t c counter flow add @ft", "add rule inet t c meta l4proto tcp flow add @ft",
]


def test_flowtables_are_refused_as_real_nft_on_a_kernel_without_nf_flow_table(real_tools):
    steps = [(["nft", *command.split()], None) for command in COMMANDS]
    steps += [(["nft", "-j", "list", "flowtables"], None), (["nft", "-a", "list", "ruleset"], None)]
    real_tools.assert_same_as_real(steps, _without_json_handles)
