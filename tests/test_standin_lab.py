"""harness/drivers/standin_lab.py: the stand-in lab's namespaces, servers and lab file,
reached from its ctl namespace only, and torn down without a trace: after close(),
after a build that failed half-way, after its process was killed (its reaper, or the
next lab if the reaper died too), and by
the `up`/`down` command line.

These need root, iproute2, ethtool, Debian's openssh-server and clang (the XDP_PASS
program); without them they skip saying so.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.drivers import standin_lab
from harness.drivers.netns import TESTER_MTU, inside_netns, pids_in, process_exits
from harness.drivers.standin_lab import StandinLab, netns_path
from harness.drivers.dutstate import journal_dir, journal_path
from harness.labfile import claim_station, load_lab, lock_path
from harness.target import PORTS, TargetUnavailable

REPO = Path(__file__).resolve().parent.parent

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("ip", "ethtool", "sysctl", "clang"))
    or not os.access("/usr/sbin/sshd", os.X_OK),
    reason="the stand-in lab needs root, iproute2, ethtool, procps, clang and openssh-server")


def _namespaces_of(pid: int) -> list[str]:
    return sorted(name for name in os.listdir("/run/netns") if name.startswith(f"pjlab{pid}x"))


def _host_links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout


def _ip_json(netns: str, *args: str) -> list[dict]:
    return json.loads(subprocess.run(["ip", "-n", netns, "-json", *args], capture_output=True, text=True,
                                     check=True).stdout)


def _connect_from(netns: str, address: str, port: int) -> bytes:
    """Connect over TCP from inside `netns`; the first bytes the server sends."""
    with inside_netns(netns_path(netns)):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        sock.settimeout(10)
        sock.connect((address, port))
        return sock.recv(64)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_lab_has_one_to_256_stations(tmp_path):
    with pytest.raises(ValueError, match="a stand-in lab has 1 to 256 stations, not 0"):
        StandinLab(0, tmp_path)


@needs_root
def test_two_stations_reachable_from_the_ctl_namespace_and_gone_after_close(tmp_path):
    host_links = _host_links()
    lab = StandinLab(2, tmp_path)
    try:
        assert _host_links() == host_links
        lab_file = load_lab(lab.lab_file)
        assert lab.lab_file == tmp_path / "lab.yaml"
        assert lab.lab_file.read_text().startswith("# The STAND-IN lab, not hardware")
        assert [station.name for station in lab_file.stations] == ["standin-0", "standin-1"]
        for k, station in enumerate(lab_file.stations):
            dut, trex = station.dut, station.trex
            assert (dut.host, dut.port, dut.user, dut.become, dut.via_netns) == (f"10.254.{k}.2", 22, "root", "root",
                                                                                 lab.ctl)
            assert [(i.port, i.name, i.speed_bps) for i in dut.interfaces] == [
                ("p0", "ens1f0", 10**10), ("p1", "ens1f1", 10**10), ("p2", "ens1f2", 10**10)]
            assert (dut.allow, dut.management) == (["ens1f0", "ens1f1", "ens1f2"], ["mgmt0"])
            assert dut.key == tmp_path / f"s{k}" / "sshd" / "id_ed25519"
            assert dut.known_hosts == tmp_path / f"s{k}" / "sshd" / "known_hosts"
            assert (trex.host, trex.sync_port, trex.async_port, trex.via_netns) == (f"10.253.{k}.2", 4501, 4500,
                                                                                    lab.ctl)
            assert trex.ports == {0: "p0", 1: "p1", 2: "p2"}
            assert _connect_from(lab.ctl, dut.host, 22).startswith(b"SSH-2.0-OpenSSH")
            _connect_from(lab.ctl, trex.host, trex.sync_port)
            _connect_from(lab.ctl, trex.host, trex.async_port)
        namespaces = _namespaces_of(os.getpid())
        pids = [pid for name in namespaces for pid in pids_in(name)]
        assert len(namespaces) == 5
        assert len(pids) >= 4  # two sshd, two stand-ins
    finally:
        lab.close()
    assert _namespaces_of(os.getpid()) == []
    assert [pid for pid in pids if not _gone(pid)] == []
    lab.close()  # safe twice


@needs_root
@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the OpenSSH client: apt-get install openssh-client")
def test_the_lab_files_key_and_known_hosts_log_into_the_dut_namespace(tmp_path):
    with StandinLab(1, tmp_path) as lab:
        dut = load_lab(lab.lab_file).stations[0].dut
        login = subprocess.run(
            ["ip", "netns", "exec", dut.via_netns, "ssh", "-F", "/dev/null", "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={dut.known_hosts}", "-i", str(dut.key),
             "-p", str(dut.port), f"{dut.user}@{dut.host}", "--", "ip", "-br", "link", "show", "ens1f0"],
            capture_output=True, text=True, check=False, timeout=30)
        assert login.returncode == 0, login.stderr
        name, _state, mac, *_ = login.stdout.split()
        assert (name.partition("@")[0], mac) == ("ens1f0", "02:00:00:aa:00:00")


@needs_root
def test_dut_ports_are_not_yet_the_harness_ports_and_the_trex_ports_run_a_frags_xdp_pass_without_gro(tmp_path):
    with StandinLab(1, tmp_path) as lab:
        station = lab.stations[0]
        dut_ports = {link["ifname"]: link for link in _ip_json(station.dut_netns, "link", "show")}
        assert {name: (dut_ports[name]["address"], dut_ports[name]["mtu"], "UP" in dut_ports[name]["flags"])
                for name in ("ens1f0", "ens1f1", "ens1f2")} == {
            "ens1f0": ("02:00:00:aa:00:00", 1500, False),
            "ens1f1": ("02:00:00:aa:00:01", 1500, False),
            "ens1f2": ("02:00:00:aa:00:02", 1500, False),
        }
        assert [a["local"] for a in _ip_json(station.dut_netns, "addr", "show", "mgmt0")[0]["addr_info"]] == [
            "10.254.0.2"]
        for port in PORTS:
            link = _ip_json(station.trex_netns, "-details", "link", "show", port.peer)[0]
            assert (link["address"], link["mtu"], link["xdp"]["prog"]["name"]) == (port.peer_mac, TESTER_MTU,
                                                                                  "xdp_pass_frags")
            features = subprocess.run(["ip", "netns", "exec", station.trex_netns, "ethtool", "-k", port.peer],
                                      capture_output=True, text=True, check=True).stdout
            assert "generic-receive-offload: off" in features.splitlines()
        for netns in (station.dut_netns, station.trex_netns, lab.ctl):
            disabled = subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-n",
                                       "net.ipv6.conf.all.disable_ipv6"], capture_output=True, text=True, check=True)
            assert disabled.stdout.strip() == "1"


@needs_root
def test_close_kills_processes_the_lab_did_not_start(tmp_path):
    with StandinLab(1, tmp_path) as lab:
        session = subprocess.Popen(["ip", "netns", "exec", lab.stations[0].dut_netns, "sh", "-c",
                                    "echo inside; exec sleep 600"], stdout=subprocess.PIPE, text=True)
        assert session.stdout.readline() == "inside\n"
        assert session.pid in pids_in(lab.stations[0].dut_netns)
    assert session.wait(timeout=10) == -signal.SIGKILL
    session.stdout.close()


@needs_root
def test_a_build_failing_half_way_leaves_no_namespace_and_no_process(tmp_path, monkeypatch):
    started: list[int] = []
    real_start = StandinLab._start_trex_standin

    def fail_on_second_station(self, k, station):
        started.append(station.sshd.process.pid)
        if k == 1:
            raise TargetUnavailable("injected: the second stand-in does not start")
        process = real_start(self, k, station)
        started.append(process.pid)
        return process

    monkeypatch.setattr(StandinLab, "_start_trex_standin", fail_on_second_station)
    with pytest.raises(TargetUnavailable, match="injected"):
        StandinLab(2, tmp_path)
    assert len(started) == 3  # station 0's sshd and stand-in, station 1's sshd
    assert [pid for pid in started if not _gone(pid)] == []
    assert _namespaces_of(os.getpid()) == []


DIES_WITH_ITS_LAB = textwrap.dedent("""
    import os, signal, sys
    from harness.drivers.reaper import reaper
    from harness.drivers.standin_lab import StandinLab
    lab = StandinLab(1, sys.argv[1])
    if sys.argv[2] == "with its reaper":
        os.kill(reaper().pid, signal.SIGKILL)
    print(os.getpid(), reaper().pid, lab.stations[0].sshd.process.pid, lab.stations[0].trex_standin.pid,
          flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def _killed_with_a_lab(tmp_path, how: str) -> tuple[int, int, list[int]]:
    """A process that made a stand-in lab, killed by SIGKILL: its pid, its reaper's, its servers'."""
    child = subprocess.run([sys.executable, "-c", DIES_WITH_ITS_LAB, str(tmp_path), how], cwd=REPO,
                           capture_output=True, text=True, check=False, timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr
    dead, reaper, *servers = (int(pid) for pid in child.stdout.split())
    return dead, reaper, servers


def _wait_exit(pid: int) -> None:
    assert process_exits(pid, 60), f"process {pid} did not exit"


@needs_root
def test_a_killed_processes_lab_is_removed_with_its_servers_by_its_reaper(tmp_path):
    dead, reaper, servers = _killed_with_a_lab(tmp_path, "alone")
    _wait_exit(reaper)
    assert _namespaces_of(dead) == []
    assert [pid for pid in servers if not _gone(pid)] == []


@needs_root
def test_a_dead_processes_lab_whose_reaper_died_too_is_removed_by_the_next_lab(tmp_path):
    dead, _, servers = _killed_with_a_lab(tmp_path, "with its reaper")
    namespaces = _namespaces_of(dead)
    assert namespaces == [f"pjlab{dead}x0-ctl", f"pjlab{dead}x0-s0-dut", f"pjlab{dead}x0-s0-trex"]
    assert [pid for pid in servers if _gone(pid)] == []
    assert set(namespaces) <= set(standin_lab.remove_stale_labs())
    assert _namespaces_of(dead) == []
    assert [pid for pid in servers if not _gone(pid)] == []


def _station_files(lab: StandinLab) -> list[Path]:
    """What the harness keeps on this host for the lab's station: its DUT's journal and its claim lock."""
    station = load_lab(lab.lab_file).stations[0]
    return [journal_path(station.dut), lock_path(station)]


@needs_root
def test_close_removes_the_journal_and_the_claim_lock_the_harness_keeps_for_its_station(tmp_path, monkeypatch):
    """A session killed on a stand-in DUT leaves its journal, and a claim leaves its
    lock file: both name a DUT that goes with the lab."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    with StandinLab(1, tmp_path / "lab") as lab:
        journal, lock = _station_files(lab)
        journal.parent.mkdir(parents=True)
        journal.write_text("{}")
        with claim_station(load_lab(lab.lab_file), None):
            assert lock.exists()
    assert not journal.exists() and not lock.exists()


@needs_root
def test_the_journal_of_a_dead_processes_stand_in_dut_is_removed_by_the_next_lab(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    dead = subprocess.Popen(["true"])
    dead.wait()
    journals = journal_dir()
    journals.mkdir(parents=True)
    stale = journals / f"dut-root@10.254.0.2-22-via-pjlab{dead.pid}x0-ctl.json"
    other = journals / "dut-root@192.0.2.1-22.json"  # a real DUT's: recovered by the next session on it
    for path in (stale, other):
        path.write_text("{}")
    standin_lab.remove_stale_labs()
    assert sorted(journals.iterdir()) == [other]


@needs_root
def test_up_serves_until_down_tears_it_down(tmp_path):
    up = subprocess.Popen([sys.executable, "-m", "harness.drivers.standin_lab", "up", "--stations", "1",
                           "--dir", str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    try:
        assert up.stdout.readline() == f"{tmp_path / 'lab.yaml'}\n"
        assert load_lab(tmp_path / "lab.yaml").stations[0].name == "standin-0"
        assert (tmp_path / "standin-lab.pid").read_text() == f"{up.pid}\n"
        assert len(_namespaces_of(up.pid)) == 3
        down = subprocess.run([sys.executable, "-m", "harness.drivers.standin_lab", "down", "--dir", str(tmp_path)],
                              cwd=REPO, capture_output=True, text=True, check=False, timeout=120)
        assert down.returncode == 0, down.stderr
        assert _namespaces_of(up.pid) == []
        assert up.wait(timeout=30) == 0
    finally:
        if up.poll() is None:
            up.terminate()
            up.wait()
    assert not (tmp_path / "standin-lab.pid").exists()


def test_down_without_up_says_so(tmp_path):
    down = subprocess.run([sys.executable, "-m", "harness.drivers.standin_lab", "down", "--dir", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, check=False)
    assert down.returncode == 1
    assert down.stderr == f"no stand-in lab is up in {tmp_path} (no {tmp_path / 'standin-lab.pid'})\n"
