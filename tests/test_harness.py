"""The harness around the targets: masks, expectations, the pytest plugin."""
from __future__ import annotations

import json

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from harness.mockkernel.linerate.cost import COST_NAMES
from harness.mockkernel.target import MockTarget
from harness.packets import Mask, frames_pcap
from harness.target import ExpectError

pytest_plugins = ["pytester"]


def _frame(**ip):
    return Ether(src="02:00:00:00:01:01", dst="02:00:00:00:00:01") / IP(src="10.0.0.2", dst="10.0.0.1", **ip) / UDP()


def test_mask_ignores_only_the_named_field_and_records_why():
    mask = Mask(_frame(id=1)).ignore(IP, "id", "random").ignore(IP, "chksum", "covers id")
    assert mask.matches(bytes(_frame(id=999)))
    assert not mask.matches(bytes(_frame(id=999, ttl=3)))
    assert mask.reasons == ["IP.id: random", "IP.chksum: covers id"]


def test_mask_difference_names_the_field():
    assert "IP.ttl: expected 64, got 3" in Mask(_frame()).differences(bytes(_frame(ttl=3)))


def test_expect_failure_shows_expected_actual_and_journeys():
    dut = MockTarget()
    dut.sh("ip addr add 10.0.0.1/24 dev p0")
    dut.sh("ip neigh add 10.0.0.2 lladdr 02:00:00:00:01:01 dev p0")
    dut.send("p0", _frame(ttl=5) / b"x")
    with pytest.raises(ExpectError) as err:
        dut.expect("p0", _frame())
    text = str(err.value)
    assert "expected on p0 (mock)" in text
    assert "DROP NO_SOCKET at L4 in __udp4_lib_rcv" in text
    assert "dest-unreach port-unreachable" in text


def test_a_frame_read_that_finds_none_fails_with_the_port_what_was_expected_and_the_journey():
    dut = MockTarget()
    dut.sh("ip addr add 10.0.0.1/24 dev p0")
    dut.send("p0", _frame(ttl=5) / b"x")
    with pytest.raises(ExpectError) as err:
        dut.frame_left("p1", "the forwarded datagram")
    text = str(err.value)
    assert text.startswith("expected 1 frame on p1 (mock): the forwarded datagram\n0 left p1\njourneys on mock:\n")
    assert "DROP NO_SOCKET at L4 in __udp4_lib_rcv" in text


def test_a_frame_read_that_finds_too_many_lists_what_left():
    dut = MockTarget()
    dut.sh("ip addr add 10.0.0.1/24 dev p0")
    dut.sh("ip neigh add 10.0.0.2 lladdr 02:00:00:00:01:01 dev p0")
    dut.send("p0", [_frame(id=1) / b"x", _frame(id=2) / b"y"])
    with pytest.raises(ExpectError, match=r"expected 1 frame on p0 \(mock\): one answer\n2 left p0:\n  Ether / IP / ICMP"):
        dut.frame_left("p0", "one answer")
    dut.send("p0", [_frame(id=3) / b"x", _frame(id=4) / b"y"])
    assert len(dut.frames_left("p0", 2, "two answers")) == 2


def test_collect_all_takes_what_left_every_port_by_name_and_leaves_the_queues_empty():
    dut = MockTarget()
    dut.sh("ip addr add 10.0.0.1/24 dev p0")
    dut.sh("ip neigh add 10.0.0.2 lladdr 02:00:00:00:01:01 dev p0")
    dut.send("p0", [_frame(id=1) / b"x", _frame(id=2) / b"y"])  # two port unreachables back out of p0
    left = dut.collect_all()
    assert sorted(left) == ["p0", "p1", "p2"]
    assert [len(left[port]) for port in ("p0", "p1", "p2")] == [2, 0, 0]
    assert dut.collect_all() == {"p0": [], "p1": [], "p2": []}


def test_requires_marker_skips_with_the_missing_capability_and_summary_counts_it(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.requires("teleport")
        def test_needs_teleport(target):
            pass

        def test_plain(target):
            assert target.name == "mock"
    """)
    result = pytester.runpytest("--target=mock")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*skips on --target=mock, by reason*",
                                 "*1  target mock lacks capability: teleport*"])


def test_cost_profile_option_gives_the_mock_target_the_profile_s_costs(pytester):
    costs = {name: 1.0 for name in COST_NAMES}
    pytester.makefile(".json", profile=json.dumps({"format": "packet-journey cost profile 1", "name": "mine",
                                                   "costs_ns": costs}))
    pytester.makepyfile("""
        def test_costs(target):
            assert target.cost.name == "mine"
            assert set(target.cost.costs.values()) == {1.0}
    """)
    pytester.runpytest("--target=mock", "--cost-profile=profile.json").assert_outcomes(passed=1)


def test_cost_profile_option_refuses_a_file_that_is_not_a_profile_naming_why(pytester):
    pytester.makefile(".json", runs='{"runs": []}')
    result = pytester.runpytest("--target=mock", "--cost-profile=runs.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --cost-profile: cost profile runs.json: not a cost profile*"])


def test_bpf_objects_fails_a_test_whose_program_does_not_compile_and_passes_the_others(pytester):
    pytester.makepyfile("""
        def test_broken(bpf_objects, tmp_path):
            source = tmp_path / "broken_fixture_program.c"
            source.write_text("int broken(void) { return }")
            bpf_objects[source]

        def test_shipped(bpf_objects):
            assert bpf_objects["xdp_pass"].name == "xdp_pass.o"
    """)
    result = pytester.runpytest("--target=mock")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*CompileError: clang failed on *broken_fixture_program.c:*", "*error: *"])


def test_bpf_objects_skips_without_clang_naming_the_package(pytester):
    pytester.makepyfile("""
        import shutil

        import pytest

        from harness import bpf_build

        @pytest.fixture(scope="session", autouse=True)
        def no_clang():
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(shutil, "which", lambda name: None)
                bpf_build.clang_version.cache_clear()
                yield
            bpf_build.clang_version.cache_clear()

        def test_needs_a_program(bpf_objects):
            pass
    """)
    result = pytester.runpytest("--target=mock")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*1  clang not found: building the eBPF programs needs it "
                                 "(Debian package clang: apt-get install clang)*"])


def test_allure_shows_bytes_parameters_as_hex_and_functions_by_name(pytester, allure_run):
    """allure-commons' represent() shows any bytes as "<class 'bytes'>": cases
    differing only in bytes would be folded into one test's retries by Allure."""
    import json
    pytester.makepyfile("""
        import pytest

        def ihl_4():
            pass

        @pytest.mark.parametrize("options", [b"\\x01\\x01", b""])
        @pytest.mark.parametrize("mutate", [ihl_4])
        def test_case(target, options, mutate):
            pass
    """)
    result = allure_run("--target=mock")
    result.assert_outcomes(passed=2)
    results = [json.loads(path.read_text()) for path in (pytester.path / "results").glob("*-result.json")]
    shown = sorted(sorted((p["name"], p["value"]) for p in result["parameters"]) for result in results)
    assert shown == [[("mutate", "ihl_4"), ("options", "(empty)"), ("target", "mock")],
                     [("mutate", "ihl_4"), ("options", "01 01"), ("target", "mock")]]
    for result in results:  # the target as label and tag too, for the report's filters
        labels = {(label["name"], label["value"]) for label in result["labels"]}
        assert {("target", "mock"), ("tag", "target:mock")} <= labels


@pytest.mark.parametrize("frames, named", [
    ("Ether()/IP()", "not str: 'Ether()/IP()'"),
    (None, "not NoneType"),
    ([bytes(_frame()), "x"], "frame 1 is str: 'x'"),
    ([1, 2], "frame 0 is int: 1"),
])
def test_send_refuses_what_is_no_frame_naming_its_type(frames, named):
    dut = MockTarget()
    with pytest.raises(TypeError) as err:
        dut.send("p0", frames)
    assert str(err.value).startswith("send('p0', ...) takes bytes, a bytearray or a scapy Packet, or a list of them")
    assert named in str(err.value)
    assert dut.frame_log == []


def test_expect_refuses_what_is_no_frame_naming_its_type():
    dut = MockTarget()
    with pytest.raises(TypeError, match="^an expected frame is bytes, a bytearray, a scapy Packet or a Mask, "
                                        "not str: 'Ether"):
        dut.expect("p0", "Ether()/IP()")


@pytest.mark.parametrize("cmd, named", [(None, "NoneType: None"), (["ip", "link", 5], "list: ['ip', 'link', 5]"),
                                        (b"ip link", "bytes: b'ip link'")])
def test_sh_refuses_what_is_no_command_naming_its_type(cmd, named):
    with pytest.raises(TypeError) as err:
        MockTarget().sh(cmd)
    assert str(err.value) == f"sh() takes a command line (str) or its words (a list of str), not {named}"


def test_send_takes_bytes_bytearrays_packets_and_lists_of_them():
    dut = MockTarget()
    frame = _frame(ttl=7)
    dut.send("p0", [frame, bytearray(bytes(frame))])
    dut.send("p1", bytes(frame), flush=False)
    assert dut.frame_log == [("sent into", "p0", bytes(frame))] * 2 + [("sent into", "p1", bytes(frame))]


def test_a_frame_shorter_than_an_ethernet_header_fails_its_test_and_the_session_goes_on(pytester, allure_run):
    """AF_PACKET refuses to send fewer than ETH_HLEN bytes on a veth (EINVAL, seen on
    6.18): every target refuses it alike, and the report (pcap included) copes."""
    pytester.makepyfile("""
        def test_runt(target):
            target.send("p0", b"\\x01\\x02")

        def test_after(target):
            target.send("p0", bytes(14))
    """)
    result = allure_run("--target=mock")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*TargetError: frame 0 for p0 is 2 bytes (01 02), shorter than the 14-byte "
                                 "Ethernet header: a tester port cannot send it*"])
    assert "INTERNALERROR" not in result.stdout.str()


def test_the_pcap_holds_every_frame_as_it_was_on_the_wire_with_port_and_direction(tmp_path):
    """Frames are written undissected: a 2-byte runt (issue 14's INTERNALERROR) included."""
    runt, left = b"\x01\x02", bytes(_frame() / b"x")
    pcap = tmp_path / "frames.pcapng"
    pcap.write_bytes(frames_pcap([("sent into", "p0", runt), ("left", "p1", left)]))
    assert [(bytes(r), r.sniffed_on, r.direction, r.comments) for r in rdpcap(str(pcap))] == [
        (runt, "p0", 1, [b"sent into p0"]), (left, "p1", 2, [b"left p1"])]
