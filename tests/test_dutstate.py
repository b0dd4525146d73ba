"""The lab DUT's safety core: the allow-list refuses what would change an interface
the lab file does not allow (unit tests, no DUT needed), and on a real DUT
namespace reached over SSH (tests/sshlab.py, root) prepare/snapshot/restore/release
put back everything a test changes, also after a dropped connection, and a killed
session's journal is recovered.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from harness.drivers import dutstate
from harness.drivers.dutstate import (
    DutState,
    RecoveredStation,
    Unrestored,
    parse_features,
    parse_settings,
    route_args,
    rule_args,
)
from harness.drivers.remote import RemoteError, SshHost
from harness.drivers.sshd import SSHD, _children
from harness.target import DUT_SYSCTLS, PORTS, CommandError
from sshlab import LAB_PORTS, ssh_dut

INTERFACES = [SimpleNamespace(port=f"p{i}", name=name) for i, name in enumerate(LAB_PORTS)]


def _prepared_state(lab_file: str | None = "lab.yaml") -> DutState:
    """A DutState as after prepare(), for the allow-list alone (no DUT)."""
    host = SimpleNamespace(dut=SimpleNamespace(user="root", host="192.0.2.1", port=22, via_netns=None))
    state = DutState(host, INTERFACES, [*LAB_PORTS, "ens2"], ["mgmt0"], lab_file)
    state._journal = {"prepared": True, "records": {}}
    return state


def _refusal(argv: str | list[str], stdin: str | None = None) -> str:
    with pytest.raises(CommandError) as error:
        _prepared_state().check(argv.split() if isinstance(argv, str) else argv, stdin)
    return str(error.value)


@pytest.mark.parametrize("argv", [
    "ip link set dev mgmt0 down",
    "ip link set mgmt0 mtu 1400",
    "ip addr add 10.0.0.1/24 dev mgmt0",
    "ip addr flush dev mgmt0",
    "ip route add 10.9.0.0/24 dev mgmt0",
    "ip route add 10.9.0.0/24 via 10.0.0.2 dev p0 nexthop dev mgmt0",
    "ip neigh replace 10.0.0.2 lladdr 02:00:00:00:00:09 dev mgmt0 nud permanent",
    "ip rule add iif mgmt0 lookup 100",
    "ip link set dev p0 master mgmt0",
    "ip -6 addr add 2001:db8::1/64 dev mgmt0",
    "tc qdisc add dev mgmt0 root handle 1: tbf rate 1mbit burst 5kb limit 10kb",
    "tc filter add dev p0 ingress matchall action mirred egress redirect dev mgmt0",
    "tc -s qdisc replace dev mgmt0 clsact",
    "ethtool -K mgmt0 gro off",
    "ethtool -G mgmt0 rx 256",
    "ethtool -C mgmt0 rx-usecs 10",
    "ethtool -L mgmt0 combined 2",
    "ethtool -X mgmt0 equal 2",
    "ethtool -s mgmt0 speed 1000 duplex full autoneg off",
    "ethtool --json -K mgmt0 tso off",
    "sysctl -w net.ipv4.conf.mgmt0.rp_filter=1",
    "sysctl net.ipv6.conf.mgmt0.disable_ipv6=1",
    "bpftool net attach xdp id 7 dev mgmt0",
    "ip link set dev mgmt0 xdp obj prog.o sec xdp",
    "ip link set dev mgmt0 xdpgeneric off",
])
def test_every_command_family_refuses_the_management_interface_and_says_so(argv):
    assert "refused on a lab DUT: mgmt0 is the management interface (lab file lab.yaml: dut.management); " \
           "the harness never changes it" in _refusal(argv)


@pytest.mark.parametrize("argv, stdin", [
    ("ip -batch -", "addr add 10.0.0.1/24 dev p0\nlink set dev mgmt0 up\n"),
    ("tc -batch -", "qdisc add dev p1 root pfifo\nqdisc add dev mgmt0 root pfifo\n"),
    ("nft -f -", 'table netdev t {\n chain c {\n  type filter hook ingress device "mgmt0" priority 0;\n }\n}\n'),
    ("nft -f -", "table netdev t {\n flowtable f {\n  hook ingress priority 0; devices = { p0, mgmt0 };\n }\n}\n"),
    (["nft", "add chain netdev t c { type filter hook ingress device mgmt0 priority 0; }"], None),
])
def test_batches_and_rulesets_on_stdin_are_read_line_by_line(argv, stdin):
    assert "mgmt0 is the management interface" in _refusal(argv, stdin)


def test_an_interface_outside_the_allow_list_is_refused_naming_the_list():
    assert _refusal("ip link set dev eth7 up") == (
        "`ip link set dev eth7 up` failed: refused on a lab DUT: eth7 is not in the allow-list (lab file lab.yaml: "
        "dut.allow) (ens2, p0, p1, p2); the harness changes only those")


@pytest.mark.parametrize("argv", [
    "ip link set dev p0 mtu 9000",
    "ip -j link show",
    "ip -s -s link show dev mgmt0",
    "ip link show mgmt0",
    "ip route add 203.0.113.0/24 via 10.0.1.2",
    "ip route add blackhole 203.0.113.0/25",
    "ip route add default via 10.0.2.2 table 100",
    "ip route flush table 100",
    "ip route flush dev p1",
    "ip rule add fwmark 0x2a lookup 100",
    "ip rule add to 203.0.113.0/24 priority 100 prohibit",
    "ip rule del priority 100",
    "ip addr add 10.0.0.1/24 dev ens2",
    "ip link add link p0 name p0.10 type vlan id 10",
    "ip link add veth7 type veth peer name veth8",
    "iptables -A FORWARD -i mgmt0 -o p1 -j DROP",
    "iptables -t nat -A POSTROUTING -o mgmt0 -j MASQUERADE",
    "iptables -P FORWARD DROP",
    "sysctl -w net.ipv4.conf.all.rp_filter=1",
    "sysctl -w net.ipv4.ip_forward=1",
    "sysctl -n net.ipv4.conf.mgmt0.forwarding",
    "ethtool -S mgmt0",
    "ethtool -k mgmt0",
    "ethtool -i mgmt0",
    "ethtool mgmt0",
    "conntrack -F",
    "nstat -az",
    "tc -s qdisc show dev mgmt0",
    "bpftool -j map update id 4 key hex 01 00 00 00 value hex 01 00 00 00",
    "nft list ruleset",
])
def test_commands_on_allowed_interfaces_or_only_matching_others_pass(argv):
    _prepared_state().check(argv.split())


def test_a_ruleset_naming_only_lab_ports_passes():
    _prepared_state().check(["nft", "-f", "-"], 'table netdev nd {\n chain in {\n type filter hook ingress '
                                                'device "p0" priority 0; policy accept;\n }\n}\n')


def _run_through(state: DutState, command: str) -> None:
    """What the lab target does before running a command: check, then record."""
    state.check(command.split())
    state.before_command(command.split())


def test_interfaces_the_test_creates_are_allowed_from_then_on(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    state = _prepared_state()
    with pytest.raises(CommandError, match="br0 is not in the allow-list"):
        state.check(["ip", "link", "set", "dev", "p1", "master", "br0"])
    _run_through(state, "ip link add br0 type bridge")
    _run_through(state, "ip link set dev p1 master br0")
    _run_through(state, "ip addr add 10.0.0.1/24 dev br0")
    _run_through(state, "ip link add a0 type veth peer name a1")  # the peer is the test's too
    _run_through(state, "ip link set dev a1 up")
    assert json.loads(state.journal_file.read_text())["records"]["created"] == ["br0", "a0", "a1"]


def test_interfaces_created_in_the_test_s_namespace_are_allowed_from_then_on(tmp_path, monkeypatch):
    """With the ports in a namespace of the test's (portsnetns.py) the bridge goes with it,
    but the test's next commands still name it."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    state = _prepared_state()
    for command in ("ip link add br0 type bridge", "ip link set dev p1 master br0", "bridge link set dev p1 flood off"):
        state.check(command.split())
        state.before_command(command.split(), netns="pjports1-2x0")
    assert json.loads(state.journal_file.read_text())["records"]["created"] == ["br0"]


def test_renaming_an_allowed_interface_keeps_the_new_name_allowed(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    state = _prepared_state()
    _run_through(state, "ip link set dev p0 name wan")
    _run_through(state, "ip link set dev wan up")
    assert json.loads(state.journal_file.read_text())["records"]["renamed"] == {"p0": "wan"}


@pytest.mark.parametrize("argv, why", [
    ("ip -n other link set dev p0 up", "`ip -n` works in another network namespace"),
    ("ip netns add x", "`ip netns` changes network namespaces"),
    ("ip addr flush scope global", "`ip address flush` without `dev` acts on every interface"),
    ("ip neigh flush all", "`ip neigh flush` without `dev` acts on every interface"),
    ("ip route flush table main", "`ip route flush` of the main, local or default table"),
    ("ip route flush proto static", "`ip route flush` of the main, local or default table"),
    ("ip route add default via 10.0.0.2", "a route to `default` would replace the DUT's default route"),
    ("ip route replace 0.0.0.0/0 dev p0", "a route to `0.0.0.0/0` would replace"),
    ("ip -6 route add ::/0 via fe80::1 dev p0", "a route to `::/0` would replace"),
    ("ip rule add lookup 100", "an `ip rule` without a selector"),
    ("ip rule add from all lookup 100", "an `ip rule` without a selector"),
    ("ip rule flush", "`ip rule flush` removes the main and default rules"),
    ("ip link set group 0 down", "`ip link set group N` acts on every interface of the group"),
    ("ip link add type dummy", "`ip link add` without a name"),
    ("ip link del dev p0", "p0 is a lab port; no command brings a deleted port back"),
    ("ip link set dev p0 netns 1", "moving an interface to another network namespace"),
    ("ip -batch /tmp/cmds", "`ip -batch FILE` runs commands the allow-list cannot see"),
    ("ip xfrm state flush", "the allow-list cannot tell which interfaces `ip xfrm state flush` changes"),
    ("tc filter add block 1 matchall action drop", "a shared tc block spans devices"),
    ("tc actions flush action gact", "standalone tc actions are shared"),
    ("tc qdisc add root pfifo", "`tc qdisc add` without `dev` acts on interfaces the allow-list cannot see"),
    ("nft -f /etc/nftables.conf", "`nft -f FILE` loads a ruleset the allow-list cannot see"),
    ("iptables -P INPUT DROP", "policy DROP on INPUT drops the SSH session"),
    ("sysctl -p /etc/sysctl.conf", "`sysctl -p`/`--system` write keys the allow-list cannot see"),
    ("sysctl --system", "`sysctl -p`/`--system`"),
    ("ethtool -f p0 firmware.bin", "`ethtool -f` makes a change the harness cannot undo"),
    ("ethtool -U p0 flow-type udp4 action 1", "`ethtool -U` makes a change the harness cannot undo"),
    ("ethtool --reset p0 all", "`ethtool --reset` makes a change the harness cannot undo"),
    ("bpftool prog load x.o /tmp/x", "a pin outside /sys/fs/bpf/"),
    ("reboot", "the allow-list does not know `reboot`"),
])
def test_commands_acting_on_everything_or_beyond_undo_are_refused(argv, why):
    assert f"refused on a lab DUT: {why}" in _refusal(argv)


def test_a_ruleset_whose_input_chain_drops_everything_is_refused():
    assert "a `hook input` chain with `policy drop` drops the SSH session" in _refusal(
        ["nft", "-f", "-"], "table inet f {\n chain in {\n type filter hook input priority 0; policy drop;\n }\n}\n")
    assert "policy DROP on OUTPUT" in _refusal(["iptables-restore"], "*filter\n:OUTPUT DROP [0:0]\nCOMMIT\n")


def test_sysctl_writes_name_the_interface_of_per_interface_keys():
    assert dutstate.sysctl_writes(["-w", "net.ipv4.conf.p0.rp_filter=1", "net/ipv4/ip_forward=1"]) == {
        "net.ipv4.conf.p0.rp_filter": "1", "net.ipv4.ip_forward": "1"}
    assert dutstate.sysctl_interface("net.ipv4.conf.p0/10.rp_filter") == "p0.10"
    assert dutstate.sysctl_interface("net.ipv6.neigh.p1.base_reachable_time_ms") == "p1"
    assert dutstate.sysctl_interface("net.ipv4.conf.all.rp_filter") is None


def test_ip_json_records_turn_back_into_the_commands_that_make_them():
    assert route_args({"dst": "10.9.0.0/24", "gateway": "10.0.2.2", "dev": "p2", "table": "100",
                       "protocol": "boot", "flags": []}) == \
        ["10.9.0.0/24", "via", "10.0.2.2", "dev", "p2", "table", "100", "proto", "boot"]
    assert route_args({"type": "blackhole", "dst": "203.0.113.0/25", "protocol": "boot", "flags": []}) == \
        ["blackhole", "203.0.113.0/25", "table", "main", "proto", "boot"]
    assert rule_args({"priority": 32765, "src": "all", "fwmark": "0x2", "table": "100"}) == \
        ["priority", "32765", "fwmark", "0x2", "lookup", "100"]
    assert rule_args({"priority": 100, "src": "all", "dst": "203.0.113.0", "dstlen": 24, "action": "prohibit"}) == \
        ["priority", "100", "to", "203.0.113.0/24", "prohibit"]


def test_ethtool_displays_parse_into_the_setters_parameters():
    features = parse_features(textwrap.dedent("""\
        Features for p0:
        rx-checksumming: on
        tx-checksumming: off
        \ttx-checksum-ipv4: off [fixed]
        \ttx-checksum-ip-generic: off
        tcp-segmentation-offload: off [requested on]
        generic-receive-offload: on
        large-receive-offload: off [fixed]
        """))
    assert features == {"rx-checksumming": "on", "tx-checksum-ip-generic": "off",
                        "tcp-segmentation-offload": "on", "generic-receive-offload": "on"}
    rings = parse_settings("-g", "Ring parameters for p0:\nPre-set maximums:\nRX:\t\t4096\nTX:\t\t4096\n"
                                 "Current hardware settings:\nRX:\t\t512\nRX Mini:\tn/a\nTX:\t\t1024\n")
    assert rings == {"rx": "512", "tx": "1024"}
    coalesce = parse_settings("-c", "Coalesce parameters for p0:\nAdaptive RX: on  TX: off\nrx-usecs: 3\n"
                                    "rx-frames: n/a\n")
    assert coalesce == {"adaptive-rx": "on", "adaptive-tx": "off", "rx-usecs": "3"}
    link = parse_settings("", "Settings for p0:\n\tSpeed: 10000Mb/s\n\tDuplex: Full\n\tAuto-negotiation: off\n")
    assert link == {"speed": "10000", "duplex": "full", "autoneg": "off"}


# on a DUT namespace over SSH ------------------------------------------------------

needs_ssh_dut = pytest.mark.skipif(
    os.geteuid() != 0 or not os.access(SSHD, os.X_OK) or shutil.which("nft") is None
    or shutil.which("conntrack") is None,
    reason="the SSH DUT needs root, openssh-server, nftables and conntrack")


@pytest.fixture
def lab(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    with ssh_dut(tmp_path / "sshd") as lab:
        yield lab


@pytest.fixture
def host(lab):
    with SshHost(lab.dut, lab.timeouts) as host:
        yield host


def _state(host: SshHost, lab) -> DutState:
    return DutState(host, INTERFACES, lab.dut.allow, lab.dut.management, "lab.yaml")


def _observable(host: SshHost) -> dict:
    """Everything a test may change, read independently of DutState's own reading."""
    def run(*argv):
        return host.run(list(argv))
    links = {link["ifname"]: {k: link.get(k) for k in ("address", "mtu", "master", "xdp")} | {"up": "UP" in link["flags"]}
             for link in json.loads(run("ip", "-j", "link", "show"))}
    return {
        "links": links,
        "addresses": {a["ifname"]: sorted((i["local"], i["prefixlen"]) for i in a["addr_info"])
                      for a in json.loads(run("ip", "-j", "addr", "show"))},
        "routes": run("ip", "route", "show", "table", "all"),
        "routes6": run("ip", "-6", "route", "show", "table", "all"),
        "rules": run("ip", "rule", "show") + run("ip", "-6", "rule", "show"),
        "neighbours": run("ip", "neigh", "show", "nud", "permanent"),
        "qdiscs": run("tc", "qdisc", "show"),
        "ruleset": run("nft", "list", "ruleset"),
        "sysctls": run("sysctl", "net.ipv4.ip_forward", "net.ipv4.conf.all.rp_filter", "net.ipv4.conf.p1.rp_filter",
                       "net.ipv4.conf.mgmt0.forwarding", "net.ipv4.ipfrag_time"),
        "features": run("ethtool", "-k", "p0"),
        "conntrack": run("conntrack", "-L"),
    }


def _sh(state: DutState, command: str, stdin: str | None = None) -> str:
    return state.run(command.split(), stdin)


def _change_everything(state: DutState, bpf_objects=None) -> None:
    """Every kind of change a suite makes; with `bpf_objects`, XDP and TC programs too."""
    for command in (
        "ip addr add 10.0.0.1/24 dev p0",
        "ip addr add 10.0.1.1/24 dev p1",
        "ip neigh replace 10.0.1.2 lladdr 02:00:00:00:01:02 dev p1 nud permanent",
        "ip route add 203.0.113.0/24 via 10.0.1.2",
        "ip route add blackhole 198.51.100.0/25",
        "ip route add 10.9.0.0/24 via 10.0.1.2 dev p1 table 100",
        "ip rule add fwmark 0x2a lookup 100",
        "ip link set dev p1 mtu 1400",
        "ip link set dev p2 down",
        "ip link set dev p2 address 02:00:00:00:00:99",
        "ip link add br7 type bridge",
        "ip link set dev p0 master br7",
        "ip addr add 10.7.0.1/24 dev br7",
        "ip link set dev br7 up",
        "tc qdisc add dev p1 root handle 1: tbf rate 10mbit burst 5kb limit 150kb",
        "tc qdisc add dev p0 clsact",
        "sysctl -w net.ipv4.ip_forward=1",
        "sysctl -w net.ipv4.conf.all.rp_filter=1",
        "sysctl -w net.ipv4.conf.p1.rp_filter=2",
        "sysctl -w net.ipv4.ipfrag_time=5",
        "ethtool -K p0 gro on tx on",
        "ip addr del 10.0.0.1/24 dev p0",
    ):
        _sh(state, command)
    _sh(state, "nft -f -", "table inet filter {\n chain forward {\n type filter hook forward priority 0; "
                                  "policy drop;\n counter accept\n }\n}\n")
    _sh(state, "iptables -A FORWARD -i p0 -o p1 -j ACCEPT")
    if bpf_objects is not None:
        _sh(state, f"ip link set dev p2 xdpgeneric obj {bpf_objects['xdp_pass']} sec xdp")
        _sh(state, f"ip link set dev p1 xdp obj {bpf_objects['xdp_pass']} sec xdp")
        _sh(state, f"tc filter add dev p0 ingress bpf da obj {bpf_objects['tc_mark']} sec tc")


@needs_ssh_dut
def test_prepare_names_the_lab_ports_and_release_gives_the_names_back(lab, host):
    before = _observable_raw(host)
    state = _state(host, lab)
    state.prepare()
    links = {link["ifname"]: link for link in json.loads(host.run(["ip", "-j", "link", "show"]))}
    for port in PORTS:
        assert links[port.name]["address"] == port.mac and links[port.name]["mtu"] == 1500
        assert "UP" in links[port.name]["flags"]
        assert host.run(["sysctl", "-n", f"net.ipv6.conf.{port.name}.disable_ipv6"]) == "1\n"
    assert "mgmt0" in links and host.run(["sysctl", "-n", "net.ipv6.conf.mgmt0.disable_ipv6"]) == "0\n"
    for key, value in DUT_SYSCTLS.items():
        if "disable_ipv6" not in key:
            assert host.run(["sysctl", "-n", key]).strip() == value
    assert "tx-checksumming: off" in host.run(["ethtool", "-k", "p0"])
    assert state.journal_file.exists()
    assert state.release() == []
    assert _observable_raw(host) == before
    assert not state.journal_file.exists()


def _observable_raw(host: SshHost) -> dict:
    """Names, MACs, MTUs, states, offloads and sysctls before prepare()."""
    links = {link["ifname"]: (link["address"], link["mtu"], "UP" in link["flags"])  # carrier is not ours
             for link in json.loads(host.run(["ip", "-j", "link", "show"]))}
    return {"links": links,
            "sysctls": host.run(["sysctl", "-a", "-r", r"^net\.ipv[46]\.(conf|ip_forward|icmp|ping)"]),
            "features": [host.run(["ethtool", "-k", name]) for name in links]}


@needs_ssh_dut
def test_restore_undoes_every_change_a_test_makes(lab, host, bpf_objects):
    state = _state(host, lab)
    state.prepare()
    state.snapshot()
    before = _observable(host)
    _change_everything(state, bpf_objects)
    assert _observable(host) != before
    assert state.restore() == []
    after = _observable(host)
    assert after == before
    state.release()


@needs_ssh_dut
def test_restore_after_a_dropped_connection_reconnects_first(lab, host):
    state = _state(host, lab)
    state.prepare()
    state.snapshot()
    before = _observable(host)
    _change_everything(state)
    for session in _children(lab.sshd.process.pid):  # as a DUT's sshd dying: the connection drops
        os.kill(session, signal.SIGKILL)
    with pytest.raises(RemoteError):
        host.run(["true"])
    assert not host.connected
    assert state.restore() == []
    assert _observable(host) == before
    assert state.release() == []


def _killed_session(lab) -> None:
    """A session that prepares the DUT, changes everything in a test and is killed
    with SIGKILL: nothing of it runs after, as when CI kills a job."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        from types import SimpleNamespace
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from harness.drivers.remote import SshHost
        from harness.drivers.dutstate import DutState
        from test_dutstate import INTERFACES, _change_everything
        dut = SimpleNamespace(**{ {k: str(v) if k in ("key", "known_hosts") else v
                                    for k, v in vars(lab.dut).items()}!r})
        host = SshHost(dut, SimpleNamespace(connect=5.0, command=20.0))
        state = DutState(host, INTERFACES, dut.allow, dut.management, "lab.yaml")
        state.prepare()
        state.snapshot()
        _change_everything(state)
        print("changed", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert result.stdout == "changed\n"


def _lab_file(lab, path, known_hosts=None) -> str:
    """A lab file naming the SSH DUT (its TRex is never reached by recovery)."""
    dut = lab.dut
    lines = ["stations:", "  - name: standin-0", "    dut:", f"      host: {dut.host}", f"      user: {dut.user}",
             f"      key: {dut.key}", f"      known_hosts: {known_hosts or dut.known_hosts}",
             f"      via_netns: {dut.via_netns}",
             "      interfaces:",
             *(f"        - {{port: {i.port}, name: {i.name}, speed: 10G}}" for i in INTERFACES),
             f"      allow: [{', '.join(dut.allow)}]", "      management: [mgmt0]",
             "    trex:", "      host: 10.253.0.2", "      ports: {0: p0, 1: p1, 2: p2}"]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@needs_ssh_dut
@pytest.mark.parametrize("recovery", ["next prepare()", "recover --lab"])
def test_a_killed_session_is_recovered_from_its_journal(lab, tmp_path, recovery):
    with SshHost(lab.dut, lab.timeouts) as host:
        before = _observable_raw(host)
        _killed_session(lab)
        assert "p0" in host.run(["ip", "-o", "link", "show"])
        assert host.run(["sysctl", "-n", "net.ipv4.ipfrag_time"]) == "5\n"
        assert dutstate.journal_path(lab.dut).exists()
        if recovery == "next prepare()":
            state = _state(host, lab)
            with pytest.warns(RecoveredStation, match="the journal .* of a killed session was found and the "
                                                      "DUT restored from it$"):
                state.prepare()
            assert state.recovered == []
            assert host.run(["sysctl", "-n", "net.ipv4.ipfrag_time"]) == "30\n"
            assert state.release() == []
        else:
            (tmp_path / "stranger").write_text("")  # the DUT's key unknown: it cannot be trusted, not reached
            unreachable = _lab_file(lab, tmp_path / "unreachable.yaml", known_hosts=tmp_path / "stranger")
            result = subprocess.run([sys.executable, "-m", "harness.drivers.dutstate", "recover", "--lab",
                                     unreachable], capture_output=True, text=True)
            assert result.returncode == 1
            assert result.stdout.startswith(f"standin-0: NOT restored:\n  cannot reach DUT root@{lab.dut.host}:22 "
                                            f"(from netns {lab.ctl_netns}) while connecting: the host key is not")
            assert dutstate.journal_path(lab.dut).exists()
            assert result.stdout.endswith(f"    by hand: python -m harness.drivers.dutstate recover --lab "
                                          f"{unreachable} (once the DUT is back)\n")
            lab_file = _lab_file(lab, tmp_path / "lab.yaml")
            result = subprocess.run([sys.executable, "-m", "harness.drivers.dutstate", "recover", "--lab", lab_file],
                                    capture_output=True, text=True)
            assert (result.returncode, result.stdout, result.stderr) == (0, "standin-0: restored\n", "")
            again = subprocess.run([sys.executable, "-m", "harness.drivers.dutstate", "recover", "--lab", lab_file],
                                   capture_output=True, text=True)
            assert again.stdout.startswith(f"no journal for any station of {lab_file} in ")
        assert not dutstate.journal_path(lab.dut).exists()
        assert _observable_raw(host) == before


@needs_ssh_dut
def test_what_cannot_be_restored_is_reported_with_the_command_to_do_it(lab, host):
    state = _state(host, lab)
    state.prepare()
    state.snapshot()
    _sh(state, "ip link add br7 type bridge")
    # a ruleset nft cannot load back: the snapshot is corrupted on purpose
    state._journal["snapshot"]["ruleset"] = "table inet broken {\n chain c { nonsense; }\n}\n"
    unrestored = state.restore()
    assert len(unrestored) == 1
    assert unrestored[0].what.startswith("the nft ruleset: `nft -f -` failed: ")
    assert unrestored[0].command.startswith(f"ssh -p 22 root@{lab.dut.host} 'nft -f -' <<'EOF'\nflush ruleset\n")
    assert isinstance(unrestored[0], Unrestored)
    assert "br7" not in host.run(["ip", "-o", "link", "show"])
    state.release()


@needs_ssh_dut
def test_identity_names_kernel_distribution_nic_and_cpu(lab, host):
    identity = dutstate.identity(host, INTERFACES)
    assert identity["kernel"] == os.uname().release
    with open("/etc/os-release") as f:
        assert identity["distribution"] in f.read()
    assert identity["cpu"]["count"] == os.cpu_count()
    port = identity["ports"]["p0"]
    assert port["name"] == "ens1f0" and port["driver"] == "veth" and port["model"] == "virtual (veth)"


@needs_ssh_dut
def test_the_stand_in_lab_station_is_taken_restored_and_given_back(tmp_path, monkeypatch, bpf_objects):
    """The whole DUT side of a session on the stand-in lab, through its lab file."""
    from harness.drivers.standin_lab import StandinLab, dut_port_mac
    from harness.labfile import load_lab
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    with StandinLab(1, tmp_path / "lab") as standin:
        lab = load_lab(standin.lab_file)
        station = lab.stations[0]
        with SshHost(station.dut, station.timeouts) as host:
            state = DutState(host, station.dut.interfaces, station.dut.allow, station.dut.management,
                             standin.lab_file)
            state.prepare()
            links = {link["ifname"]: link["address"] for link in json.loads(host.run(["ip", "-j", "link", "show"]))}
            assert {port.name: links.get(port.name) for port in PORTS} == {port.name: port.mac for port in PORTS}
            with pytest.raises(CommandError, match="mgmt0 is the management interface"):
                state.run(["ip", "link", "set", "dev", "mgmt0", "down"])
            state.snapshot()
            before = _observable(host)
            _change_everything(state, bpf_objects)
            assert state.restore() == []
            assert _observable(host) == before
            assert state.release() == []
            links = {link["ifname"]: link["address"] for link in json.loads(host.run(["ip", "-j", "link", "show"]))}
            assert {name: links.get(name) for name in ("ens1f0", "ens1f1", "ens1f2")} == {
                f"ens1f{i}": dut_port_mac(0, i) for i in range(3)}


@needs_ssh_dut
def test_filters_the_dut_had_before_the_test_are_reported_not_removed(lab, host, bpf_objects):
    state = _state(host, lab)
    state.prepare()
    tc_filter = ["bpf", "da", "obj", str(bpf_objects["tc_mark"]), "sec", "tc"]
    host.run(["tc", "qdisc", "add", "dev", "p0", "clsact"])  # the DUT's own, there before the test
    host.run(["tc", "filter", "add", "dev", "p0", "ingress", *tc_filter])
    state.snapshot()
    _sh(state, "tc qdisc add dev p0 root handle 1: tbf rate 10mbit burst 5kb limit 150kb")
    state.run(["tc", "filter", "add", "dev", "p0", "egress", *tc_filter])
    assert state.restore() == [Unrestored(
        "the tc filters p0 had before the test were changed",
        "tc filter del dev p0 ingress; tc filter del dev p0 egress; then add the DUT's own filters back")]
    kinds = [qdisc["kind"] for qdisc in json.loads(host.run(["tc", "-j", "qdisc", "show", "dev", "p0"]))]
    assert sorted(kinds) == ["clsact", "noqueue"]  # the test's tbf gone, the DUT's clsact kept
    host.run(["tc", "qdisc", "del", "dev", "p0", "clsact"])
    assert state.release() == []
