"""bpftool on the mock: the formats, errors and map semantics of bpftool v7.1.0 on
this machine's kernel. Expected texts are the real tool's output (captured in a
scratch namespace with the same objects attached), with the mock's ids."""
from __future__ import annotations

import json

import pytest

from harness.mockkernel.target import MockTarget
from harness.target import CommandError


@pytest.fixture
def mock(bpf_objects):
    objects = {name: bpf_objects[name] for name in ("xdp_blocklist", "xdp_counters", "xdp_redirect_devmap", "xdp_adjust")}
    target = MockTarget()
    # ids in load order: blocklist map 1, prog 2; proto_stats 3, proto_packets 4, prog 5;
    # tx_port 6, prog 7; xdp_adju.rodata 8, programs 9, 10, 11
    target.sh(f"ip link set dev p0 xdp obj {objects['xdp_blocklist']} sec xdp")
    target.sh(f"ip link set dev p1 xdp obj {objects['xdp_counters']} sec xdp")
    target.sh(f"ip link set dev p2 xdp obj {objects['xdp_redirect_devmap']} sec xdp")
    return target, objects


def fails(target, cmd: str) -> CommandError:
    with pytest.raises(CommandError) as info:
        target.sh(cmd)
    return info.value


def test_map_show_prints_the_lpm_trie_as_bpftool_does_plain_json_and_pretty(mock):
    target, _ = mock
    assert target.sh("bpftool map show id 1") == (
        "1: lpm_trie  name blocklist  flags 0x1\n"
        "\tkey 8B  value 8B  max_entries 1024  memlock 0B\n"
        "\tbtf_id 1\n")
    assert target.sh("bpftool map show id 1 -j") == (
        '{"id":1,"type":"lpm_trie","name":"blocklist","flags":1,"bytes_key":8,"bytes_value":8,'
        '"max_entries":1024,"bytes_memlock":0,"frozen":0,"btf_id":1}\n')
    assert target.sh("bpftool -p map show id 1").startswith('{\n    "id": 1,\n    "type": "lpm_trie",\n')


def test_lpm_updates_dump_with_btf_formatted_keys_and_memlock_per_node(mock):
    target, _ = mock
    target.sh("bpftool map update id 1 key 24 0 0 0 10 0 1 0 value 0 0 0 0 0 0 0 0")
    target.sh("bpftool map update id 1 key hex 20 00 00 00 0a 00 02 02 value 5 0 0 0 0 0 0 0")
    assert target.sh("bpftool map dump id 1") == (
        '[{\n        "key": {\n            "prefixlen": 24,\n            "addr": 65546\n        },\n'
        '        "value": 0\n    },{\n        "key": {\n            "prefixlen": 32,\n'
        '            "addr": 33685514\n        },\n        "value": 5\n    }\n]\n')
    assert target.sh("bpftool map dump id 1 -j") == (
        '[{"key":["0x18","0x00","0x00","0x00","0x0a","0x00","0x01","0x00"],'
        '"value":["0x00","0x00","0x00","0x00","0x00","0x00","0x00","0x00"],'
        '"formatted":{"key":{"prefixlen":24,"addr":65546},"value":0}},'
        '{"key":["0x20","0x00","0x00","0x00","0x0a","0x00","0x02","0x02"],'
        '"value":["0x05","0x00","0x00","0x00","0x00","0x00","0x00","0x00"],'
        '"formatted":{"key":{"prefixlen":32,"addr":33685514},"value":5}}]\n')
    assert "memlock 72B" in target.sh("bpftool map show id 1")
    # a lookup prints the key it was given and the value of the longest matching prefix
    assert target.sh("bpftool map lookup id 1 key 32 0 0 0 10 0 1 5") == (
        '{\n    "key": {\n        "prefixlen": 32,\n        "addr": 83951626\n    },\n    "value": 0\n}\n')


def test_update_flags_follow_the_kernel_and_errors_exit_with_minus_errno(mock):
    target, _ = mock
    target.sh("bpftool map update id 1 key 24 0 0 0 10 0 1 0 value 0 0 0 0 0 0 0 0 noexist")
    err = fails(target, "bpftool map update id 1 key 24 0 0 0 10 0 1 0 value 1 0 0 0 0 0 0 0 noexist")
    assert (err.returncode, str(err).split("failed: ", 1)[1]) == (239, "Error: update failed: File exists")
    err = fails(target, "bpftool map update id 1 key 24 0 0 0 10 0 9 0 value 1 0 0 0 0 0 0 0 exist -j")
    assert (err.returncode, str(err).split("failed: ", 1)[1]) == \
        (254, '{"error":"update failed: No such file or directory"}')
    target.sh("bpftool map update id 1 key 24 0 0 0 10 0 1 0 value 7 0 0 0 0 0 0 0 exist")
    assert target.sh("bpftool map lookup id 1 key 24 0 0 0 10 0 1 0 -j").endswith(
        '"formatted":{"key":{"prefixlen":24,"addr":65546},"value":7}}\n')
    assert fails(target, "bpftool map update id 1 key 33 0 0 0 10 0 9 0 value 1 0 0 0 0 0 0 0").returncode == 234
    assert target.sh("bpftool map delete id 1 key 24 0 0 0 10 0 1 0 -j") == "null\n"
    err = fails(target, "bpftool map delete id 1 key 24 0 0 0 10 0 1 0")
    assert (err.returncode, str(err).endswith("Error: delete failed: No such file or directory")) == (254, True)
    # array elements exist from creation: noexist is refused, delete is not allowed
    assert fails(target, "bpftool map update id 4 key 1 0 0 0 value 7 0 0 0 0 0 0 0 noexist").returncode == 239
    assert fails(target, "bpftool map delete id 4 key 1 0 0 0").returncode == 234


def test_lookup_of_a_missing_key_prints_not_found_and_exits_254(mock):
    target, _ = mock
    err = fails(target, "bpftool map lookup id 1 key 32 0 0 0 10 9 9 9")
    assert (err.returncode, str(err).split("failed: ", 1)[1]) == (254, "key:\n20 00 00 00 0a 09 09 09\n\nNot found")
    err = fails(target, "bpftool map lookup id 1 key 32 0 0 0 10 9 9 9 -j")
    assert (err.returncode, str(err).split("failed: ", 1)[1]) == (254, "null")


@pytest.mark.parametrize("args, message", [
    ("map lookup id 1 key 1 2 3", "Error: key expected 8 bytes got 3"),
    ("map lookup id 1 key 1 2 3 4 5 6 7 8 9", "Error: expected key or value, got: 9"),
    ("map lookup id 1 key 1 2 3 4 5 6 7 x", "Error: error parsing byte: x"),
    ("map lookup id 1", "Error: did not find key"),
    ("map update id 1 key 24 0 0 0 10 0 1 0", "Error: did not find value"),
    ("map update id 1 key 24 0 0 0 10 0 1 0 value 1 2", "Error: value expected 8 bytes got 2"),
    ("map update id 1 key 24 0 0 0 10 0 1 0 value 1 0 0 0 0 0 0 0 any exist",
     "Error: flags specified multiple times: exist"),
    ("map show id abc", "Error: can't parse abc as ID"),
    ("map show foo 1", "Error: expected 'id', 'name' or 'pinned', got: 'foo'?"),
    ("map show id 99999", "Error: get map by id (99999): No such file or directory"),
    ("map show id 99999 -j", '{"error":"get map by id (99999): No such file or directory"}'),
    ("prog show id 99999", "Error: get by id (99999): No such file or directory"),
    ("prog show id", "Error: what is 'id'?"),
    ("net show dev nosuch", "Error: invalid devname nosuch"),
])
def test_bad_arguments_give_bpftools_errors_with_status_255(mock, args, message):
    target, _ = mock
    err = fails(target, f"bpftool {args}")
    assert (err.returncode, str(err).split("failed: ", 1)[1]) == (255, message)


def test_a_name_that_matches_nothing_fails_silently(mock):
    target, _ = mock
    assert fails(target, "bpftool map show name nosuch").returncode == 255
    assert target.sh("bpftool map show name blocklist -j").startswith('{"id":1,')


def test_update_value_goes_to_every_cpu_and_lookup_prints_each(mock):
    target, _ = mock
    target.sh("bpftool map update id 3 key 17 0 0 0 value 1 0 0 0 0 0 0 0 2 0 0 0 0 0 0 0")
    value = '{\n                "packets": 1,\n                "bytes": 2\n            }'
    assert target.sh("bpftool map lookup id 3 key 17 0 0 0") == (
        '{\n    "key": 17,\n    "values": [{\n            "cpu": 0,\n            "value": ' + value +
        '\n        },{\n            "cpu": 1,\n            "value": ' + value + '\n        }\n    ]\n}\n')
    raw = '["0x01","0x00","0x00","0x00","0x00","0x00","0x00","0x00","0x02","0x00","0x00","0x00","0x00","0x00",' \
          '"0x00","0x00"]'
    assert target.sh("bpftool map lookup id 3 key 17 0 0 0 -j") == (
        '{"key":["0x11","0x00","0x00","0x00"],"values":[{"cpu":0,"value":' + raw + '},{"cpu":1,"value":' + raw +
        '}],"formatted":{"key":17,"values":[{"cpu":0,"value":{"packets":1,"bytes":2}},'
        '{"cpu":1,"value":{"packets":1,"bytes":2}}]}}\n')
    assert "memlock 10552B" in target.sh("bpftool map show id 3")  # 256 x 16 B x 2 CPUs + the array


def test_devmap_has_no_btf_and_dumps_every_index_with_empty_slots(mock):
    target, _ = mock
    target.sh("bpftool map update id 6 key 2 0 0 0 value 3 0 0 0")
    dump = target.sh("bpftool map dump id 6").splitlines()
    assert dump[:3] == ["key: 00 00 00 00  value: <no entry>", "key: 01 00 00 00  value: <no entry>",
                        "key: 02 00 00 00  value: 03 00 00 00"]
    assert (len(dump), dump[-1]) == (65, "Found 1 element")
    entries = json.loads(target.sh("bpftool map dump id 6 -j"))
    assert entries[0] == {"key": ["0x00", "0x00", "0x00", "0x00"], "value": {"error": "No such file or directory"}}
    assert entries[2] == {"key": ["0x02", "0x00", "0x00", "0x00"], "value": ["0x03", "0x00", "0x00", "0x00"]}
    assert target.sh("bpftool map show id 6 -j") == (
        '{"id":6,"type":"devmap","name":"tx_port","flags":128,"bytes_key":4,"bytes_value":4,"max_entries":64,'
        '"bytes_memlock":920,"frozen":0}\n')
    assert target.sh("bpftool map lookup id 6 key 2 0 0 0") == "key: 02 00 00 00  value: 03 00 00 00\n"
    assert target.sh("bpftool map getnext id 6 key 2 0 0 0") == "key:\n02 00 00 00\nnext key:\n03 00 00 00\n"
    # a devmap entry must name a device: EINVAL
    err = fails(target, "bpftool map update id 6 key 2 0 0 0 value 99 0 0 0")
    assert (err.returncode, str(err).split("failed: ", 1)[1]) == (234, "Error: update failed: Invalid argument")


def test_listing_maps_repeats_the_previous_btf_id_for_a_map_without_btf(mock):
    target, _ = mock
    listing = target.sh("bpftool map list")
    assert "6: devmap  name tx_port  flags 0x80\n\tkey 4B  value 4B  max_entries 64  memlock 856B\n\tbtf_id 2\n" \
        in listing
    assert "btf_id" not in target.sh("bpftool map show id 6")


def test_global_data_map_is_frozen_mmapable_and_dumps_its_datasec(mock):
    target, objects = mock
    target.sh(f"ip link set dev p0 xdp off")
    target.sh(f"ip link set dev p0 xdp obj {objects['xdp_adjust']} sec xdp")
    assert target.sh("bpftool map show id 8") == (
        "8: array  name xdp_adju.rodata  flags 0x480\n"
        "\tkey 4B  value 8B  max_entries 1  memlock 8192B\n"
        "\tbtf_id 4  frozen\n")
    assert target.sh("bpftool map dump id 8") == (
        '[{\n        "value": {\n            ".rodata": [{\n                    "tunnel_src": 16802570\n'
        '                },{\n                    "tunnel_dst": 33579786\n                }\n            ]\n'
        '        }\n    }\n]\n')
    err = fails(target, "bpftool map update id 8 key 0 0 0 0 value 0 0 0 0 0 0 0 0")
    assert (err.returncode, str(err).split("failed: ", 1)[1]) == (255, "Error: update failed: Operation not permitted")


def test_getnext_walks_the_keys_and_fails_after_the_last(mock):
    target, _ = mock
    target.sh("bpftool map update id 1 key 24 0 0 0 10 0 1 0 value 0 0 0 0 0 0 0 0")
    target.sh("bpftool map update id 1 key 32 0 0 0 10 0 2 2 value 0 0 0 0 0 0 0 0")
    assert target.sh("bpftool map getnext id 1") == "key: None\nnext key:\n18 00 00 00 0a 00 01 00\n"
    assert target.sh("bpftool map getnext id 1 -j") == \
        '{"key":null,"next_key":["0x18","0x00","0x00","0x00","0x0a","0x00","0x01","0x00"]}\n'
    assert target.sh("bpftool map getnext id 1 key 24 0 0 0 10 0 1 0") == \
        "key:\n18 00 00 00 0a 00 01 00\nnext key:\n20 00 00 00 0a 00 02 02\n"
    err = fails(target, "bpftool map getnext id 1 key 32 0 0 0 10 0 2 2")
    assert (err.returncode, str(err).split("failed: ", 1)[1]) == (254, "Error: can't get next key: No such file or directory")


def test_net_show_lists_xdp_programs_by_ifindex(mock):
    target, _ = mock
    assert target.sh("bpftool net show") == (
        "xdp:\np0(2) driver id 2\np1(3) driver id 5\np2(4) driver id 7\n\ntc:\n\nflow_dissector:\n\n")
    assert target.sh("bpftool net show dev p1 -j") == \
        '[{"xdp":[{"devname":"p1","ifindex":3,"mode":"driver","id":5}],"tc":[],"flow_dissector":[]}]\n'



def test_net_show_lists_clsact_bpf_filters_ingress_then_egress(bpf_objects):
    """Format as bpftool 7.1 printed it for the same two filters on a lab veth."""
    target = MockTarget()
    target.sh("tc qdisc add dev p1 clsact")
    target.sh(f"tc filter add dev p1 egress bpf da obj {bpf_objects['tc_nat']} sec tc/egress")
    target.sh(f"tc filter add dev p1 ingress bpf da obj {bpf_objects['tc_mark']} sec tc")
    ids = {prog["name"]: prog["id"] for prog in json.loads(target.sh("bpftool -j prog show"))}
    mark, snat = ids["tc_mark"], ids["tc_snat"]
    assert target.sh("bpftool net show dev p1") == (
        f"xdp:\n\ntc:\np1(3) clsact/ingress tc_mark.o:[tc] id {mark}\n"
        f"p1(3) clsact/egress tc_nat.o:[tc/egress] id {snat}\n\nflow_dissector:\n\n")
    assert json.loads(target.sh("bpftool -j net show dev p1"))[0]["tc"] == [
        {"devname": "p1", "ifindex": 3, "kind": "clsact/ingress", "name": "tc_mark.o:[tc]", "id": mark},
        {"devname": "p1", "ifindex": 3, "kind": "clsact/egress", "name": "tc_nat.o:[tc/egress]", "id": snat}]

def test_prog_show_gives_the_kernels_tag_the_btf_name_and_run_count(mock):
    target, _ = mock
    info = json.loads(target.sh("bpftool prog show id 7 -j"))
    assert (info["name"], info["tag"], info["map_ids"], info["gpl_compatible"]) == \
        ("xdp_redirect_devmap", "3439c6c618239c9a", [6], True)
    assert "run_cnt" not in info  # bpftool leaves run statistics out until a run took time
    target.send("p0", bytes.fromhex("020000000001020000000101" "0800") + bytes(46))
    plain = target.sh("bpftool prog show id 2")
    assert plain.splitlines()[0] == "2: xdp  name xdp_blocklist  tag cb29dc2c8d4775af  gpl run_time_ns 100 run_cnt 1"
    assert plain.splitlines()[2] == "\txlated 208B  not jited  memlock 4096B  map_ids 1"


@pytest.mark.parametrize("args, named", [("prog load x.o /sys/fs/bpf/x", "bpftool prog load"),
                                         ("map pin id 1 /sys/fs/bpf/m", "bpftool map pin"),
                                         ("btf show", "bpftool btf"), ("-f map show", "-f")])
def test_what_the_mock_does_not_model_is_an_error_naming_it(mock, args, named):
    target, _ = mock
    assert named in str(fails(target, f"bpftool {args}"))


def test_unknown_option_and_object_print_usage(mock):
    target, _ = mock
    err = fails(target, "bpftool -x map show")
    assert str(err).split("failed: ", 1)[1].startswith("Error: unrecognized option '-x'\nUsage: bpftool [OPTIONS]")
    assert fails(target, "bpftool map bogus").returncode == 255
    assert target.sh("bpftool version") == "bpftool v7.1.0\nusing libbpf v1.1\nfeatures: libbpf_strict\n"
