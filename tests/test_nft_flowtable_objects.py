"""nft flowtables and `flow add @ft` on the mock: parsing, listing and refusals
(nf_tables.py's flowtable commands, nft_flow_offload.py, nft_json.py), and the
flow table the datapath keeps (nf_flow_table_core.py).

The mock models a kernel with nf_flow_table, nf_flow_table_inet and
nft_flow_offload; this host's kernel (the netns lab's 6.18) has none, so only
what nft 1.0.6 itself answers is compared with the real tool (recorded in
tests/golden/nft/ by tests/golden/record_nft): syntax errors, evaluation errors
(evaluate.c flowtable_evaluate()), nft's cache errors, listings of no flowtable.
What the kernel answers is written out by hand from the sources each test cites:
listings from nftables' src/rule.c flowtable_print_declaration() and its shell
tests' dumps (tests/shell/testcases/flowtable/dumps/0001flowtable_0.nft,
0012flowtable_variable_0.nft), JSON from src/json.c flowtable_print_json(),
refusals from net/netfilter/nf_tables_api.c (6.18) and nft_flow_offload.c."""
from __future__ import annotations

import json

from test_nft import _without_json_handles, kernel, listing, nft_error, real_tools  # noqa: F401

from harness.mockkernel.target import sh

NFT_SIDE = [
    "add table inet t",
    "add flowtable inet nosuch ft { hook ingress priority 0; devices = { p0 }; }",
    "add flowtable inet t ft",
    "add flowtable inet t ft { hook ingress priority filter; devices = p0; flags offload; }",
    "add flowtable t ft { hook ingress priority 0; devices = { p0 }; }",
    "add flowtable inet t ft { hook foo priority 0; devices = { lo }; }",
    "add flowtable inet t ft { hook input priority 0; devices = { lo }; }",
    "add flowtable inet t ft { hook ingress priority raw; devices = { lo }; }",
    "add flowtable inet t ft { hook ingress priority dstnat; devices = { lo }; }",
    "add flowtable inet t ft { hook ingress priority filter + 10; devices = { }; }",
    "add flowtable inet t ft { hook ingress; priority 10; }",
    "add flowtable inet t ft { hook ingress priority 10; devices = { lo } }",
    "add chain inet t c { type filter hook forward priority 0; }",
    "add rule inet t c flow add", "add rule inet t c flow add ft",
    "list flowtable inet t ft", "list flowtables", "list flowtables inet", "list flowtables ip",
]


def test_flowtable_syntax_and_evaluation_errors_are_real_nfts(real_tools):
    steps = [(["nft", *command.split()], None) for command in NFT_SIDE]
    steps += [(["nft", "-j", "list", "flowtables"], None), (["nft", "-a", "list", "ruleset"], None)]
    real_tools.assert_same_as_real(steps, _without_json_handles)


# tests/shell/testcases/flowtable/0001flowtable_0 loads this; its dump lists it with the
# priority named (prio2str(): filter + 10) and the chain as below
TABLE = """table inet t {
	flowtable f {
		hook ingress priority 10
		devices = { lo }
	}

	chain c {
		flow add @f
	}
}
"""


def test_a_flowtable_lists_after_sets_before_chains_with_its_priority_named():
    k = kernel(TABLE)
    assert listing(k) == ("table inet t {\n\tflowtable f {\n\t\thook ingress priority filter + 10\n"
                          "\t\tdevices = { lo }\n\t}\n\n\tchain c {\n\t\tflow add @f\n\t}\n}\n")
    assert listing(k, "-a") == ("table inet t { # handle 1\n\tflowtable f { # handle 2\n"
                                "\t\thook ingress priority filter + 10\n\t\tdevices = { lo }\n\t}\n\n"
                                "\tchain c { # handle 1\n\t\tflow add @f # handle 3\n\t}\n}\n")


def test_devices_list_sorted_and_counter_and_offload_flags_follow_them():
    """netlink_delinearize_flowtable() sorts the devices (0012flowtable_variable_0's dump:
    `{ lo, dummy1 }` lists as `{ dummy1, lo }`); `flags offload` then `counter`."""
    k = kernel("define devs = { p1, lo }\ntable ip x {\n flowtable f {\n  hook ingress priority filter\n"
               "  counter\n  devices = $devs\n }\n flowtable g {\n  hook ingress priority -5; devices = { \"p2\" };\n"
               " }\n}\n")
    assert sh(k, ["nft", "list", "flowtables"]) == (
        "table ip x {\n\tflowtable f {\n\t\thook ingress priority filter\n\t\tdevices = { lo, p1 }\n\t\tcounter\n\t}\n"
        "\tflowtable g {\n\t\thook ingress priority filter - 5\n\t\tdevices = { p2 }\n\t}\n}\n")
    assert sh(k, ["nft", "list", "flowtable", "ip", "x", "g"]) == (
        "table ip x {\n\tflowtable g {\n\t\thook ingress priority filter - 5\n\t\tdevices = { p2 }\n\t}\n}\n")
    # a device that is not there (yet) is kept: 6.16's nft_netdev_hook_alloc() waits for it
    sh(k, ["nft", "add", "flowtable", "ip", "x", "h", "{", "hook", "ingress", "priority", "-200;", "devices", "=",
           "{", "nosuch0", "};", "}"])
    assert "\t\thook ingress priority -200\n\t\tdevices = { nosuch0 }\n" in sh(k, ["nft", "list", "flowtables"])


def test_json_lists_one_device_as_a_string_more_as_a_list_and_flow_add_as_flow_op_add():
    k = kernel("table inet t {\n flowtable f { hook ingress priority 10; devices = { p1, p0 }; }\n"
               " flowtable g { hook ingress priority 0; devices = { p2 }; counter; }\n"
               " chain c { type filter hook forward priority 0; flow add @f; }\n}\n")
    objects = json.loads(sh(k, ["nft", "-j", "list", "ruleset"]))["nftables"][1:]
    assert objects == [
        {"table": {"family": "inet", "name": "t", "handle": 1}},
        {"flowtable": {"family": "inet", "name": "f", "table": "t", "handle": 2, "hook": "ingress", "prio": 10,
                       "dev": ["p0", "p1"]}},
        {"flowtable": {"family": "inet", "name": "g", "table": "t", "handle": 3, "hook": "ingress", "prio": 0,
                       "dev": "p2"}},
        {"chain": {"family": "inet", "table": "t", "name": "c", "handle": 1, "type": "filter", "hook": "forward",
                   "prio": 0, "policy": "accept"}},
        {"rule": {"family": "inet", "table": "t", "chain": "c", "handle": 4,
                  "expr": [{"flow": {"op": "add", "flowtable": "@f"}}]}}]


def test_flow_offload_is_the_old_spelling_of_flow_add():
    k = kernel("table ip t {\n flowtable f { hook ingress priority 0; devices = { p0 }; }\n"
               " chain c { type filter hook forward priority 0; flow offload @f; }\n}\n")
    assert "\t\tflow add @f\n" in listing(k)


ADD = ["nft", "add", "flowtable", "inet", "t"]


def test_the_kernels_refusals_of_flowtables():
    k = kernel("table inet t {\n flowtable f { hook ingress priority 0; devices = { p0, p1 }; }\n}\n"
               "table netdev n {}\n")
    # nft_register_flowtable_net_hooks(): a device another flowtable of the table has
    assert nft_error(k, ADD + ["g", "{ hook ingress priority 5; devices = { p1 }; }"]) == (
        "Error: Could not process rule: File exists\n"
        "add flowtable inet t g { hook ingress priority 5; devices = { p1 }; }\n" + "^" * 70)
    # nf_tables_newflowtable(): NLM_F_EXCL on an existing one, at its name
    assert nft_error(k, ["nft", "create", "flowtable", "inet", "t", "f",
                         "{ hook ingress priority 0; devices = { p0 }; }"]) == (
        "Error: Could not process rule: File exists\n"
        "create flowtable inet t f { hook ingress priority 0; devices = { p0 }; }\n" + " " * 24 + "^")
    # nft_flowtable_parse_hook(), update: another priority (nft sends 0 for none) is EOPNOTSUPP
    assert "Operation not supported" in nft_error(k, ADD + ["f", "{ hook ingress priority 1; }"])
    # a hook other than ingress
    assert "Operation not supported" in nft_error(k, ADD + ["e", "{ hook egress priority 0; devices = { p2 }; }"])
    # nf_flow_table_offload_setup(): veth has no ndo_setup_tc
    assert "Operation not supported" in nft_error(
        k, ADD + ["o", "{ hook ingress priority 0; devices = { p2 }; flags offload; }"])
    # nft_flowtable_type_get(): no netdev flowtable type
    assert nft_error(k, ["nft", "add", "flowtable", "netdev", "n", "f", "{ hook ingress priority 0; }"]) == (
        "Error: Could not process rule: No such file or directory\n"
        "add flowtable netdev n f { hook ingress priority 0; }\n" + "^" * 54)  # the command and its newline
    # nft_delflowtable_hook(): a device it does not have
    assert "No such file or directory" in nft_error(
        k, ["nft", "delete", "flowtable", "inet", "t", "f", "{ devices = { p2 }; }"])
    sh(k, ["nft", "delete", "flowtable", "inet", "t", "f", "{ devices = { p1 }; }"])
    sh(k, ADD + ["f", "{ hook ingress priority 0; devices = { p2 }; counter; }"])  # an update: p2 joins, counter on
    assert "\t\tdevices = { p0, p2 }\n\t\tcounter\n" in listing(k)


def test_flow_add_needs_its_flowtable_a_forward_chain_and_holds_the_flowtable():
    k = kernel("table inet t {\n flowtable f { hook ingress priority 0; devices = { p0 }; }\n"
               " chain fw { type filter hook forward priority 0; }\n"
               " chain in { type filter hook input priority 0; }\n}\n")
    # nft_flow_offload_init(): nft_flowtable_lookup() in the rule's table
    assert nft_error(k, ["nft", "add", "rule", "inet", "t", "fw", "flow", "add", "@g"]) == (
        "Error: Could not process rule: No such file or directory\n"
        "add rule inet t fw flow add @g\n" + " " * 19 + "^" * 11)
    # nft_flow_offload_validate(): the forward hook only
    assert "Operation not supported" in nft_error(k, ["nft", "add", "rule", "inet", "t", "in", "flow", "add", "@f"])
    sh(k, ["nft", "add", "rule", "inet", "t", "fw", "flow", "add", "@f"])
    # nf_tables_delflowtable(): flowtable->use
    assert nft_error(k, ["nft", "delete", "flowtable", "inet", "t", "f"]) == (
        "Error: Could not process rule: Device or resource busy\n"
        "delete flowtable inet t f\n" + " " * 24 + "^")
    # the rule holding it goes with its chain's flush
    sh(k, ["nft", "flush", "chain", "inet", "t", "fw"])
    sh(k, ["nft", "delete", "flowtable", "inet", "t", "f"])


def test_a_rule_and_its_flowtable_go_and_come_back_in_one_batch():
    """tests/shell/testcases/flowtable/0014addafterdelete_0: handles as that test has them
    (chain y 1, flowtable f 2, the rule 3); then a flowtable deleted by its handle
    (0010delete_handle_0) once no rule holds it (0009deleteafterflush_0)."""
    k = kernel("table inet filter {\n flowtable f { hook ingress priority filter - 1; devices = { lo }; }\n"
               " chain y { type filter hook forward priority 0; flow add @f counter; }\n}\n")
    sh(k, ["nft", "-f", "-"], "delete rule inet filter y handle 3\ndelete flowtable inet filter f\n"
       "table inet filter {\n flowtable f { hook ingress priority filter - 1; devices = { lo }; counter; }\n"
       " chain y { type filter hook forward priority 0; flow add @f counter; }\n}\n")
    assert listing(k, "-a") == (
        "table inet filter { # handle 1\n\tflowtable f { # handle 4\n\t\thook ingress priority filter - 1\n"
        "\t\tdevices = { lo }\n\t\tcounter\n\t}\n\n\tchain y { # handle 1\n"
        "\t\ttype filter hook forward priority filter; policy accept;\n"
        "\t\tflow add @f counter packets 0 bytes 0 # handle 5\n\t}\n}\n")
    sh(k, ["nft", "flush", "chain", "inet", "filter", "y"])
    sh(k, ["nft", "delete", "flowtable", "inet", "filter", "handle", "4"])
    assert "flowtable" not in listing(k)
