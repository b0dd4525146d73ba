"""The netns lab under faults: a namespace deleted under a test, a tool gone, a
command that hangs, the drop tracer (bpftrace) dying, a worker or the whole run
killed. Each faulted test is reported broken (a TargetError naming the cause, not an
assertion), the next test runs, and nothing is left: no namespace, mount, temporary
file or process carrying the dead process's pid (reaper.leftovers_of()).

Each case runs a small pytest session of its own on --target=dut; they need root,
iproute2, ethtool and procps, and skip without them.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.drivers.netns import process_exits
from harness.drivers.reaper import leftovers_of

REPO = Path(__file__).resolve().parent.parent
SESSION_TIMEOUT = 300.0
EXIT_WAIT = 60.0  # seconds a killed session's processes and reapers may take to finish

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("ip", "ethtool", "sysctl")),
    reason="the netns lab needs root, iproute2, ethtool and procps")

# Every test of an inner session writes its process's pid and its reaper's here first.
RECORD = textwrap.dedent("""
    import os
    from harness.drivers.reaper import reaper

    def record_owner():
        with open(os.environ["PJ_OWNERS"], "a") as f:
            f.write(f"{os.getpid()} {reaper().pid}\\n")
""")

FAULTS_IN_A_TEST = textwrap.dedent("""
    import os, signal, shutil, subprocess
    import pytest
    from harness.drivers import netns
    from conftest import record_owner

    def test_namespace_deleted(target):
        record_owner()
        subprocess.run(["ip", "netns", "delete", target.lab.dut], check=True)
        target.sh("ip link show")

    def test_tool_missing(target, tmp_path, monkeypatch):
        record_owner()
        bin = tmp_path / "bin"
        bin.mkdir()
        os.symlink(shutil.which("ip"), bin / "ip")
        monkeypatch.setenv("PATH", str(bin))
        target.sh("nft list ruleset")

    def test_command_hangs(target, tmp_path, monkeypatch):
        record_owner()
        bin = tmp_path / "bin"
        bin.mkdir()
        (bin / "tc").write_text("#!/bin/sh\\nsleep 600\\n")  # its child sleeps: the whole group is killed
        (bin / "tc").chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin}:{os.environ['PATH']}")
        monkeypatch.setattr(netns, "COMMAND_TIMEOUT", 1.0)
        target.sh("tc qdisc show")

    @pytest.mark.requires("drop_reasons")
    def test_observer_dies(target):
        record_owner()
        os.kill(target.side._drops.tracer._process.pid, signal.SIGKILL)
        target.drops()

    @pytest.mark.requires("drop_reasons", "nftables")
    def test_the_next_test_runs(target):
        record_owner()
        target.sh("nft add table ip t")
        assert "table ip t" in target.sh("nft list ruleset")
        assert target.drops() == []
""")


@dataclass
class Session:
    """An inner pytest session's exit status, output, failure messages by test name,
    outcomes counted, and the (pid, reaper pid) its tests recorded."""

    ret: int
    output: str
    failures: dict[str, str]
    outcomes: Counter
    owners: list[tuple[int, int]]


def _session(directory: Path, test_file: str, *args: str) -> Session:
    """Run `test_file` on --target=dut in a pytest process of its own, in `directory`."""
    (directory / "conftest.py").write_text(RECORD)
    (directory / "test_inner.py").write_text(test_file)
    owners = directory / "owners"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PJ_OWNERS": str(owners)}  # this checkout's harness
    run = subprocess.run([sys.executable, "-m", "pytest", "--target=dut", "-p", "no:cacheprovider", "-q",
                          "--junitxml=report.xml", "test_inner.py", *args], cwd=directory, env=env,
                         capture_output=True, text=True, check=False, timeout=SESSION_TIMEOUT)
    failures, outcomes = {}, Counter()
    if (directory / "report.xml").exists():
        for case in ET.parse(directory / "report.xml").getroot().iter("testcase"):
            outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
            outcomes[outcome] += 1
            if outcome == "failure":
                failures[case.get("name")] = case.find("failure").get("message")
    recorded = {tuple(map(int, line.split())) for line in owners.read_text().splitlines()} if owners.exists() else ()
    return Session(run.returncode, run.stdout + run.stderr, failures, outcomes, sorted(recorded))


def _wait_exit(pid: int) -> None:
    assert process_exits(pid, EXIT_WAIT), f"process {pid} still runs after {EXIT_WAIT:.0f} s"


def _left_behind(owners: list[tuple[int, int]]) -> list[str]:
    """Once each recorded process and its reaper have exited: what they left."""
    for pid, reaper in owners:
        _wait_exit(pid)
        _wait_exit(reaper)
    return [thing for pid, _ in owners for thing in leftovers_of(pid)]


@pytest.fixture(scope="module")
def faults_in_a_test(tmp_path_factory) -> Session:
    return _session(tmp_path_factory.mktemp("faults"), FAULTS_IN_A_TEST)


def test_a_namespace_deleted_under_a_test_is_a_target_error_naming_it(faults_in_a_test):
    failures = faults_in_a_test.failures
    assert failures["test_namespace_deleted"].startswith("harness.target.TargetError: namespace pj")
    assert "-dut is gone: something deleted it under the test" in failures["test_namespace_deleted"]


def test_a_tool_missing_mid_test_names_the_tool_and_its_package(faults_in_a_test):
    failures = faults_in_a_test.failures
    assert failures["test_tool_missing"] == ("harness.target.TargetUnavailable: `nft` is not installed: "
                                             "`apt-get install nftables`")


def test_a_hung_command_is_killed_at_the_command_timeout_naming_the_command(faults_in_a_test):
    failures = faults_in_a_test.failures
    assert failures["test_command_hangs"] == (
        "harness.target.CommandError: `tc qdisc show` failed: no end after 1 s (the lab's command timeout, "
        "harness.drivers.netns.COMMAND_TIMEOUT): killed")


def test_the_drop_tracer_dying_mid_test_says_bpftrace_was_killed(faults_in_a_test):
    failures = faults_in_a_test.failures
    if "test_observer_dies" not in failures:
        pytest.skip("no drop tracer here (bpftrace): " + faults_in_a_test.output[-300:])
    assert failures["test_observer_dies"].startswith("harness.target.TargetError: the drop tracer did not report")
    assert failures["test_observer_dies"].endswith("so drops cannot be complete: bpftrace exited with status -9")


def test_after_the_faults_the_next_test_runs_and_nothing_is_left(faults_in_a_test):
    session = faults_in_a_test
    assert "test_the_next_test_runs" not in session.failures
    assert session.outcomes["passed"] + session.outcomes["skipped"] == 1
    assert session.outcomes["failure"] == len(session.failures) >= 3
    assert len(session.owners) == 1  # one process ran them all
    assert _left_behind(session.owners) == []


def test_a_worker_killed_mid_test_is_reported_crashed_the_next_test_runs_and_its_lab_is_reaped(tmp_path):
    session = _session(tmp_path, textwrap.dedent("""
        import os, signal
        from conftest import record_owner

        def test_killed(target):
            record_owner()
            target.sh("ip addr add 10.0.0.1/24 dev p0")
            os.kill(os.getpid(), signal.SIGKILL)

        def test_the_next(target):
            record_owner()
            assert target.sh("ip -4 addr show dev p0") == ""
    """), "-n", "1")
    assert session.outcomes == Counter(error=1, passed=1)  # a crash is an error, not an assertion
    assert "worker 'gw0' crashed while running 'test_inner.py::test_killed'" in session.output
    assert len({pid for pid, _ in session.owners}) == 2  # the replacement worker ran the next test
    assert _left_behind(session.owners) == []


KILLS_A_WORKER_STARTING = textwrap.dedent("""
    import os, signal
    from harness.drivers.netns import process_exits

    def pytest_xdist_newgateway(gateway):
        \"\"\"Worker PJ_KILL_WORKER killed once, between its gateway's start and its setup.\"\"\"
        killed = os.path.join(os.path.dirname(os.environ["PJ_OWNERS"]), "killed")
        if gateway.id == os.environ["PJ_KILL_WORKER"] and not os.path.exists(killed):
            open(killed, "w").close()
            pid = gateway.remote_exec("import os; channel.send(os.getpid())").receive()
            os.kill(pid, signal.SIGKILL)
            assert process_exits(pid, 30)
""")


@pytest.mark.parametrize("worker", ["gw0", "gw1"])  # gw1: gw0 has started already, and goes down with the rest
def test_a_worker_killed_while_starting_is_named_the_workers_start_again_and_the_tests_run(tmp_path, monkeypatch,
                                                                                          worker):
    """Before it collected any test: xdist alone would stop the run with an internal error."""
    monkeypatch.setenv("PJ_KILL_WORKER", worker)
    (tmp_path / "conftest_kill.py").write_text(KILLS_A_WORKER_STARTING)
    session = _session(tmp_path, textwrap.dedent("""
        from conftest import record_owner

        def test_one(target):
            record_owner()
            target.sh("ip addr add 10.0.0.1/24 dev p0")

        def test_two(target):
            record_owner()
            assert target.sh("ip -4 addr show dev p0") == ""
    """), "-n", "2", "-p", "conftest_kill")
    assert session.ret == pytest.ExitCode.OK, session.output
    assert f"[{worker}] died while starting, before collecting any test (" in session.output
    assert session.outcomes == Counter(passed=2)
    assert _left_behind(session.owners) == []


def test_the_run_killed_mid_test_takes_its_workers_and_their_labs_with_it(tmp_path):
    """SIGKILL of the pytest process: its workers get SIGTERM (PR_SET_PDEATHSIG),
    whose handler deletes their labs; their reapers find nothing left."""
    session = _session(tmp_path, textwrap.dedent("""
        import os, signal, time
        from conftest import record_owner

        def test_controller_killed(target):
            record_owner()
            target.sh("ip addr add 10.0.0.1/24 dev p0")
            os.kill(os.getppid(), signal.SIGKILL)
            time.sleep(600)
    """), "-n", "1")
    assert session.ret == -signal.SIGKILL
    assert len(session.owners) == 1
    assert _left_behind(session.owners) == []


def test_ctrl_c_mid_test_ends_the_run_as_interrupted_with_nothing_left(tmp_path):
    session = _session(tmp_path, textwrap.dedent("""
        import os, signal
        from conftest import record_owner

        def test_interrupted(target):
            record_owner()
            target.sh("ip addr add 10.0.0.1/24 dev p0")
            os.kill(os.getpid(), signal.SIGINT)
    """))
    assert session.ret == pytest.ExitCode.INTERRUPTED
    assert _left_behind(session.owners) == []
