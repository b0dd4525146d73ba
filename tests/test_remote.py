"""The remote DUT driver against a real OpenSSH server (Debian's sshd) running inside
a DUT namespace, reached from a client namespace (tests/sshlab.py): commands and
their failures, long-running processes, and every way of not reaching
the DUT, each named as infrastructure (RemoteError), never as a test failure.

Needs root and openssh-server; without them the tests skip saying so.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import socket
import time
from types import SimpleNamespace

import pytest

from harness.drivers.netns import inside_netns
from harness.drivers.remote import RemoteError, SshHost
from harness.drivers.sshd import SSHD, start_sshd
from harness.target import CommandError, TargetUnavailable
from sshlab import DUT_ADDRESS, ssh_dut

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.access(SSHD, os.X_OK) or shutil.which("ssh-keygen") is None,
    reason="the SSH DUT needs root and openssh-server (sshd, ssh-keygen)")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with ssh_dut(tmp_path_factory.mktemp("sshd")) as lab:
        yield lab


@pytest.fixture(scope="module")
def host(lab):
    with SshHost(lab.dut, lab.timeouts) as host:
        yield host


def _dut(lab, **changes) -> SimpleNamespace:
    return SimpleNamespace(**{**vars(lab.dut), **changes})


def test_commands_run_in_the_dut_namespace_with_each_argument_one_word(lab, host):
    links = host.run(["ip", "-o", "link", "show"])
    assert "mgmt0" in links and "ens1f2" in links
    # what a shell would expand arrives as written: the argv was joined with shlex.join
    assert host.run(["echo", "$HOME", "a;b", "'q'", "*"]) == "$HOME a;b 'q' *\n"
    assert host.run(["cat"], stdin="line 1\nline 2\n") == "line 1\nline 2\n"


def test_the_host_namespace_never_sees_the_dut():
    with open("/proc/net/dev") as f:
        assert "mgmt0" not in f.read()


def test_a_failing_command_raises_command_error_with_the_remote_stderr(host):
    with pytest.raises(CommandError) as error:
        host.run(["ip", "link", "set", "dev", "nosuchdev", "up"])
    assert str(error.value) == '`ip link set dev nosuchdev up` failed: Cannot find device "nosuchdev"'
    assert error.value.returncode == 1
    assert error.value.argv == ["ip", "link", "set", "dev", "nosuchdev", "up"]


def test_a_silent_failure_names_its_exit_status_and_stderr_fails_on_demand(host):
    with pytest.raises(CommandError, match=r"^`false` failed: exit status 1$"):
        host.run(["false"])
    assert host.run(["sh", "-c", "echo warning >&2"]) == ""
    with pytest.raises(CommandError, match=r"failed: warning$"):
        host.run(["sh", "-c", "echo warning >&2"], stderr_fails=True)


def test_sudo_prefixes_every_command_line(lab):
    host = object.__new__(SshHost)
    host.dut = _dut(lab, become="sudo")
    assert host.command_line(["ip", "addr", "add", "10.0.0.1/24", "dev", "p0"]) == \
        "sudo -n -- ip addr add 10.0.0.1/24 dev p0"
    assert host.command_line(["nft", "add rule x"]) == "sudo -n -- nft 'add rule x'"


def test_a_process_keeps_running_and_carries_bytes_both_ways(host):
    process = host.open_process(["cat"])
    try:
        payload = bytes(range(256)) * 64
        process.stdin.write(payload)
        process.stdin.drain()
        assert process.stdout.readexactly(len(payload)) == payload
        process.stdin.close()
        assert process.wait() == 0
    finally:
        process.close()


def test_a_process_ending_early_is_a_remote_error_naming_the_bytes_missing(host):
    process = host.open_process(["head", "-c", "3", "/etc/hostname"])
    with pytest.raises(RemoteError, match=r"while reading from `head -c 3 /etc/hostname`: the remote "
                                          r"process closed its output after 3 of 10 bytes"):
        process.stdout.readexactly(10)
    process.close()


def test_a_wrong_host_key_is_refused_naming_the_known_hosts_file(lab, tmp_path):
    other = start_sshd(lab.dut_netns, DUT_ADDRESS, tmp_path / "other", port=2222)
    try:
        # other's known_hosts names its own key for [addr]:2222; ours names lab's key
        wrong = tmp_path / "known_hosts"
        wrong.write_text(f"[{DUT_ADDRESS}]:2222 {lab.sshd.host_key_line.split(' ', 1)[1]}\n")
        with pytest.raises(RemoteError) as error:
            SshHost(_dut(lab, port=2222, known_hosts=wrong), lab.timeouts)
        assert str(error.value).startswith(
            f"cannot reach DUT root@{DUT_ADDRESS}:2222 (from netns {lab.ctl_netns}) while connecting: "
            f"the host key is not the one {wrong} names for {DUT_ADDRESS}")
        assert isinstance(error.value, TargetUnavailable)
        with SshHost(_dut(lab, port=2222, known_hosts=other.known_hosts, key=other.user_key),
                     lab.timeouts) as right:
            assert right.run(["echo", "ok"]) == "ok\n"
    finally:
        other.stop()


def test_an_unknown_host_is_refused_too(lab, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(RemoteError, match=f"the host key is not the one {empty} names"):
        SshHost(_dut(lab, known_hosts=empty), lab.timeouts)
    with pytest.raises(RemoteError, match=f"known_hosts file {tmp_path / 'missing'} does not exist"):
        SshHost(_dut(lab, known_hosts=tmp_path / "missing"), lab.timeouts)


def test_nothing_listening_fails_fast_naming_the_address(lab):
    start = time.monotonic()
    with pytest.raises(RemoteError, match=rf"^cannot reach DUT root@{DUT_ADDRESS}:2999 \(from netns "
                                          rf"{lab.ctl_netns}\) while connecting: connection refused"):
        SshHost(_dut(lab, port=2999), lab.timeouts)
    assert time.monotonic() - start < 1.0


def test_a_server_that_never_answers_times_out_after_the_connect_timeout(lab):
    with inside_netns(f"/run/netns/{lab.dut_netns}"):
        silent = socket.create_server((DUT_ADDRESS, 2998))  # accepts TCP, never speaks SSH
    with silent:
        start = time.monotonic()
        with pytest.raises(RemoteError, match=r":2998 .* while connecting: no answer within 0.3 s$"):
            SshHost(_dut(lab, port=2998), SimpleNamespace(connect=0.3, command=1.0))
        assert time.monotonic() - start < 1.0


def test_a_key_the_dut_does_not_accept_is_an_authentication_failure(lab, tmp_path):
    stranger = tmp_path / "id_ed25519"
    os.system(f"ssh-keygen -q -t ed25519 -N '' -f {stranger}")
    with pytest.raises(RemoteError, match=rf"while connecting: root was refused with key {stranger}"):
        SshHost(_dut(lab, key=stranger), lab.timeouts)


def test_a_dropped_connection_is_a_remote_error_and_reconnect_recovers(lab, tmp_path):
    sshd = start_sshd(lab.dut_netns, DUT_ADDRESS, tmp_path / "dropping", port=2022)
    host = SshHost(_dut(lab, port=2022, known_hosts=sshd.known_hosts, key=sshd.user_key), lab.timeouts)
    try:
        assert host.run(["echo", "up"]) == "up\n"
        process = host.open_process(["cat"])
        sshd.stop()  # the listener and the session's processes: as a DUT going down
        with pytest.raises(RemoteError, match=rf"root@{DUT_ADDRESS}:2022 .* while running `echo again`: "
                                              r"the connection was lost"):
            host.run(["echo", "again"])
        with pytest.raises(RemoteError, match=r"while reading from `cat`"):
            process.stdout.readexactly(1)
        with pytest.raises(RemoteError, match=r"while connecting: connection refused"):
            host.reconnect()
        sshd = start_sshd(lab.dut_netns, DUT_ADDRESS, tmp_path / "restarted", port=2022)  # new keys
        with pytest.raises(RemoteError, match="the host key is not the one"):
            host.reconnect()
        host.dut.known_hosts = sshd.known_hosts
        host.dut.key = sshd.user_key
        host.reconnect()
        assert host.run(["echo", "back"]) == "back\n"
    finally:
        host.close()
        sshd.stop()


def test_the_ssh_agent_logs_in_when_it_holds_the_key(lab, tmp_path, monkeypatch):
    agent_socket = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(agent_socket)], stdout=subprocess.DEVNULL)
    try:
        while not agent_socket.exists():
            assert agent.poll() is None, "ssh-agent exited"
            time.sleep(0.01)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(agent_socket))
        monkeypatch.setenv("HOME", str(tmp_path))  # no default keys from ~/.ssh beside the agent's
        with pytest.raises(RemoteError, match=r"while connecting: root was refused with ssh-agent"):
            SshHost(_dut(lab, key=None, agent=True), lab.timeouts)
        subprocess.run(["ssh-add", "-q", str(lab.sshd.user_key)], check=True, capture_output=True)
        with SshHost(_dut(lab, key=None, agent=True), lab.timeouts) as host:
            assert host.run(["echo", "by agent"]) == "by agent\n"
    finally:
        agent.terminate()
        agent.wait()


def test_a_command_without_input_sees_its_stdin_end_at_once(host):
    assert host.run(["cat"]) == ""


def test_a_command_past_the_command_timeout_is_a_remote_error_saying_it_may_still_run(lab):
    with SshHost(lab.dut, SimpleNamespace(connect=5.0, command=0.3)) as host:
        with pytest.raises(RemoteError, match=r"while running `sleep 3`: no answer within 0.3 s; it may still run "
                                              r"there \(`pkill -f 'sleep 3'` on the DUT\)$"):
            host.run(["sleep", "3"])
        assert host.run(["echo", "still connected"]) == "still connected\n"


def test_a_key_file_that_is_no_key_is_named(lab, tmp_path):
    garbage = tmp_path / "id_ed25519"
    garbage.write_text("not a key\n")
    with pytest.raises(RemoteError, match=rf"while connecting: the key {garbage} cannot be read: "):
        SshHost(_dut(lab, key=garbage), lab.timeouts)
    with pytest.raises(RemoteError, match=r"while connecting: .*No such file"):
        SshHost(_dut(lab, key=tmp_path / "missing"), lab.timeouts)
