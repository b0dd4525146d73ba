"""The sign-off report as a user opens it: `python -m harness.report.allure` over a few
seeded results of three targets, opened in headless Chromium with the network off. It
shows each target as an environment with its counts and versions, the disagreements
between targets first among the categories, and a test's journey map; the page asks for
nothing outside the file. Screenshots land in reports/screenshots/."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from harness.report.allure import REPOSITORY, generate
from chromium import Chromium, chromium_path

SCREENSHOTS = REPOSITORY / "reports" / "screenshots"
JOURNEY_SVG = """<svg xmlns="http://www.w3.org/2000/svg" width="480" height="120">
<title>journey map</title><g id="legend"><text x="8" y="20">legend: hop, drop</text></g>
<rect x="8" y="40" width="200" height="24" fill="#fce5cd"/><text x="14" y="56">NF_PREROUTING nat DNAT</text>
</svg>"""

pytestmark = [
    pytest.mark.skipif(chromium_path() is None, reason="chromium not found: apt-get install chromium"),
    pytest.mark.skipif(shutil.which("node") is None or not (REPOSITORY / "node_modules" / "allure").is_dir(),
                       reason="Allure Report 3 not installed: apt-get install nodejs; npm install allure@3"),
]


def _result(results: Path, uuid: str, case: str, target: str, status: str, message: str = "",
            trace: str = "", labels: tuple[tuple[str, str], ...] = (), attachments: tuple = ()) -> None:
    """One result as allure-pytest and harness/report/allure.py write it."""
    function = case.split("::")[1].split("[")[0]
    module = case.split("::")[0].removesuffix(".py").replace("/", ".")
    result = {
        "uuid": uuid, "name": function, "fullName": f"{module}#{function}", "status": status,
        "statusDetails": {"message": message, "trace": trace}, "start": 1_700_000_000_000, "stop": 1_700_000_000_250,
        "parameters": [{"name": "target", "value": target}],
        "labels": [{"name": name, "value": value} for name, value in (
            ("target", target), ("tag", f"target:{target}"), ("case", case), ("ALLURE_ID", case),
            ("epic", "NAT"), ("feature", "NAT placement and un-NAT of replies"), ("severity", "critical"),
            *labels)],
        "attachments": [{"name": name, "source": source, "type": kind} for name, source, kind in attachments],
    }
    (results / f"{uuid}-result.json").write_text(json.dumps(result))


def _seed(results: Path) -> str:
    """Three targets: one test passing on each (with a journey map on the mock), one the
    netns lab fails where the mock passes, one skipped as its target was unavailable;
    each target's environment. The id of the result with the journey."""
    results.mkdir(parents=True)
    (results / "journey-attachment.svg").write_text(JOURNEY_SVG)
    dnat = "suites/test_nat.py::test_dnat_in_prerouting_rewrites_the_destination"
    for target in ("mock", "netns", "lab"):
        _result(results, f"dnat-{target}", dnat, target, "passed",
                attachments=(("journeys (mock)", "journey-attachment.svg", "image/svg+xml"),) if target == "mock" else ())
    ttl = "suites/test_nat.py::test_snat_in_postrouting[ttl-1]"
    disagreement = (("disagreement", "fails on some targets"),)
    _result(results, "ttl-mock", ttl, "mock", "passed", labels=disagreement)
    _result(results, "ttl-netns", ttl, "netns", "failed", "ExpectError: expected on p1 (dut): nothing arrived",
            "harness.target.ExpectError: expected on p1 (dut): nothing arrived", labels=disagreement)
    _result(results, "ttl-lab", ttl, "lab", "passed", labels=disagreement)
    _result(results, "snat-lab", "suites/test_nat.py::test_masquerade", "lab", "skipped",
            "Skipped: target lab unavailable: station st1 did not come up")
    for name, info in {"mock": {"target": "mock", "kernel": "mock model of Linux 6.18 (harness/mockkernel)"},
                       "netns": {"target": "netns", "kernel": "6.18.0-test", "nft": "nftables v1.0.6"},
                       "lab-st1": {"target": "lab", "station": "st1", "kernel": "6.1.0-lab"}}.items():
        (results / f"environment-{name}.json").write_text(json.dumps(info))
    return hashlib.md5(b"dnat-mock").hexdigest()  # Allure 3's test result id: md5 of the uuid


def _texts(browser: Chromium, selector: str) -> list[str]:
    return browser.evaluate(f"[...document.querySelectorAll({json.dumps(selector)})].map(e => e.innerText)")


def test_the_report_shows_targets_disagreements_and_a_journey_offline(tmp_path):
    journey_result = _seed(tmp_path / "allure-results")
    gate = generate(tmp_path)
    index = tmp_path / "html" / "index.html"
    assert "googletagmanager" not in index.read_text()
    # one test failed on the netns lab: that target's rule and the disagreement rule fail the gate
    assert {rule.rule: rule.success for rule in gate} == {
        "mock/maxFailures": True, "netns/maxFailures": False, "lab/maxFailures": True,
        "targets/environmentsTested": True, "targets/maxDisagreements": False}

    browser = Chromium(chromium_path())
    try:
        browser.open(index.as_uri())
        environments = browser.wait_for(
            "(b => b.length === 3 && b.map(e => e.innerText))"
            "([...document.querySelectorAll('[data-testid=tree-section-env-button]')])", "one tree section per target")
        assert [environment.split("\n") for environment in environments] == [
            ['Environment: "mock"', "2"], ['Environment: "netns lab"', "2"], ['Environment: "lab DUT"', "3"]]
        assert browser.evaluate("document.querySelector('[data-testid=report-title]').innerText") == \
            "packet-journey sign-off"
        browser.screenshot(SCREENSHOTS / "overview.png")

        browser.evaluate("location.hash = '#/categories'")
        text = browser.wait_for("document.body.innerText.includes('Disagreements between targets') && "
                                "document.body.innerText", "the categories")
        assert text.index("Disagreements between targets") < text.index("Infrastructure")
        assert "disagreement\nfails on some targets" in text
        assert "case\nsuites/test_nat.py::test_snat_in_postrouting[ttl-1]" in text
        browser.screenshot(SCREENSHOTS / "disagreements.png")

        browser.evaluate(f"location.hash = '#/{journey_result}'")
        browser.wait_for("[...document.querySelectorAll('[data-testid=test-result-attachment-header]')]"
                         ".some(e => e.innerText.includes('journeys (mock)'))", "the journey attachment")
        browser.evaluate("[...document.querySelectorAll('[data-testid=test-result-attachment-header]')]"
                         ".find(e => e.innerText.includes('journeys (mock)')).querySelector('button').click()")
        browser.wait_for("[...document.querySelectorAll('img[src^=\"blob:\"]')].some(i => i.naturalWidth === 480)",
                         "the journey map drawn")
        drawn = browser.evaluate("fetch(document.querySelector('img[src^=\"blob:\"]').src).then(r => r.text())")
        assert "<title>journey map</title>" in drawn and 'id="legend"' in drawn
        browser.screenshot(SCREENSHOTS / "journey.png")

        browser.open(index.as_uri())
        browser.wait_for("!!document.querySelector('[data-testid=tree-section-env-button]')", "the environments")
        # the picker opens once the report has loaded its environments: click until it does
        browser.wait_for("!!document.querySelector('[data-testid=environment-picker-item]') || "
                         "void document.querySelector('[data-testid=environment-picker-button]').click()",
                         "the environment list")
        browser.evaluate("[...document.querySelectorAll('[data-testid=environment-picker-item] button')]"
                         ".find(e => e.innerText.trim() === 'netns lab').click()")
        variables = browser.wait_for("document.querySelector('[data-testid=report-variables]')?.innerText",
                                     "the netns lab's variables")
        assert variables.split("\n") == ["Variables", "2", "kernel", "6.18.0-test", "nft", "nftables v1.0.6"]
    finally:
        browser.close()
    assert [url for url in browser.requests if not url.startswith(("file:", "data:", "blob:", "about:"))] == []
