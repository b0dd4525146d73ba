"""`--target=dut --lab=LAB.yaml` (harness/drivers/lab.py, the plugin's lab wiring):
usage errors, a lab that cannot be reached failing fast and as broken, the dry run,
and a station of the stand-in lab taken, used, interrupted and given back as it was.

The stand-in tests need root, iproute2, ethtool, clang and Debian's openssh-server;
without them they skip saying so.
"""
from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from harness.drivers.lab import LabTarget, Station
from harness.drivers.netns import pids_in, process_exits
from harness.drivers.reaper import reaper
from harness.drivers.standin_lab import StandinLab
from harness.labfile import load_lab
from harness.target import CommandError, TargetUnavailable
from harness.testing import ipv6_on, plan_hosts6

pytest_plugins = ["pytester"]
REPO = Path(__file__).resolve().parent.parent

needs_standin = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("ip", "ethtool", "sysctl", "clang"))
    or not os.access("/usr/sbin/sshd", os.X_OK),
    reason="the stand-in lab needs root, iproute2, ethtool, procps, clang and openssh-server")

LAB_YAML = """\
stations:
- name: {name}
  dut:
    host: {host}
    port: {port}
    user: root
    key: id_ed25519
    known_hosts: known_hosts
    interfaces:
    - {{port: p0, name: ens1f0, speed: 10G}}
    - {{port: p1, name: ens1f1, speed: 10G}}
    - {{port: p2, name: ens1f2, speed: 10G}}
    allow: [ens1f0, ens1f1, ens1f2]
    management: [mgmt0]{via}
  trex:
    host: {host}
    ports: {{0: p0, 1: p1, 2: p2}}{via}
  timeouts: {{connect: 3, command: 10, trex: 10}}
"""


def _lab_file(directory: Path, host: str = "192.0.2.1", port: int = 22, via_netns: str | None = None,
              name: str = "bench-1") -> Path:
    (directory / "id_ed25519").write_text("not used before a connection\n")
    (directory / "known_hosts").write_text("")
    via = f"\n    via_netns: {via_netns}" if via_netns else ""
    path = directory / "lab.yaml"
    path.write_text(LAB_YAML.format(name=name, host=host, port=port, via=via))
    return path


def test_lab_with_the_mock_target_is_a_usage_error(pytester):
    lab = _lab_file(pytester.path)
    pytester.makepyfile("def test_nothing(target):\n    pass\n")
    result = pytester.runpytest("--target=mock", f"--lab={lab}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--lab={lab} drives lab DUTs: use it with --target=dut*"])


def test_a_lab_file_error_names_the_file_and_the_field(pytester):
    lab = _lab_file(pytester.path)
    lab.write_text(lab.read_text().replace("    user: root\n", ""))
    pytester.makepyfile("def test_nothing(target):\n    pass\n")
    result = pytester.runpytest("--target=dut", f"--lab={lab}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{lab}: stations[[]0[]].dut.user: required field missing*"])


def test_more_workers_than_stations_is_refused_before_any_test(pytester):
    lab = _lab_file(pytester.path)
    pytester.makepyfile("def test_nothing(target):\n    pass\n")
    result = pytester.runpytest("--target=dut", f"--lab={lab}", "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*-n 2 needs 2 stations, the file names 1*"])


def test_the_dry_run_lists_each_command_and_frame_and_refuses_the_management_interface(pytester):
    lab = _lab_file(pytester.path)
    pytester.makepyfile(textwrap.dedent("""
        import pytest
        from scapy.layers.l2 import Ether
        from harness.target import CommandError, TargetUnavailable

        def test_configures_and_sends(target):
            target.sh("ip addr add 10.0.0.1/24 dev p0")
            target.sh(["nft", "-f", "-"], stdin="table ip t {\\n}\\n")
            target.send("p0", Ether(dst="02:00:00:00:00:01") / b"x" * 50)
            with pytest.raises(CommandError, match="mgmt0"):
                target.sh("ip link set mgmt0 down")
    """))
    result = pytester.runpytest("--target=dut", f"--lab={lab}", "--lab-dry-run", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([
        "*lab dry run: what each test would run (nothing was run)*",
        "*test_configures_and_sends on station bench-1:",
        "  ssh root@192.0.2.1:22: connect (host key checked against *known_hosts); read and journal*",
        "  ssh root@192.0.2.1:22: ip -batch -",
        "      | link set dev ens1f0 down",
        "      | link set dev ens1f0 name p0",
        "      | link set dev p0 address 02:00:00:00:00:01 mtu 1500",
        "*ssh root@192.0.2.1:22: ethtool -K p2 tx off",
        "  ssh root@192.0.2.1:22: sysctl -q -w net.ipv4.ip_forward=0 *",
        "  TRex 192.0.2.1:4501: connect, acquire ports [[]0, 1, 2[]], service mode, capture what they receive",
        "  ssh root@192.0.2.1:22 (in the test's namespace): ip addr add 10.0.0.1/24 dev p0",
        "  ssh root@192.0.2.1:22 (in the test's namespace): nft -f -",
        "      | table ip t {",
        "      | }",
        "  TRex 192.0.2.1:4501 port 0 -> p0: push *",
        "  refused: *mgmt0*",
    ])


@pytest.fixture
def silent_netns():
    """A namespace of our own with only lo up: nothing listens there."""
    name = f"pjtest{os.getpid()}-silent"
    reaper().netns(name)  # deleted even if this run is killed
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="making a namespace needs root")
def test_an_unreachable_dut_is_a_broken_test_naming_the_address_and_later_tests_fail_at_once(pytester, silent_netns):
    lab = _lab_file(pytester.path, host="127.0.0.1", port=2222, via_netns=silent_netns)
    pytester.makepyfile("def test_one(target):\n    pass\n\ndef test_two(target):\n    pass\n")
    result = pytester.runpytest("--target=dut", f"--lab={lab}")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines([
        f"*cannot reach DUT root@127.0.0.1:2222 (from netns {silent_netns})*refused*",
        "*station bench-1 did not come up earlier in this session: cannot reach DUT root@127.0.0.1:2222*",
    ])


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    if os.geteuid() != 0 or not os.access("/usr/sbin/sshd", os.X_OK) or not shutil.which("clang"):
        pytest.skip("the stand-in lab needs root, openssh-server and clang")
    with StandinLab(1, tmp_path_factory.mktemp("standin")) as lab:
        yield lab


def _dut_links(standin) -> dict[str, tuple[str, int]]:
    links = json.loads(subprocess.run(["ip", "-n", standin.stations[0].dut_netns, "-json", "link", "show"],
                                      capture_output=True, text=True, check=True).stdout)
    return {link["ifname"]: (link["address"], link["mtu"]) for link in links if link["ifname"] != "lo"}


def _dut_addresses(standin) -> dict[str, list[str]]:
    links = json.loads(subprocess.run(["ip", "-n", standin.stations[0].dut_netns, "-json", "-4", "addr", "show"],
                                      capture_output=True, text=True, check=True).stdout)
    return {link["ifname"]: [a["local"] for a in link["addr_info"]] for link in links if link["ifname"] != "lo"}


@contextlib.contextmanager
def _station_given_back(standin, isolation: str = "netns"):
    """Station 0 of the stand-in lab (its tests isolated as `isolation` says); leaving,
    it is released with nothing unrestored, and the DUT's links and addresses are as
    they were before."""
    links_before, addresses_before = _dut_links(standin), _dut_addresses(standin)
    config = load_lab(standin.lab_file).stations[0]
    config = config.model_copy(update={"dut": config.dut.model_copy(update={"isolation": isolation})})
    station = Station(config, standin.lab_file)
    try:
        yield station
    finally:
        assert station.close() == []
    assert _dut_links(standin) == links_before
    assert _dut_addresses(standin) == addresses_before


@needs_standin
def test_a_station_s_tests_each_meet_a_fresh_dut_and_the_dut_is_given_back_as_it_was(standin):
    with _station_given_back(standin) as station:
        target = LabTarget(station)
        try:
            assert target.name == "lab" and {"nftrace", "drop_reasons", "conntrack"} <= target.capabilities
            target.sh("ip addr add 10.0.0.1/24 dev p0")
            target.sh("ip link set p1 mtu 1400")
            with pytest.raises(CommandError, match="management"):
                target.sh("ip addr flush dev mgmt0")
            assert "10.0.0.1/24" in target.sh("ip -4 -br addr show dev p0")
            # the test's namespace holds the ports and lo only: no management interface
            assert sorted(line.split()[0].partition("@")[0] for line in target.sh("ip -br link").splitlines()) == [
                "lo", "p0", "p1", "p2"]
        finally:
            target.close()
        again = LabTarget(station)
        try:
            name, state = again.sh("ip -br link show dev p0").split()[:2]
            assert (name.partition("@")[0], state) == ("p0", "UP")
            assert again.sh("ip -4 addr show dev p0") == ""
            assert again.sh(["nstat", "-a", "IpInReceives"]) == "#kernel\n"
            assert "mtu 1500" in again.sh("ip link show dev p1")
        finally:
            again.close()


@needs_standin
def test_ctrl_c_in_the_middle_of_a_test_still_gives_the_dut_back(standin, pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # this checkout's harness in the pytest run below
    links_before, addresses_before = _dut_links(standin), _dut_addresses(standin)
    pytester.makepyfile(textwrap.dedent("""
        import os, signal

        def test_interrupted(target):
            target.sh("ip addr add 10.0.0.1/24 dev p0")
            target.sh("ip link set p0 mtu 1300")
            os.kill(os.getpid(), signal.SIGINT)
    """))
    result = pytester.runpytest_subprocess("--target=dut", f"--lab={standin.lab_file}", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert _dut_links(standin) == links_before
    assert _dut_addresses(standin) == addresses_before
    assert _ports_namespaces(standin) == []


@needs_standin
def test_a_session_killed_mid_test_has_its_reaper_give_the_dut_back_and_nothing_stays_there(
        standin, pytester, monkeypatch, tmp_path):
    """SIGKILL of the pytest process mid-test: no teardown runs. The agent sees its
    SSH session end, moves the ports home and exits, and its reaper removes its
    session directory (code and files); the session's reaper restores the DUT from
    the journal (names, MACs, sysctls) and removes it."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("PJ_REAPER", str(tmp_path / "reaper"))
    links_before, addresses_before = _dut_links(standin), _dut_addresses(standin)
    pytester.makepyfile(textwrap.dedent("""
        import os, signal
        from harness.drivers.reaper import reaper

        def test_killed(target):
            target.sh("ip addr add 10.0.0.1/24 dev p0")
            target.sh("ip link set p0 mtu 1300")
            with open(os.environ["PJ_REAPER"], "w") as f:
                f.write(str(reaper().pid))
            os.kill(os.getpid(), signal.SIGKILL)
    """))
    result = pytester.runpytest_subprocess("--target=dut", f"--lab={standin.lab_file}", "-p", "no:cacheprovider")
    assert result.ret == -signal.SIGKILL
    assert process_exits(int((tmp_path / "reaper").read_text()), 60)
    for pid in pids_in(standin.stations[0].dut_netns):  # the agent and its reaper
        if "harness.drivers" in _cmdline(pid):
            assert process_exits(pid, 60)
    assert _dut_links(standin) == links_before
    assert _dut_addresses(standin) == addresses_before
    assert _ports_namespaces(standin) == []
    assert list((tmp_path / "state" / "packet-journey").iterdir()) == []
    assert list(standin.stations[0].dut_tmp.iterdir()) == []


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def _ports_namespaces(standin) -> list[str]:
    """The namespaces the agents of the stand-in DUT made (portsnetns.py names them by
    the DUT's namespace inode): other labs on the host make their own meanwhile."""
    prefix = f"pjports{os.stat(f'/run/netns/{standin.stations[0].dut_netns}').st_ino}-"
    return [name for name in os.listdir("/run/netns") if name.startswith(prefix)]


def _agent(standin) -> tuple[int, int]:
    """The DUT agent's pid and its parent's, the sshd session's."""
    for pid in pids_in(standin.stations[0].dut_netns):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"from harness.drivers.agent import main" in f.read():
                    with open(f"/proc/{pid}/stat") as stat:
                        return pid, int(stat.read().rsplit(")", 1)[1].split()[1])
        except FileNotFoundError:
            continue
    raise AssertionError("no DUT agent runs in the stand-in DUT")


@needs_standin
def test_a_dropped_connection_mid_test_brings_the_ports_home_and_the_next_test_gets_a_new_agent(standin):
    with _station_given_back(standin) as station:
        target = LabTarget(station)
        target.sh("ip addr add 10.0.0.1/24 dev p0")
        agent, session = _agent(standin)
        pidfd = os.pidfd_open(agent)
        os.kill(session, signal.SIGKILL)  # the SSH session under the agent dies
        assert select.select([pidfd], [], [], 30)[0], "the agent outlived its session"
        os.close(pidfd)
        assert _ports_namespaces(standin) == []
        with pytest.raises(TargetUnavailable):
            target.close()  # its DutSide went with the agent; the DUT is restored all the same
        again = LabTarget(station)
        try:
            assert again.sh("ip -4 addr show dev p0") == ""
        finally:
            again.close()


@needs_standin
def test_an_agent_killed_mid_test_has_its_reaper_bring_the_ports_home_and_remove_its_files(standin):
    """SIGKILL of the agent itself on the DUT: no close runs there. Its reaper moves
    the ports home from the test's namespace (deleting it with them would destroy
    the stand-in's veth ports) and removes the agent's session directory."""
    with _station_given_back(standin) as station:
        target = LabTarget(station)
        target.sh("ip addr add 10.0.0.1/24 dev p0")
        agent, _ = _agent(standin)
        reaper = next(pid for pid in pids_in(standin.stations[0].dut_netns)
                      if _cmdline(pid).endswith(f"harness.drivers.reaper {agent} "))
        os.kill(agent, signal.SIGKILL)
        assert process_exits(reaper, 30), "the agent's reaper did not finish"
        assert _ports_namespaces(standin) == []
        assert list(standin.stations[0].dut_tmp.iterdir()) == []
        with pytest.raises(TargetUnavailable):
            target.close()  # its DutSide went with the agent; the DUT is restored all the same
        again = LabTarget(station)
        try:
            assert again.sh("ip -4 addr show dev p0") == ""
        finally:
            again.close()


@needs_standin
def test_a_trex_client_process_that_died_in_one_test_is_replaced_for_the_next(standin):
    with _station_given_back(standin) as station:
        target = LabTarget(station)
        try:
            os.kill(station.trex._worker.process.pid, signal.SIGKILL)
            with pytest.raises(TargetUnavailable, match="TRex client process ended: status -9"):
                station.trex.received(0.1)
        finally:
            target.close()
        again = LabTarget(station)
        try:
            assert station.trex.ended is None
            # the new client reaches the server and holds the ports
            assert station.trex.received(0.1) == {"p0": [], "p1": [], "p2": []}
        finally:
            again.close()


def _dut_ipv6(standin) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The stand-in DUT's IPv6 addresses by interface, and its disable_ipv6 keys."""
    netns = standin.stations[0].dut_netns
    links = json.loads(subprocess.run(["ip", "-n", netns, "-json", "-6", "addr", "show"],
                                      capture_output=True, text=True, check=True).stdout)
    keys = subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-a", "-r", r"\.disable_ipv6$"],
                          capture_output=True, text=True, check=True).stdout
    return ({link["ifname"]: [a["local"] for a in link["addr_info"]] for link in links},
            dict(line.split(" = ") for line in keys.splitlines()))


@needs_standin
def test_an_interrupted_ipv6_test_leaves_the_dut_without_ipv6(standin, pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    before = _dut_ipv6(standin)
    pytester.makepyfile(textwrap.dedent("""
        import os, signal

        def test_interrupted(target, hosts6):
            assert "inet6 2001:db8:1::1/64" in target.sh("ip -6 addr show dev p1")
            target.sh("ip -6 route add 2001:db8:9::/64 via 2001:db8:1::2 dev p1")
            os.kill(os.getpid(), signal.SIGINT)
    """))
    result = pytester.runpytest_subprocess("--target=dut", f"--lab={standin.lab_file}", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert _dut_ipv6(standin) == before
    assert _ports_namespaces(standin) == []


@needs_standin
def test_ipv6_turned_on_in_the_dut_s_own_namespace_is_turned_off_again_after_the_test(standin):
    """isolation: none: all.disable_ipv6=0 reaches every interface (the management one
    too) and takes the ports' addresses, routes and neighbours when put back."""
    before = _dut_ipv6(standin)
    with _station_given_back(standin, isolation="none") as station:
        target = LabTarget(station)
        try:
            ipv6_on(target)
            hosts = plan_hosts6(target)
            target.sh("ip -6 route add blackhole 2001:db8:9::/64")
            assert f"inet6 {hosts[1].dut_ip6}/64" in target.sh("ip -6 addr show dev p1")
            assert _dut_ipv6(standin)[1]["net.ipv6.conf.mgmt0.disable_ipv6"] == "0"
        finally:
            target.close()
        again = LabTarget(station)
        try:
            assert again.sh("ip -6 route show table all type blackhole") == ""
        finally:
            again.close()
    assert _dut_ipv6(standin) == before
