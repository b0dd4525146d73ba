"""harness/labfile.py: the lab file's schema and its errors (each names the file and
the field), and stations claimed by one pytest-xdist worker at a time."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from harness import labfile
from harness.labfile import LabFileError, claim_station, json_schema, load_lab, station_index

REPO = Path(__file__).resolve().parent.parent


def station(name="rack1", host="192.0.2.10"):
    return {
        "name": name,
        "dut": {
            "host": host, "user": "pj", "become": "sudo", "key": "keys/id_ed25519", "known_hosts": "keys/known_hosts",
            "interfaces": [{"port": "p0", "name": "enp3s0f0", "speed": "10G"},
                           {"port": "p1", "name": "enp3s0f1", "speed": 10000},
                           {"port": "p2", "name": "enp3s0f2", "speed": "2.5G"}],
            "allow": ["enp3s0f0", "enp3s0f1", "enp3s0f2"],
            "management": ["eno1"],
        },
        "trex": {"host": "192.0.2.20", "ports": {0: "p0", 1: "p1", 2: "p2"}},
    }


@pytest.fixture
def lab_dir(tmp_path):
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "id_ed25519").write_text("key\n")
    (tmp_path / "keys" / "known_hosts").write_text("192.0.2.10 ssh-ed25519 AAAA\n")
    return tmp_path


def write_lab(directory: Path, data) -> Path:
    path = directory / "lab.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def error_of(directory: Path, data) -> str:
    path = write_lab(directory, data)
    with pytest.raises(LabFileError) as excinfo:
        load_lab(path)
    return str(excinfo.value)


def changed(edit, stations=None):
    """A one-station lab with `edit(station_dict)` applied."""
    data = {"stations": stations or [station()]}
    edit(data["stations"][0])
    return data


# ------------------------------------------------------------------ a valid lab

def test_a_valid_lab_loads_with_paths_relative_to_the_lab_file(lab_dir, monkeypatch):
    monkeypatch.chdir("/")
    lab = load_lab(write_lab(lab_dir, {"stations": [station()]}))
    dut = lab.stations[0].dut
    assert lab.path == lab_dir / "lab.yaml"
    assert dut.key == lab_dir / "keys" / "id_ed25519"
    assert dut.known_hosts == lab_dir / "keys" / "known_hosts"
    assert (dut.port, dut.become, dut.python, dut.agent, dut.via_netns) == (22, "sudo", "python3", False, None)
    trex = lab.stations[0].trex
    assert (trex.sync_port, trex.async_port, trex.ports) == (4501, 4500, {0: "p0", 1: "p1", 2: "p2"})
    timeouts = lab.stations[0].timeouts
    assert (timeouts.connect, timeouts.command, timeouts.trex) == (10, 60, 30)


def test_speeds_in_g_m_or_integer_mbits_are_bits_per_second(lab_dir):
    lab = load_lab(write_lab(lab_dir, {"stations": [station()]}))
    assert [i.speed_bps for i in lab.stations[0].dut.interfaces] == [10_000_000_000, 10_000_000_000, 2_500_000_000]
    interface = labfile.Interface(port="p0", name="eth0", speed="100M")
    assert interface.speed_bps == 100_000_000


def test_agent_alone_authenticates_without_a_key(lab_dir):
    def agent_only(s):
        del s["dut"]["key"]
        s["dut"]["agent"] = True
    dut = load_lab(write_lab(lab_dir, changed(agent_only))).stations[0].dut
    assert (dut.key, dut.agent) == (None, True)


# ---------------------------------------------- every error names file and field

def test_interfaces_must_name_each_port_once(lab_dir):
    def two_ports(s):
        s["dut"]["interfaces"].pop()
    assert error_of(lab_dir, changed(two_ports)) == (
        f"{lab_dir / 'lab.yaml'}: stations[0].dut.interfaces: must name p0, p1, p2 exactly once (got p0, p1)")


def test_a_port_given_twice_is_refused(lab_dir):
    def p1_twice(s):
        s["dut"]["interfaces"][2]["port"] = "p1"
    assert "stations[0].dut.interfaces: must name p0, p1, p2 exactly once (got p0, p1, p1)" in error_of(
        lab_dir, changed(p1_twice))


def test_one_dut_interface_cannot_be_two_ports(lab_dir):
    def same_name(s):
        s["dut"]["interfaces"][1]["name"] = "enp3s0f0"
    assert "stations[0].dut.interfaces: each DUT interface can be one port only (enp3s0f0 is given twice)" in error_of(
        lab_dir, changed(same_name))


def test_a_port_outside_p0_p2_is_refused_naming_the_choices(lab_dir):
    def p3(s):
        s["dut"]["interfaces"][2]["port"] = "p3"
    assert "stations[0].dut.interfaces[2].port: Input should be 'p0', 'p1' or 'p2'" in error_of(lab_dir, changed(p3))


def test_allow_must_include_every_lab_interface(lab_dir):
    def not_allowed(s):
        s["dut"]["allow"].remove("enp3s0f2")
    assert error_of(lab_dir, changed(not_allowed)) == (
        f"{lab_dir / 'lab.yaml'}: stations[0].dut.allow: must include every interfaces[].name (missing enp3s0f2)")


def test_a_management_interface_may_not_be_allowed(lab_dir):
    def eno1_allowed(s):
        s["dut"]["allow"].append("eno1")
    assert error_of(lab_dir, changed(eno1_allowed)) == (
        f"{lab_dir / 'lab.yaml'}: stations[0].dut.allow: must not include a management interface (eno1)")


def test_trex_ports_map_each_dut_port_once(lab_dir):
    def p1_twice(s):
        s["trex"]["ports"] = {0: "p0", 1: "p1", 3: "p1"}
    assert error_of(lab_dir, changed(p1_twice)) == (
        f"{lab_dir / 'lab.yaml'}: stations[0].trex.ports: must map each DUT port p0, p1, p2 exactly once "
        "(got p0, p1, p1)")


def test_a_trex_port_that_is_no_number_names_the_key(lab_dir):
    def named_port(s):
        s["trex"]["ports"] = {0: "p0", 1: "p1", "two": "p2"}
    assert "stations[0].trex.ports[two] (the key): Input should be a valid integer" in error_of(
        lab_dir, changed(named_port))


def test_station_names_are_unique(lab_dir):
    data = {"stations": [station(), station(host="192.0.2.11")]}
    assert error_of(lab_dir, data) == (
        f"{lab_dir / 'lab.yaml'}: stations: station names must be unique (rack1 is given twice)")


def test_a_lab_needs_a_station(lab_dir):
    assert "stations: List should have at least 1 item" in error_of(lab_dir, {"stations": []})


def test_a_missing_field_is_named(lab_dir):
    def no_host(s):
        del s["dut"]["host"]
    assert error_of(lab_dir, changed(no_host)) == f"{lab_dir / 'lab.yaml'}: stations[0].dut.host: required field missing"


def test_an_unknown_field_is_named_with_the_known_ones(lab_dir):
    def typo(s):
        s["dut"]["hots"] = s["dut"].pop("host")
    message = error_of(lab_dir, changed(typo))
    assert f"{lab_dir / 'lab.yaml'}: stations[0].dut.hots: unknown field (known: host, port, user, key, agent, " in message
    assert f"{lab_dir / 'lab.yaml'}: stations[0].dut.host: required field missing" in message


def test_an_unknown_top_level_field_lists_the_lab_fields(lab_dir):
    data = {"stations": [station()], "path": "/elsewhere"}
    assert error_of(lab_dir, data) == f"{lab_dir / 'lab.yaml'}: path: unknown field (known: stations)"


def test_every_problem_is_reported_one_per_line(lab_dir):
    def two_problems(s):
        s["dut"]["port"] = 0
        s["timeouts"] = {"command": -1}
    assert error_of(lab_dir, changed(two_problems)).splitlines() == [
        f"{lab_dir / 'lab.yaml'}: stations[0].dut.port: Input should be greater than or equal to 1",
        f"{lab_dir / 'lab.yaml'}: stations[0].timeouts.command: Input should be greater than 0",
    ]


def test_a_key_file_that_does_not_exist_is_named(lab_dir):
    def gone(s):
        s["dut"]["key"] = "keys/missing"
    assert error_of(lab_dir, changed(gone)) == (
        f"{lab_dir / 'lab.yaml'}: stations[0].dut.key: no such file {lab_dir / 'keys' / 'missing'}")


def test_a_known_hosts_file_that_does_not_exist_is_named(lab_dir):
    (lab_dir / "keys" / "known_hosts").unlink()
    assert error_of(lab_dir, {"stations": [station()]}) == (
        f"{lab_dir / 'lab.yaml'}: stations[0].dut.known_hosts: no such file {lab_dir / 'keys' / 'known_hosts'}")


def test_neither_key_nor_agent_is_refused(lab_dir):
    def no_key(s):
        del s["dut"]["key"]
    assert error_of(lab_dir, changed(no_key)) == (
        f"{lab_dir / 'lab.yaml'}: stations[0].dut: give `key` (a private key file) or `agent: true`")


@pytest.mark.parametrize("speed", ["10 G", "10g", "fast", 0, True])
def test_a_speed_that_is_no_rate_is_refused(lab_dir, speed):
    def bad_speed(s):
        s["dut"]["interfaces"][0]["speed"] = speed
    assert f"{lab_dir / 'lab.yaml'}: stations[0].dut.interfaces[0].speed" in error_of(lab_dir, changed(bad_speed))


def test_become_is_root_or_sudo(lab_dir):
    def doas(s):
        s["dut"]["become"] = "doas"
    assert "stations[0].dut.become: Input should be 'root' or 'sudo'" in error_of(lab_dir, changed(doas))


def test_a_yaml_syntax_error_names_line_and_column(lab_dir):
    text = "stations:\n  - name: rack1\n    dut: [unclosed\n"
    message = error_of(lab_dir, text)
    assert message.startswith(f"{lab_dir / 'lab.yaml'}:4:1: not valid YAML: ")


def test_a_key_given_twice_is_refused_not_overwritten(lab_dir):
    text = "stations: []\nstations: []\n"
    assert error_of(lab_dir, text) == f"{lab_dir / 'lab.yaml'}:2:1: not valid YAML: key 'stations' is given twice"


def test_a_file_that_is_not_a_mapping_is_refused(lab_dir):
    assert error_of(lab_dir, "- rack1\n") == (
        f"{lab_dir / 'lab.yaml'}: must be a mapping with `stations:` at the top (got list)")


def test_a_missing_lab_file_is_named(tmp_path):
    with pytest.raises(LabFileError, match=f"^{tmp_path / 'nowhere.yaml'}: no such lab file$"):
        load_lab(tmp_path / "nowhere.yaml")


# --------------------------------------------------------------- schema and CLI

def test_the_schema_forbids_unknown_fields_everywhere_and_hides_path():
    schema = json_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"stations"}
    assert {name: model["additionalProperties"] for name, model in schema["$defs"].items()} == {
        "Dut": False, "Interface": False, "Station": False, "Timeouts": False, "Trex": False}
    assert schema["$defs"]["Interface"]["properties"]["port"]["enum"] == ["p0", "p1", "p2"]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "harness.labfile", *args], cwd=REPO,
                          capture_output=True, text=True, check=False)


def test_schema_command_prints_the_json_schema():
    result = run_cli("schema")
    assert result.returncode == 0
    assert json.loads(result.stdout) == json_schema()


def test_check_command_summarizes_a_valid_lab(lab_dir):
    result = run_cli("check", str(write_lab(lab_dir, {"stations": [station()]})))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:5] == [
        f"{lab_dir / 'lab.yaml'}: 1 station(s)",
        "  gw0: rack1",
        f"    DUT  pj@192.0.2.10:22 (become sudo; key {lab_dir / 'keys' / 'id_ed25519'}; "
        f"known_hosts {lab_dir / 'keys' / 'known_hosts'})",
        "         p0 = enp3s0f0 (10 Gbit/s)",
        "         p1 = enp3s0f1 (10 Gbit/s)",
    ]
    assert "    TRex 192.0.2.20:4501/4500: port 0 -> p0, port 1 -> p1, port 2 -> p2" in result.stdout


def test_check_command_fails_with_the_error(lab_dir):
    result = run_cli("check", str(write_lab(lab_dir, {"stations": []})))
    assert result.returncode == 1
    assert result.stderr == f"{lab_dir / 'lab.yaml'}: stations: List should have at least 1 item after validation, not 0\n"


# --------------------------------------------------------------- claiming stations

@pytest.fixture
def two_stations(lab_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(labfile, "LOCK_DIR", tmp_path)
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    return load_lab(write_lab(lab_dir, {"stations": [station("rack1", "192.0.2.10"), station("rack2", "192.0.2.11")]}))


def test_worker_gwk_takes_station_k_and_no_xdist_the_first(two_stations):
    for worker, expected in ((None, "rack1"), ("gw0", "rack1"), ("gw1", "rack2")):
        with claim_station(two_stations, worker) as claim:
            assert claim.station.name == expected


def test_a_worker_id_must_be_xdists():
    with pytest.raises(ValueError, match="not a pytest-xdist worker id: 'master'"):
        station_index("master")


def test_more_workers_than_stations_is_refused_naming_both(two_stations, monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "4")
    with pytest.raises(LabFileError) as excinfo:
        claim_station(two_stations, "gw2")
    assert str(excinfo.value) == (f"{two_stations.path}: -n 4 needs 4 stations, the lab has 2 (rack1, rack2); "
                                  "worker gw2 has none")


def test_a_worker_started_in_place_of_a_dead_one_takes_the_station_it_left_free(two_stations, monkeypatch):
    """xdist numbers a replacement worker on (gw2 for -n 2): no station is its by number."""
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    with claim_station(two_stations, "gw0"):
        with claim_station(two_stations, "gw2") as claim:
            assert claim.station.name == "rack2"
            with pytest.raises(LabFileError, match=r"worker gw3, started in place of one that died, finds every "
                                                   rf"station in use \(rack1 by pid {os.getpid()}; rack2 by pid "):
                claim_station(two_stations, "gw3")


def test_a_station_held_in_this_process_is_refused_until_released(two_stations):
    claim = claim_station(two_stations, "gw1")
    with pytest.raises(LabFileError, match=f"station rack2 \\(192.0.2.11:22\\) is in use by pid {os.getpid()} "):
        claim_station(two_stations, "gw1")
    with claim_station(two_stations, "gw0"):  # the other station is free
        pass
    claim.release()
    claim.release()
    claim_station(two_stations, "gw1").release()


def test_stations_reached_from_different_namespaces_are_different_locks(lab_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(labfile, "LOCK_DIR", tmp_path)
    first, second = station("a"), station("b")
    first["dut"]["via_netns"], second["dut"]["via_netns"] = "pjlab1x0-ctl", "pjlab2x0-ctl"
    lab = load_lab(write_lab(lab_dir, {"stations": [first, second]}))
    assert labfile.lock_path(lab.stations[0]) != labfile.lock_path(lab.stations[1])


def test_locks_fall_back_to_the_temporary_directory(two_stations, monkeypatch, tmp_path):
    monkeypatch.setattr(labfile, "LOCK_DIR", tmp_path / "no-such-dir")
    monkeypatch.setattr(labfile.tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    assert labfile.lock_path(two_stations.stations[0]).parent == tmp_path / "tmp"


HOLDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from harness import labfile
    labfile.LOCK_DIR = Path(sys.argv[2])
    claim = labfile.claim_station(labfile.load_lab(sys.argv[1]), "gw0")
    print("claimed", flush=True)
    sys.stdin.readline()
""")


def test_a_second_process_cannot_claim_a_held_station_and_is_told_the_holders_pid(two_stations, tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(two_stations.path), str(tmp_path)], cwd=REPO,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "claimed\n"
        with pytest.raises(LabFileError) as excinfo:
            claim_station(two_stations, "gw0")
        assert f"station rack1 (192.0.2.10:22) is in use by pid {holder.pid} " in str(excinfo.value)
    finally:
        holder.communicate("\n", timeout=30)
    assert holder.returncode == 0
    with claim_station(two_stations, "gw0") as claim:  # the holder exited: free again
        assert claim.station.name == "rack1"


def test_a_lab_file_is_immutable(two_stations):
    with pytest.raises(ValidationError, match="frozen"):
        two_stations.stations[0].dut.host = "192.0.2.99"
