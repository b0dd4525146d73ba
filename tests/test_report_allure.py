"""What a result carries into the Allure report (harness/report/allure.py), each target's
environment beside the results, and the single-file report's offline fix."""
from __future__ import annotations

import json
import re
import subprocess
from types import SimpleNamespace

import pytest

from harness.report.allure import OTHER_SUITES, REPOSITORY, SUITE_AREAS, ReportError, generate, offline
from harness.report.environment import environment
from harness.report.summary import environment_info
from harness.target import CommandError

pytest_plugins = ["pytester"]

# Allure 3.18's Awesome index.html around its analytics, as the template writes it
ANALYTICS = """    <script async src="https://www.googletagmanager.com/gtag/js?id=G-LNDJ3J7WT0"></script>
    <script>
        window.dataLayer = window.dataLayer || [];
        function gtag(){dataLayer.push(arguments);}
        gtag('js', new Date());
        gtag('config', 'G-LNDJ3J7WT0', {
          "report": "awesome",
          "single_file": "true"
        });
    </script>
"""
PAGE = """<html><head><link rel="icon" href="data:image/svg+xml,%3Csvg%3E"></head><body><div id="app"></div>
    <script src="data:text/javascript;base64,Ly8gYXBw"></script>
{analytics}    <script async>window.allureReportData = {{}}</script>
</body></html>"""


def test_every_suite_file_has_an_area():
    suites = sorted(str(path.relative_to(REPOSITORY)) for path in (REPOSITORY / "suites").glob("test_*.py"))
    assert [suite for suite in suites if suite not in SUITE_AREAS] == []
    assert sorted(SUITE_AREAS) == suites  # and no area names a file that is gone


def test_no_unit_test_file_shares_a_suite_files_name():
    """`pytest tests suites` imports both directories' files by basename (rootdir
    conftest, no packages): two files of one name make the second fail to collect."""
    unit_tests = {path.name for path in (REPOSITORY / "tests").glob("test_*.py")}
    assert sorted(path.name for path in (REPOSITORY / "suites").glob("test_*.py") if path.name in unit_tests) == []


def test_a_result_carries_target_area_severity_and_case(pytester, allure_run):
    suites = pytester.mkpydir("suites")
    (suites / "test_nat.py").write_text("import pytest\n\n"
                                        "@pytest.mark.parametrize('hook', ['prerouting', 'output'])\n"
                                        "def test_dnat_rewrites(target, hook):\n    pass\n")
    (suites / "test_mine.py").write_text("def test_something_new(target):\n    pass\n")
    allure_run("--target=mock").assert_outcomes(passed=3)
    labels = {}
    for path in (pytester.path / "results").glob("*-result.json"):
        written = json.loads(path.read_text())
        shown = {label["name"]: label["value"] for label in written["labels"]
                 if label["name"] not in ("host", "thread", "framework", "language", "parentSuite", "suite",
                                          "subSuite", "package")}
        labels[shown["case"]] = shown
    assert labels == {
        f"suites/test_nat.py::test_dnat_rewrites[{hook}]": {
            "target": "mock", "tag": "target:mock", "case": f"suites/test_nat.py::test_dnat_rewrites[{hook}]",
            "ALLURE_ID": f"suites/test_nat.py::test_dnat_rewrites[{hook}]", "epic": "NAT",
            "feature": "NAT placement and un-NAT of replies", "story": "dnat rewrites", "severity": "critical"}
        for hook in ("prerouting", "output")
    } | {
        "suites/test_mine.py::test_something_new": {
            "target": "mock", "tag": "target:mock", "case": "suites/test_mine.py::test_something_new",
            "ALLURE_ID": "suites/test_mine.py::test_something_new", "epic": OTHER_SUITES, "feature": "test_mine",
            "story": "something new", "severity": "normal"}}


def test_the_mock_run_writes_its_environment_beside_the_results(pytester, allure_run):
    pytester.makepyfile("def test_case(target):\n    pass\n")
    allure_run("--target=mock").assert_outcomes(passed=1)
    written = environment_info(pytester.path / "results")
    commit = subprocess.run(["git", "-C", str(REPOSITORY), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    assert list(written) == ["mock"]
    assert list(written["mock"]) == ["target", "kernel", "clang", "python", "commit"]
    assert written["mock"]["target"] == "mock"
    assert written["mock"]["kernel"] == "mock model of Linux 6.18 (harness/mockkernel)"
    assert written["mock"]["commit"].startswith(commit)


def test_the_netns_lab_environment_is_this_host_s_kernel_and_tools(pytester, allure_run):
    pytester.makepyfile("def test_case(target):\n    pass\n")
    outcome = allure_run("--target=dut")
    if outcome.parseoutcomes().get("skipped"):
        pytest.skip("the netns lab is unavailable here (it needs root)")
    written = environment_info(pytester.path / "results")["netns"]
    uname = subprocess.run(["uname", "-r"], capture_output=True, text=True, check=True).stdout.strip()
    assert list(written) == ["target", "kernel", "nft", "iproute2", "bpftool", "bpftrace", "clang", "python", "commit"]
    assert written["kernel"] == uname
    assert written["nft"].startswith("nftables v")
    assert written["iproute2"].startswith("ip utility, iproute2-")


def test_offline_removes_google_analytics_and_keeps_the_rest():
    page = PAGE.format(analytics=ANALYTICS)
    assert offline(page) == PAGE.format(analytics="")


def test_offline_refuses_a_page_that_would_load_anything_else_from_the_network():
    page = PAGE.format(analytics='    <link rel="stylesheet" href="https://fonts.example.org/inter.css">\n')
    with pytest.raises(ReportError, match=r"would load https://fonts\.example\.org/inter\.css from the network"):
        offline(page)


def test_the_quality_gate_accepts_exactly_the_summary_s_skip_and_xfail_disagreements():
    from harness.report.summary import Disagreement
    accepted = re.search(r"const ACCEPTED_DISAGREEMENTS = (\[.*\]);", (REPOSITORY / "allurerc.mjs").read_text())
    assert json.loads(accepted.group(1)) == [Disagreement.SKIPPED_ON_SOME, Disagreement.KNOWN_DIVERGENCE]


def test_a_lab_dut_s_environment_is_read_on_the_dut_and_names_its_station_and_trex():
    class Host:  # the station's SSH host: what each version command prints on the DUT
        outputs = {"nft": "nftables v1.0.9 (Old Doc Yak #3)\n", "ip": "ip utility, iproute2-6.8.0, libbpf 1.3.0\n",
                   "bpftool": "bpftool v7.4.0\nusing libbpf v1.4\n"}

        def run(self, argv):
            if argv[0] not in self.outputs:
                raise CommandError(argv, "bash: bpftrace: command not found", 127)
            return self.outputs[argv[0]]

    station = SimpleNamespace(name="st1", host=Host(), identity={
        "dut": {"kernel": "6.8.0-45-generic", "distribution": "Ubuntu 24.04.1 LTS"},
        "trex": {"version": {"version": "v3.04", "build_date": "", "mode": "STL"}}})
    info = environment("lab", SimpleNamespace(station=station))
    assert {key: info[key] for key in list(info)[:9]} == {
        "target": "lab", "station": "st1", "kernel": "6.8.0-45-generic", "distribution": "Ubuntu 24.04.1 LTS",
        "nft": "nftables v1.0.9 (Old Doc Yak #3)", "iproute2": "ip utility, iproute2-6.8.0, libbpf 1.3.0",
        "bpftool": "bpftool v7.4.0", "bpftrace": "`bpftrace --version` failed: bash: bpftrace: command not found",
        "trex": "v3.04, mode STL"}
    assert list(info)[9:] == ["clang", "python", "commit"]


def test_a_report_without_results_says_where_they_should_be(tmp_path):
    with pytest.raises(ReportError, match=r"allure-results: no Allure results; run pytest with --alluredir="):
        generate(tmp_path)


def test_an_inner_run_without_alluredir_labels_nothing_of_the_outer_test(pytester, allure_run):
    # allure-commons' hooks are process-global: an in-process inner run must not label the outer test
    pytester.makepyfile(test_outer="""
        pytest_plugins = ["pytester"]

        def test_outer(pytester):
            pytester.makepyfile(test_inner="def test_inner(target):\\n    pass\\n")
            pytester.runpytest("--target=mock", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    """)
    allure_run("--target=mock").assert_outcomes(passed=1)
    [result] = [json.loads(path.read_text()) for path in (pytester.path / "results").glob("*-result.json")]
    assert result["name"] == "test_outer"
    assert [label for label in result["labels"] if label["name"] in ("target", "case", "epic")] == []
    assert result.get("parameters", []) == []
