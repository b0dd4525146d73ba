"""The lab file: which DUTs and TRex generators `--lab=LAB.yaml` may drive.

A lab names one or more stations; a station is a DUT reached over SSH (which of its
interfaces are p0..p2, which ones the harness may change, which are management) and
the TRex server cabled to it. The schema is the pydantic models below (`python -m
harness.labfile schema` prints it as JSON Schema; docs/lab-file.md explains it).
Every problem, from a YAML syntax error to a TRex port mapped twice, is a
LabFileError naming the file and the field: `lab.yaml: stations[0].dut.host: ...`.

Each pytest-xdist worker claims its own station (`claim_station`): worker gwK takes
stations[K] and holds an exclusive flock on it for the session, so two runs (or two
workers) never drive one DUT at once. A worker xdist starts in place of one that
died is numbered on (gwN, N the number of workers or more): it takes the station
the dead one left free.
"""
from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from harness.target import PORTS

PORT_NAMES = tuple(port.name for port in PORTS)
PortName = Literal[PORT_NAMES]  # type: ignore[valid-type]  # p0..p2, from harness.target

LOCK_DIR = Path("/run/lock")
_SPEED = re.compile(r"^(\d+(?:\.\d+)?)([MGT])$")
_SPEED_UNITS = {"M": 10**6, "G": 10**9, "T": 10**12}
_MBIT = 10**6
# A holder writes its pid right after taking the lock; a claimant that finds the
# lock taken waits this long for the pid to name it.
_HOLDER_PID_WAIT = 1.0


class LabFileError(Exception):
    """A lab file that cannot be used, or a station that cannot be claimed; the
    message names the file and the field (one line per problem)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _resolve_file(value: Path, info: ValidationInfo) -> Path:
    """`value` relative to the lab file's directory; it must be an existing file."""
    base = (info.context or {}).get("base", Path.cwd())
    path = value.expanduser()
    if not path.is_absolute():
        path = base / path
    if not path.is_file():
        raise ValueError(f"no such file {path}")
    return path


class Interface(_Model):
    """One DUT interface used as a harness port."""

    port: PortName = Field(description="the harness port it is: p0, p1 or p2")
    name: StrictStr = Field(min_length=1, description="its name on the DUT (enp3s0f0)")
    speed: StrictStr | StrictInt = Field(
        description='line rate: "10G", "25G", "100M", "2.5G", or an integer in Mbit/s (10000)')

    @field_validator("speed")
    @classmethod
    def _speed_is_a_rate(cls, value: str | int) -> str | int:
        if isinstance(value, int):
            if value <= 0:
                raise ValueError(f"must be a positive number of Mbit/s (got {value})")
        elif not _SPEED.match(value):
            raise ValueError(f'must be a number with M, G or T ("10G", "2.5G"), or Mbit/s as an integer (got "{value}")')
        return value

    @property
    def speed_bps(self) -> int:
        if isinstance(self.speed, int):
            return self.speed * _MBIT
        number, unit = _SPEED.match(self.speed).groups()
        return round(float(number) * _SPEED_UNITS[unit])


class Dut(_Model):
    """The DUT: how to reach it over SSH and what the harness may touch on it."""

    host: StrictStr = Field(min_length=1, description="address or name of its SSH server")
    port: int = Field(22, ge=1, le=65535, description="SSH port")
    user: StrictStr = Field(min_length=1, description="SSH user")
    key: Path | None = Field(None, description="private key file (relative to the lab file)")
    agent: bool = Field(False, description="authenticate with the keys of the running ssh-agent")
    known_hosts: Path = Field(description="known_hosts file holding the DUT's host key; it is always checked")
    become: Literal["root", "sudo"] = Field(
        "root", description='"root": the user is root; "sudo": commands run through `sudo -n`')
    python: StrictStr = Field("python3", min_length=1, description="Python 3.11+ on the DUT, runs the harness agent")
    interfaces: list[Interface] = Field(description="the DUT interfaces cabled to TRex: p0, p1 and p2, once each")
    management: list[StrictStr] = Field(
        [], description="management interfaces: never changed; a command touching one is refused naming it")
    allow: list[StrictStr] = Field(
        description="interfaces the harness may change; must include every interfaces[].name")
    via_netns: StrictStr | None = Field(
        None, description="reach the DUT from inside this local network namespace (the stand-in lab)")
    isolation: Literal["netns", "none"] = Field(
        "netns", description='"netns": each test runs in a fresh network namespace on the DUT holding its '
                             'ports, as the embedded lab gives each test a new DUT; "none": in the DUT\'s own '
                             "namespace, next to its management interface, put back by snapshot and restore")

    @field_validator("key", "known_hosts")
    @classmethod
    def _files_exist(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else _resolve_file(value, info)

    @field_validator("interfaces")
    @classmethod
    def _every_port_once(cls, interfaces: list[Interface]) -> list[Interface]:
        ports = sorted(interface.port for interface in interfaces)
        if ports != sorted(PORT_NAMES):
            raise ValueError(f"must name {', '.join(PORT_NAMES)} exactly once (got {', '.join(ports) or 'none'})")
        names = [interface.name for interface in interfaces]
        if twice := sorted({name for name in names if names.count(name) > 1}):
            raise ValueError(f"each DUT interface can be one port only ({', '.join(twice)} is given twice)")
        return interfaces

    @field_validator("allow")
    @classmethod
    def _allow_covers_ports_not_management(cls, allow: list[str], info: ValidationInfo) -> list[str]:
        # fields validate in the order written: info.data holds interfaces and management if valid
        interfaces = info.data.get("interfaces", [])
        if missing := [i.name for i in interfaces if i.name not in allow]:
            raise ValueError(f"must include every interfaces[].name (missing {', '.join(missing)})")
        if management := [name for name in info.data.get("management", []) if name in allow]:
            raise ValueError(f"must not include a management interface ({', '.join(management)})")
        return allow

    @model_validator(mode="after")
    def _has_a_way_to_authenticate(self) -> Dut:
        if self.key is None and not self.agent:
            raise ValueError("give `key` (a private key file) or `agent: true`")
        return self


class Trex(_Model):
    """The TRex server cabled to the DUT."""

    host: StrictStr = Field(min_length=1, description="address of the TRex server")
    sync_port: int = Field(4501, ge=1, le=65535, description="its JSON-RPC (ZMQ REQ) port")
    async_port: int = Field(4500, ge=1, le=65535, description="its event (ZMQ SUB) port")
    ports: dict[Annotated[int, Field(ge=0)], PortName] = Field(
        description="TRex port -> the DUT port it is cabled to; each of p0, p1, p2 exactly once")
    via_netns: StrictStr | None = Field(
        None, description="run the TRex client inside this local network namespace (the stand-in lab)")

    @field_validator("ports")
    @classmethod
    def _every_port_once(cls, ports: dict[int, str]) -> dict[int, str]:
        dut_ports = sorted(ports.values())
        if dut_ports != sorted(PORT_NAMES):
            raise ValueError(f"must map each DUT port {', '.join(PORT_NAMES)} exactly once "
                             f"(got {', '.join(dut_ports) or 'none'})")
        return ports


class Timeouts(_Model):
    """Seconds to wait before calling the lab broken."""

    connect: float = Field(10, gt=0, description="to connect to the DUT's SSH server")
    command: float = Field(60, gt=0, description="for one command on the DUT")
    trex: float = Field(30, gt=0, description="for one TRex call")


class Station(_Model):
    """One DUT and the TRex server cabled to it; one pytest-xdist worker drives it."""

    name: StrictStr = Field(min_length=1, description="unique within the lab; names the station in reports")
    dut: Dut
    trex: Trex
    timeouts: Timeouts = Timeouts()

    @property
    def lock_key(self) -> str:
        """What identifies the DUT host-wide: its SSH address, and the namespace it is
        reached from (two stand-in labs both have a 10.254.0.2, in different namespaces)."""
        address = f"{self.dut.host}:{self.dut.port}"
        return f"{self.dut.via_netns}/{address}" if self.dut.via_netns else address


class Lab(_Model):
    """A lab file: its stations, in the order xdist workers take them."""

    stations: list[Station] = Field(min_length=1, description="gwK (pytest -n) takes stations[K]")
    _path: Path | None = PrivateAttr(None)

    @field_validator("stations")
    @classmethod
    def _names_unique(cls, stations: list[Station]) -> list[Station]:
        names = [station.name for station in stations]
        if twice := sorted({name for name in names if names.count(name) > 1}):
            raise ValueError(f"station names must be unique ({', '.join(twice)} is given twice)")
        return stations

    @property
    def path(self) -> Path | None:
        """The file the lab was loaded from (None for a Lab built in code)."""
        return self._path


# loading -----------------------------------------------------------------------

class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load, except that a key given twice is an error, not the last one winning."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_lab(path: str | os.PathLike) -> Lab:
    """The lab in the YAML file `path`, validated; LabFileError on any problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise LabFileError(f"{path}: no such lab file") from None
    except OSError as exc:
        raise LabFileError(f"{path}: cannot read it: {exc.strerror}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 -- a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise LabFileError(f"{where}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise LabFileError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise LabFileError(f"{path}: must be a mapping with `stations:` at the top (got {type(data).__name__})")
    try:
        lab = Lab.model_validate(data, context={"base": path.resolve().parent})
    except ValidationError as exc:
        raise LabFileError("\n".join(f"{path}: {problem}" for problem in _problems(exc))) from None
    lab._path = path
    return lab


# the model owning each field, by the name the model is nested under
_NESTED_MODELS = {"stations": Station, "dut": Dut, "trex": Trex, "timeouts": Timeouts, "interfaces": Interface}


def _problems(exc: ValidationError) -> list[str]:
    """One `field.path: what is wrong` line per error pydantic found."""
    problems = []
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        if error["type"] == "extra_forbidden":
            owner = next((_NESTED_MODELS[part] for part in reversed(loc[:-1]) if part in _NESTED_MODELS), Lab)
            message = f"unknown field (known: {', '.join(owner.model_fields)})"
        elif error["type"] == "missing":
            message = "required field missing"
        else:
            message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{_dotted(loc)}: {message}" if loc else message)
    return problems


def _dotted(loc: tuple[str | int, ...]) -> str:
    """('stations', 0, 'dut', 'host') -> 'stations[0].dut.host'."""
    text = ""
    for part, following in zip(loc, (*loc[1:], None)):
        if part == "[key]":
            continue
        if isinstance(part, int) or following == "[key]":  # a list index, or a mapping's key
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text + (" (the key)" if loc[-1] == "[key]" else "")


def json_schema() -> dict[str, Any]:
    """The lab file's JSON Schema (what `python -m harness.labfile schema` prints)."""
    return Lab.model_json_schema()


# claiming a station --------------------------------------------------------------

class StationClaim:
    """Station `station`, held exclusively by this process until release()."""

    def __init__(self, station: Station, lock_path: Path, fd: int) -> None:
        self.station = station
        self.lock_path = lock_path
        self._fd: int | None = fd

    def release(self) -> None:
        """Let another process claim the station; safe twice."""
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None

    def __enter__(self) -> StationClaim:
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"StationClaim({self.station.name}, {self.lock_path})"


def station_index(worker: str | None) -> int:
    """The station a pytest-xdist worker takes: gwK -> K; no xdist (None) -> 0."""
    if worker is None:
        return 0
    match = re.fullmatch(r"gw(\d+)", worker)
    if match is None:
        raise ValueError(f"not a pytest-xdist worker id: {worker!r} (expected gw0, gw1, ...)")
    return int(match.group(1))


def lock_path(station: Station) -> Path:
    """The station's lock file: in /run/lock, else the temporary directory."""
    digest = hashlib.sha1(station.lock_key.encode()).hexdigest()
    directory = LOCK_DIR if os.access(LOCK_DIR, os.W_OK) else Path(tempfile.gettempdir())
    return directory / f"packet-journey-station-{digest}.lock"


def claim_station(lab: Lab, worker: str | None) -> StationClaim:
    """Claim the station of xdist worker `worker` (module doc) for this process.

    LabFileError if the lab has too few stations for the workers (pytest-xdist gives
    their number in PYTEST_XDIST_WORKER_COUNT), or if another process holds it."""
    index = station_index(worker)
    if index >= len(lab.stations):
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", index + 1))
        if workers <= len(lab.stations):  # a worker started in place of one that died
            return _claim_a_free_station(lab, worker)
        names = ", ".join(station.name for station in lab.stations)
        raise LabFileError(f"{lab.path}: -n {workers} needs {workers} stations, the lab has "
                           f"{len(lab.stations)} ({names}); worker {worker} has none")
    station = lab.stations[index]
    claim = _try_claim(lab, station)
    if isinstance(claim, StationClaim):
        return claim
    raise LabFileError(f"{lab.path}: station {station.name} ({station.lock_key}) is in use by {claim} "
                       f"(lock {lock_path(station)}); each station serves one pytest worker at a time")


def _claim_a_free_station(lab: Lab, worker: str | None) -> StationClaim:
    holders = []
    for station in lab.stations:
        claim = _try_claim(lab, station)
        if isinstance(claim, StationClaim):
            return claim
        holders.append(f"{station.name} by {claim}")
    raise LabFileError(f"{lab.path}: worker {worker}, started in place of one that died, finds every station "
                       f"in use ({'; '.join(holders)})")


def _try_claim(lab: Lab, station: Station) -> StationClaim | str:
    """The station claimed, or who holds it ('pid N')."""
    path = lock_path(station)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise LabFileError(f"{lab.path}: station {station.name}: cannot open its lock {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        return holder
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return StationClaim(station, path, fd)


def _holder(fd: int) -> str:
    """'pid N' as the holder recorded it in the lock file."""
    deadline = time.monotonic() + _HOLDER_PID_WAIT
    while True:
        recorded = os.pread(fd, 64, 0).decode(errors="replace").strip()
        if recorded.isdigit():
            return f"pid {recorded}"
        if time.monotonic() > deadline:
            return "another process (it has not recorded its pid)"
        time.sleep(0.02)


# command line ----------------------------------------------------------------------

def summary(lab: Lab) -> str:
    """What the lab file says, one station per paragraph (`check` prints it)."""
    lines = [f"{lab.path}: {len(lab.stations)} station(s)"]
    for index, station in enumerate(lab.stations):
        dut, trex = station.dut, station.trex
        via = f" from netns {dut.via_netns}" if dut.via_netns else ""
        auth = ", ".join(filter(None, [f"key {dut.key}" if dut.key else "", "ssh-agent" if dut.agent else ""]))
        lines.append(f"  gw{index}: {station.name}")
        lines.append(f"    DUT  {dut.user}@{dut.host}:{dut.port}{via} (become {dut.become}; {auth}; "
                     f"known_hosts {dut.known_hosts})")
        for interface in sorted(dut.interfaces, key=lambda i: i.port):
            lines.append(f"         {interface.port} = {interface.name} ({interface.speed_bps / 1e9:g} Gbit/s)")
        lines.append(f"         may change: {', '.join(dut.allow)}; management: {', '.join(dut.management) or 'none'}")
        via = f" from netns {trex.via_netns}" if trex.via_netns else ""
        cabling = ", ".join(f"port {trex_port} -> {dut_port}" for trex_port, dut_port in sorted(trex.ports.items()))
        lines.append(f"    TRex {trex.host}:{trex.sync_port}/{trex.async_port}{via}: {cabling}")
        timeouts = station.timeouts
        lines.append(f"    timeouts: connect {timeouts.connect:g} s, command {timeouts.command:g} s, "
                     f"trex {timeouts.trex:g} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.labfile", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("schema", help="print the lab file's JSON Schema")
    check = commands.add_parser("check", help="validate a lab file and print what it says")
    check.add_argument("lab", type=Path)
    args = parser.parse_args(argv)
    if args.command == "schema":
        print(json.dumps(json_schema(), indent=2))
        return 0
    try:
        lab = load_lab(args.lab)
    except LabFileError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(summary(lab))
    return 0


if __name__ == "__main__":
    sys.exit(main())
