"""pytest plugin: `--target`, `--lab`, `--cost-profile`, `--journey-limit`, the
`target` and `bpf_objects` fixtures (and harness.testing's `hosts` and `router`),
`requires`, `journey_limit`, reporting.

Every test that uses `target` gets a fresh DUT (a new mock kernel, or new network
namespaces) and has it closed afterwards, pass, fail or Ctrl-C. What its Allure result
carries (the target, labels, journeys, a pcap, the target's environment) is
harness/report/allure.py's.
"""
from __future__ import annotations

import re
import sys
from collections import Counter

import pytest

from harness import bpf_build
from harness.journey import render_all
from harness.mockkernel.linerate.cost import CostModel, CostProfileError
from harness.mockkernel.tracer import JOURNEY_LIMIT
from harness.report import allure as allure_report
from harness.report.environment import record_environment
from harness.target import Target, TargetError, TargetUnavailable
from harness.testing.plan import ipv6_on

# the suite-writing kit's fixtures (`hosts`, `router`), for suites in any directory
pytest_plugins = ("harness.testing.fixtures",)

TARGET_KEY = pytest.StashKey[Target]()
LAB_KEY = pytest.StashKey["LabSession"]()
SKIPS_KEY = pytest.StashKey[Counter]()
COST_KEY = pytest.StashKey[CostModel]()
WORKER_START_RETRIES = 2  # starts of all xdist workers again after one died starting


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("packet-journey")
    group.addoption("--target", choices=("mock", "dut"), default="mock",
                    help="mock: the pure-Python kernel model (default); dut: a real Linux "
                         "kernel (the embedded netns lab unless --lab is given)")
    group.addoption("--lab", metavar="PATH", default=None,
                    help="with --target=dut: a lab file naming stations, each a remote Linux DUT reached "
                         "over SSH and its TRex generator (docs/lab-file.md); -n N takes N stations")
    group.addoption("--lab-dry-run", action="store_true", default=False,
                    help="with --lab: connect to nothing and change nothing; print every command each "
                         "test would run on its station's DUT and every stream it would send")
    group.addoption("--cost-profile", metavar="PATH", default=None,
                    help="the mock's per-stage CPU costs for line-rate runs, a JSON profile written by "
                         "`python -m harness.mockkernel.linerate.calibrate` (default: calibrated to the "
                         "XDP paper's single-core figures)")
    group.addoption("--journey-limit", metavar="N", type=int, default=JOURNEY_LIMIT,
                    help="on the mock: the packets of a test whose journeys are kept whole, and the frames "
                         "nobody collected a port keeps; later packets are summarised as paths with counts, "
                         f"later frames dropped and counted (default {JOURNEY_LIMIT}; a test raises its own "
                         "with @pytest.mark.journey_limit(N))")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test built on the IPv6 addressing plan is an IPv6 suite."""
    for item in items:
        if {"hosts6", "router6"} & set(getattr(item, "fixturenames", ())):
            item.add_marker("ipv6")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requires(*capabilities): skip unless the target has them all")
    config.addinivalue_line("markers", "journey_limit(n): keep the journeys of this test's first n packets "
                                       "whole on the mock (overrides --journey-limit)")
    config.addinivalue_line("markers", "ipv6: an IPv6 suite: the DUT gets IPv6 on (harness.testing.ipv6_on(): "
                                       "link-local addresses, no DAD, no router solicitations); needs a target "
                                       "with capability ipv6. Tests using the hosts6/router6 fixtures get it.")
    if hasattr(config, "workerinput"):  # an xdist worker: it goes when its controller goes
        from harness.drivers.reaper import die_with_parent
        die_with_parent()
    config.stash[SKIPS_KEY] = Counter()
    config.pluginmanager.register(SkipCounter(config.stash[SKIPS_KEY]), "packet-journey-skips")
    _configure_lab(config)
    if config.getoption("--lab-dry-run"):
        config.pluginmanager.register(DryRunPrinter(), "packet-journey-lab-dry-run")
    if config.getoption("--journey-limit") < 0:
        raise pytest.UsageError(f"--journey-limit={config.getoption('--journey-limit')}: a number of packets, 0 or more")
    profile = config.getoption("--cost-profile")
    try:
        config.stash[COST_KEY] = CostModel.load(profile) if profile else CostModel.default()
    except CostProfileError as err:
        raise pytest.UsageError(f"--cost-profile: {err}") from None


@pytest.hookimpl(wrapper=True)
def pytest_sessionstart(session: pytest.Session):
    """Under pytest-xdist, a worker that dies while the controller starts it (killed
    before it collected any test) fails xdist's start of every worker with execnet's
    EOFError or OSError, an internal error. The workers are started again instead
    (at most WORKER_START_RETRIES times), the dead one named, and the tests run, as
    xdist replaces a worker that dies later."""
    xdist = session.config.pluginmanager.getplugin("dsession")
    try:
        return (yield)
    except (EOFError, OSError) as exc:
        if xdist is None or getattr(xdist, "nodemanager", None) is None:
            raise
        failure = exc
    reporter = session.config.pluginmanager.getplugin("terminalreporter")
    for _ in range(WORKER_START_RETRIES):
        reporter.write_line(f"[{_worker_that_died(xdist.nodemanager, failure)}] died while starting, before "
                            f"collecting any test ({type(failure).__name__}: {failure}): starting the workers "
                            "again", yellow=True)
        for gateway in xdist.nodemanager.group:  # the workers that did start go down too: no event of the run
            if (worker := getattr(gateway, "node", None)) is not None:
                worker.putevent = _dropped
        xdist.nodemanager.teardown_nodes()
        try:
            return xdist.pytest_sessionstart(session)
        except (EOFError, OSError) as exc:
            failure = exc
    pytest.exit(f"pytest-xdist's workers died while starting {WORKER_START_RETRIES + 1} times, the last "
                f"[{_worker_that_died(xdist.nodemanager, failure)}]: {type(failure).__name__}: {failure}",
                returncode=pytest.ExitCode.INTERNAL_ERROR)


def _dropped(event: tuple) -> None:
    """Where the events of a worker of a failed start go (xdist's WorkerController.putevent)."""


def _worker_that_died(nodemanager, failure: BaseException) -> str:
    """The xdist worker (gwN) whose start failed: the gateway execnet names, else one
    whose process has exited (execnet says only "cannot send (already closed?)"
    when it notices the death before a receive), else the first one it has no
    gateway for."""
    named = re.search(r"Gateway id='([^']+)'", str(failure))
    if named:
        return named[1]
    for gateway in nodemanager.group:
        popen = getattr(getattr(gateway, "_io", None), "popen", None)  # execnet's popen gateways
        if popen is not None and popen.poll() is not None:
            return gateway.id
    started = {gateway.id for gateway in nodemanager.group}
    return next((spec.id for spec in nodemanager.specs if spec.id not in started), "a worker")


def _configure_lab(config: pytest.Config) -> None:
    """Load the lab file and claim this process's station (under xdist each worker
    claims its own; the controller only checks there are enough)."""
    path = config.getoption("--lab")
    if config.getoption("--lab-dry-run") and not path:
        raise pytest.UsageError("--lab-dry-run needs --lab=LAB.yaml")
    if not path:
        return
    if config.getoption("--target") != "dut":
        raise pytest.UsageError(f"--lab={path} drives lab DUTs: use it with --target=dut")
    from harness import labfile
    try:
        lab = labfile.load_lab(path)
        workers = getattr(config.option, "numprocesses", None) or 0
        worker = getattr(config, "workerinput", {}).get("workerid")  # set by xdist in its workers
        if worker is None and workers:  # the xdist controller runs no test
            if workers > len(lab.stations):
                raise labfile.LabFileError(f"{path}: -n {workers} needs {workers} stations, the file names "
                                           f"{len(lab.stations)} (each worker holds a station of its own)")
            return
        if config.getoption("--lab-dry-run"):  # changes nothing: no need to hold the station
            session = LabSession(lab.stations[labfile.station_index(worker)], None, path, dry_run=True)
        else:
            claim = labfile.claim_station(lab, worker)
            session = LabSession(claim.station, claim, path, dry_run=False)
    except labfile.LabFileError as err:
        raise pytest.UsageError(str(err)) from None
    config.stash[LAB_KEY] = session
    config.add_cleanup(config.stash[LAB_KEY].close)


class LabSession:
    """This process's station for the session: connected at the first test that
    needs a target, released at the end. A station that failed to come up fails
    every later test at once with the same cause."""

    def __init__(self, station, claim, lab_file: str, dry_run: bool) -> None:
        self.station_config = station
        self.claim = claim
        self.lab_file = lab_file
        self.dry_run = dry_run
        self._station = None
        self._failure: str | None = None
        self._dry_run_started = False

    def target(self) -> Target:
        from harness.drivers import lab
        if self.dry_run:
            first, self._dry_run_started = not self._dry_run_started, True
            return lab.DryRunTarget(self.station_config, session_start=first)
        if self._failure is not None:
            raise lab.StationBroken(f"station {self.station_config.name} did not come up earlier in this "
                                    f"session: {self._failure}")
        if self._station is None:
            try:
                self._station = lab.Station(self.station_config, self.lab_file)
            except TargetError as exc:
                self._failure = str(exc)
                raise
        return lab.LabTarget(self._station)

    def close(self) -> None:
        try:
            if self._station is not None:
                unrestored = self._station.close()
                if unrestored:
                    from harness.drivers.lab import RestoreFailed
                    print(RestoreFailed(self._station.name, unrestored), file=sys.stderr)
        finally:
            if self.claim is not None:
                self.claim.release()


def make_target(config: pytest.Config, journey_limit: int) -> Target:
    if config.getoption("--target") == "mock":
        from harness.mockkernel.target import MockTarget
        return MockTarget(cost=config.stash[COST_KEY], journey_limit=journey_limit)
    if LAB_KEY in config.stash:
        return config.stash[LAB_KEY].target()
    from harness.drivers.dut import NetnsTarget
    return NetnsTarget()


@pytest.fixture
def target(request: pytest.FixtureRequest):
    """A fresh DUT for this test, with ports p0..p2 wired to tester ports."""
    lab = request.config.stash.get(LAB_KEY, None)
    report_target = allure_report.target_label(request.config)  # mock, netns or lab
    if allure_report.reporting(request.config):
        allure_report.label_result(request.node, report_target, lab.station_config.name if lab is not None else None)
    needed = [cap for mark in request.node.iter_markers("requires") for cap in mark.args]
    ipv6 = request.node.get_closest_marker("ipv6") is not None
    if ipv6:
        needed.append("ipv6")
    limit_mark = request.node.get_closest_marker("journey_limit")
    journey_limit = limit_mark.args[0] if limit_mark else request.config.getoption("--journey-limit")
    try:
        dut = make_target(request.config, journey_limit)
    except TargetUnavailable as exc:
        if lab is not None:  # an unreachable lab is broken infrastructure, never a skip
            raise
        pytest.skip(f"target {report_target} unavailable: {exc}")
    request.node.stash[TARGET_KEY] = dut
    record_environment(request.config, report_target, dut)
    try:
        missing = [cap for cap in needed if cap not in dut.capabilities]
        if missing:
            pytest.skip(f"target {report_target} lacks capability: {', '.join(missing)}")
        if ipv6:
            ipv6_on(dut)
        yield dut
    finally:
        dut.close()


@pytest.fixture(scope="session")
def bpf_objects() -> bpf_build.Objects:
    """The clang-built eBPF objects, by program name (`bpf_objects["xdp_drop_udp"]`) or
    source path, each compiled once. Without clang or the headers the programs include
    the test skips, naming the Debian package; a program that does not compile fails
    the test that asked for it, with clang's output."""
    try:
        return bpf_build.Objects()
    except bpf_build.ToolchainMissing as exc:
        pytest.skip(str(exc))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    dut = item.stash.get(TARGET_KEY, None)
    if dut is None or report.when != "call":
        return
    if getattr(dut, "dry_run", False):
        _dry_run_report(item, report, dut)
        return
    try:
        recorded = dut.journeys()
    except TargetError as exc:  # reporting must not abort the run
        recorded, journeys = [], f"(journeys unavailable: {exc})"
    else:
        journeys = render_all(recorded)
    if report.failed and journeys:
        report.sections.append((f"journeys on {dut.name}", journeys))
    if allure_report.reporting(item.config):
        allure_report.attach_results(allure_report.target_label(item.config), dut, journeys, recorded)


DRY_RUN_SKIP = "lab dry run: nothing ran on the lab (--lab-dry-run)"


def _dry_run_report(item: pytest.Item, report: pytest.TestReport, dut) -> None:
    """A dry-run test is a skip whatever its body did (no frame ever comes back);
    what it would have run travels with the report to the terminal summary."""
    recording = dut.recording()
    if report.failed:
        last_line = report.longreprtext.strip().splitlines()[-1:] or ["?"]
        recording += f"\n  (the test stopped here, as nothing answers a dry run: {last_line[0]})"
    report.outcome = "skipped"
    report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {DRY_RUN_SKIP}")
    report.user_properties.append(("lab_dry_run", f"{item.nodeid} on station {dut.config.name}:\n{recording}"))


class DryRunPrinter:
    """Prints, in the controller, what each test would have run on its station."""

    def __init__(self) -> None:
        self.recordings: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.recordings += [value for key, value in report.user_properties if key == "lab_dry_run"]

    def pytest_terminal_summary(self, terminalreporter) -> None:
        terminalreporter.section("lab dry run: what each test would run (nothing was run)")
        for recording in self.recordings:
            terminalreporter.write_line(recording)


class SkipCounter:
    """Counts skips by reason where the reports arrive: in the controller under xdist."""

    def __init__(self, skips: Counter) -> None:
        self.skips = skips

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and report.when in ("setup", "call"):
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            self.skips[reason.removeprefix("Skipped: ")] += 1


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    skips = config.stash.get(SKIPS_KEY, Counter())
    if not skips:
        return
    lab = f" --lab={config.getoption('--lab')}" if config.getoption("--lab") else ""
    terminalreporter.section(f"skips on --target={config.getoption('--target')}{lab}, by reason")
    for reason, count in skips.most_common():
        terminalreporter.write_line(f"{count:4d}  {reason}")
