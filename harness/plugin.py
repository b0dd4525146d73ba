"""pytest plugin: `--target`, `--lab`, `--cost-profile`, the `target` and
`bpf_objects` fixtures, `requires`, reporting.

Every test that uses `target` gets a fresh DUT (a new mock kernel, or new network
namespaces) and has it closed afterwards, pass, fail or Ctrl-C. Results carry the
target as an Allure parameter and label, so one test's mock and dut results stay
distinct; each test attaches its packets' journeys (a diagram and the text) and a
pcap of its frames.
"""
from __future__ import annotations

import os
import tempfile
from collections import Counter

import pytest

from harness import bpf_build
from harness.journey import Journey, render_all
from harness.journey_diagram import journeys_svg
from harness.mockkernel.linerate.cost import CostModel, CostProfileError
from harness.target import Target, TargetError, TargetUnavailable

TARGET_KEY = pytest.StashKey[Target]()
SKIPS_KEY = pytest.StashKey[Counter]()
COST_KEY = pytest.StashKey[CostModel]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("packet-journey")
    group.addoption("--target", choices=("mock", "dut"), default="mock",
                    help="mock: the pure-Python kernel model (default); dut: a real Linux "
                         "kernel (the embedded netns lab unless --lab is given)")
    group.addoption("--lab", metavar="PATH", default=None,
                    help="lab file describing a remote DUT and its TRex generator")
    group.addoption("--cost-profile", metavar="PATH", default=None,
                    help="the mock's per-stage CPU costs for line-rate runs, a JSON profile written by "
                         "`python -m harness.mockkernel.linerate.calibrate` (default: calibrated to the "
                         "XDP paper's single-core figures)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requires(*capabilities): skip unless the target has them all")
    config.stash[SKIPS_KEY] = Counter()
    config.pluginmanager.register(SkipCounter(config.stash[SKIPS_KEY]), "packet-journey-skips")
    if config.getoption("--lab"):
        raise pytest.UsageError(
            f"--lab={config.getoption('--lab')}: driving a lab DUT with a TRex generator is not "
            "built yet; run without --lab to use the embedded netns lab")
    profile = config.getoption("--cost-profile")
    try:
        config.stash[COST_KEY] = CostModel.load(profile) if profile else CostModel.default()
    except CostProfileError as err:
        raise pytest.UsageError(f"--cost-profile: {err}") from None


def make_target(config: pytest.Config) -> Target:
    if config.getoption("--target") == "mock":
        from harness.mockkernel.target import MockTarget
        return MockTarget(cost=config.stash[COST_KEY])
    from harness.drivers.dut import NetnsTarget
    return NetnsTarget()


@pytest.fixture
def target(request: pytest.FixtureRequest):
    """A fresh DUT for this test, with ports p0..p2 wired to tester ports."""
    name = request.config.getoption("--target")
    _allure_target(name, request.node)
    needed = [cap for mark in request.node.iter_markers("requires") for cap in mark.args]
    try:
        dut = make_target(request.config)
    except TargetUnavailable as exc:
        pytest.skip(f"target {name} unavailable: {exc}")
    request.node.stash[TARGET_KEY] = dut
    try:
        missing = [cap for cap in needed if cap not in dut.capabilities]
        if missing:
            pytest.skip(f"target {name} lacks capability: {', '.join(missing)}")
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


class _Unquoted:
    """An Allure parameter value shown as plain text (allure-commons' represent() quotes a str)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _allure_target(name: str, node: pytest.Item) -> None:
    try:
        import allure
    except ImportError:
        return
    allure.dynamic.parameter("target", _Unquoted(name))
    allure.dynamic.label("target", name)
    allure.dynamic.tag(f"target:{name}")
    for param, value in getattr(getattr(node, "callspec", None), "params", {}).items():
        shown = _parameter_text(value)
        if shown is not None:
            allure.dynamic.parameter(param, _Unquoted(shown))


def _parameter_text(value: object) -> str | None:
    """What to show for a parameter allure-commons' represent() would show badly:
    any bytes as "<class 'bytes'>" (cases differing only in bytes would read as
    one test's retries), a function with its address (new in every run)."""
    if isinstance(value, (bytes, bytearray)):
        return value.hex(" ") or "(empty)"
    if callable(value) and hasattr(value, "__name__"):
        return value.__name__
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    dut = item.stash.get(TARGET_KEY, None)
    if dut is None or report.when != "call":
        return
    try:
        recorded = dut.journeys()
    except TargetError as exc:  # reporting must not abort the run
        recorded, journeys = [], f"(journeys unavailable: {exc})"
    else:
        journeys = render_all(recorded)
    if report.failed and journeys:
        report.sections.append((f"journeys on {dut.name}", journeys))
    _allure_attach(dut, journeys, recorded)


def _allure_attach(dut: Target, journeys: str, recorded: list[Journey]) -> None:
    try:
        import allure
    except ImportError:
        return
    if recorded:
        allure.attach(journeys_svg(recorded), name=f"journeys ({dut.name})",
                      attachment_type=allure.attachment_type.SVG)
    if journeys:
        allure.attach(journeys, name=f"journeys ({dut.name}).txt", attachment_type=allure.attachment_type.TEXT)
    if dut.frame_log:
        allure.attach(_pcap(dut.frame_log), name=f"frames ({dut.name}).pcap",
                      attachment_type=allure.attachment_type.PCAP)


def _pcap(frame_log: list[tuple[str, str, bytes]]) -> bytes:
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap
    packets = []
    for direction, port, frame in frame_log:
        packet = Ether(frame)
        packet.comment = f"{direction} {port}".encode()
        packets.append(packet)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "frames.pcap")
        wrpcap(path, packets)
        with open(path, "rb") as f:
            return f.read()


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
    terminalreporter.section(f"skips on --target={config.getoption('--target')}, by reason")
    for reason, count in skips.most_common():
        terminalreporter.write_line(f"{count:4d}  {reason}")
