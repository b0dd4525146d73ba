"""The sign-off report as a user opens it: a few seeded results of three targets through
`python -m harness.report` (disagreements, the summary) and `python -m harness.report.allure`,
opened in headless Chromium with the network off. It shows each target as an environment
with its counts and versions, the disagreements between targets first among the
categories, the sign-off summary, and a test's journey map; the page asks for nothing
outside the file. Screenshots land in reports/screenshots/."""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from harness.journey import Hop, Journey
from harness.report.__main__ import main as signoff_summary
from harness.report.allure import REPOSITORY, generate
from harness.report.journey_map import journey_map_svg
from chromium import Chromium, chromium_path

SCREENSHOTS = REPOSITORY / "reports" / "screenshots"
DNAT = Journey("02:00:00:00:01:01 > 02:00:00:00:00:01 IPv4 10.0.0.2 > 10.0.0.1 udp id=1 ttl=64 len=28", [
    Hop("NIC_RX", "p0", "DMA"), Hop("NAPI", "p0 poll"), Hop("SKB", "napi_alloc_skb"),
    Hop("NF_PREROUTING", "ip nat prerouting", "ACCEPT", "dnat to 10.0.1.2"), Hop("ROUTING", "ip_route_input_slow", "FORWARD (p1)"),
    Hop("NF_FORWARD", "ip filter forward", "ACCEPT"), Hop("NF_POSTROUTING", "ip nat postrouting", "ACCEPT"),
    Hop("NIC_TX", "p1", "XMIT")])

pytestmark = [
    pytest.mark.skipif(chromium_path() is None, reason="chromium not found: apt-get install chromium"),
    pytest.mark.skipif(shutil.which("node") is None or not (REPOSITORY / "node_modules" / "allure").is_dir(),
                       reason="Allure Report 3 not installed: apt-get install nodejs; npm install allure@3"),
]


def _result(results: Path, uuid: str, case: str, target: str, status: str, message: str = "",
            trace: str = "", attachments: tuple = ()) -> None:
    """One result as allure-pytest and harness/report/allure.py write it."""
    function, _, parameter = case.split("::")[1].partition("[")
    module = case.split("::")[0].removesuffix(".py").replace("/", ".")
    result = {
        "uuid": uuid, "name": function, "fullName": f"{module}#{function}", "status": status,
        "statusDetails": {"message": message, "trace": trace}, "start": 1_700_000_000_000, "stop": 1_700_000_000_250,
        "parameters": [{"name": "target", "value": target}] + (
            [{"name": "hop", "value": parameter.rstrip("]")}] if parameter else []),
        "labels": [{"name": name, "value": value} for name, value in (
            ("target", target), ("tag", f"target:{target}"), ("case", case), ("ALLURE_ID", case),
            ("epic", "NAT"), ("feature", "NAT placement and un-NAT of replies"), ("severity", "critical"))],
        "attachments": [{"name": name, "source": source, "type": kind} for name, source, kind in attachments],
    }
    (results / f"{uuid}-result.json").write_text(json.dumps(result))


def _seed(results: Path) -> str:
    """Three targets: one test passing on each (its journey map on the mock), one the netns
    lab fails where the others pass, one skipped as its target was unavailable, one the
    mock alone runs and fails, one broken by the harness; each target's environment. The
    id of the result with the journey."""
    results.mkdir(parents=True)
    (results / "journey-attachment.svg").write_text(journey_map_svg([DNAT], "mock"))
    dnat = "suites/test_nat.py::test_dnat_in_prerouting_rewrites_the_destination"
    for target in ("mock", "netns", "lab"):
        _result(results, f"dnat-{target}", dnat, target, "passed",
                attachments=(("journeys (mock)", "journey-attachment.svg", "image/svg+xml"),) if target == "mock" else ())
    ttl = "suites/test_nat.py::test_snat_in_postrouting[ttl-1]"
    _result(results, "ttl-mock", ttl, "mock", "passed")
    _result(results, "ttl-netns", ttl, "netns", "failed", "ExpectError: expected on p1 (netns): nothing arrived",
            "harness.target.ExpectError: expected on p1 (netns): nothing arrived")
    _result(results, "ttl-lab", ttl, "lab", "passed")
    _result(results, "masquerade-lab", "suites/test_nat.py::test_masquerade", "lab", "skipped",
            "Skipped: target lab unavailable: station st1 did not come up")
    _result(results, "redirect-mock", "suites/test_nat.py::test_redirect", "mock", "failed",
            "AssertionError: assert [('NO_SOCKET', 'L4')] == []", "AssertionError: assert [('NO_SOCKET', 'L4')] == []")
    _result(results, "helper-mock", "suites/test_nat.py::test_helper", "mock", "broken",
            "KeyError: 'p3'", "Traceback (most recent call last):\nKeyError: 'p3'")
    for name, info in {"mock": {"target": "mock", "kernel": "mock model of Linux 6.18 (harness/mockkernel)"},
                       "netns": {"target": "netns", "kernel": "6.18.0-test", "nft": "nftables v1.0.6"},
                       "lab-st1": {"target": "lab", "station": "st1", "kernel": "6.1.0-lab"}}.items():
        (results / f"environment-{name}.json").write_text(json.dumps(info))
    return hashlib.md5(b"dnat-mock").hexdigest()  # Allure 3's test result id: md5 of the uuid


def _texts(browser: Chromium, selector: str) -> list[str]:
    return browser.evaluate(f"[...document.querySelectorAll({json.dumps(selector)})].map(e => e.innerText)")


def test_the_report_shows_targets_disagreements_and_a_journey_offline(tmp_path):
    journey_result = _seed(tmp_path / "allure-results")
    assert signoff_summary([str(tmp_path / "allure-results"), "--summary", str(tmp_path / "summary.md")]) == 0
    gate = generate(tmp_path)
    index = tmp_path / "html" / "index.html"
    assert "googletagmanager" not in index.read_text()
    # the mock and the netns lab each failed a test, one of them where the other targets passed
    assert {rule.rule: rule.success for rule in gate} == {
        "mock/maxFailures": False, "netns/maxFailures": False, "lab/maxFailures": True,
        "targets/environmentsTested": True, "targets/maxDisagreements": False}

    browser = Chromium(chromium_path())
    try:
        browser.open(index.as_uri())
        environments = browser.wait_for(
            "(b => b.length === 3 && b.map(e => e.innerText))"
            "([...document.querySelectorAll('[data-testid=tree-section-env-button]')])", "one tree section per target")
        assert [environment.split("\n") for environment in environments] == [
            ['Environment: "mock"', "4"], ['Environment: "netns lab"', "2"], ['Environment: "lab DUT"', "3"]]
        assert browser.evaluate("document.querySelector('[data-testid=report-title]').innerText") == \
            "packet-journey sign-off"
        browser.screenshot(SCREENSHOTS / "overview.png")

        browser.evaluate("location.hash = '#/categories'")
        text = browser.wait_for("document.body.innerText.includes('Disagreements between targets') && "
                                "document.body.innerText", "the categories")
        categories = ["Disagreements between targets", "Infrastructure (target unavailable, lab unreachable, tool missing)",
                      "Product defects (the DUT did something else)", "Harness defects (an exception in the harness)"]
        assert sorted(categories, key=text.index) == categories
        assert "disagreement\nfails on some targets" in text
        assert "case\nsuites/test_nat.py::test_snat_in_postrouting[ttl-1]" in text
        browser.screenshot(SCREENSHOTS / "disagreements.png")

        browser.evaluate("location.hash = '#/globalAttachments'")
        browser.wait_for("[...document.querySelectorAll('[data-testid=test-result-attachment-header]')]"
                         ".some(e => e.innerText.includes('sign-off summary'))", "the sign-off summary")
        browser.wait_for("!!document.querySelector('iframe[title=\"Markdown attachment\"]') || void document"
                         ".querySelector('[data-testid=test-result-attachment-header] button').click()", "the summary")
        # the markdown is drawn in a sandboxed frame of its own (a blob): read what it shows
        summary = browser.evaluate("fetch(document.querySelector('iframe[title=\"Markdown attachment\"]').src)"
                                   ".then(r => r.text())")
        assert "Fails on some targets (1)" in summary
        assert "suites.test_nat::test_snat_in_postrouting" in summary
        browser.screenshot(SCREENSHOTS / "summary.png")

        browser.evaluate(f"location.hash = '#/{journey_result}'")
        browser.wait_for("[...document.querySelectorAll('[data-testid=test-result-attachment-header]')]"
                         ".some(e => e.innerText.includes('journeys (mock)'))", "the journey attachment")
        browser.wait_for("!!document.querySelector('img[src^=\"blob:\"]') || void "
                         "[...document.querySelectorAll('[data-testid=test-result-attachment-header]')]"
                         ".find(e => e.innerText.includes('journeys (mock)')).querySelector('button').click()",
                         "the journey map")
        journey_map = journey_map_svg([DNAT], "mock")
        width = re.match(r'<svg [^>]*width="(\d+)"', journey_map).group(1)
        browser.wait_for(f"document.querySelector('img[src^=\"blob:\"]').naturalWidth === {width}", "the map drawn")
        assert browser.evaluate("fetch(document.querySelector('img[src^=\"blob:\"]').src).then(r => r.text())") == \
            journey_map
        browser.screenshot(SCREENSHOTS / "journey.png")

        browser.open(index.as_uri())
        browser.wait_for("!!document.querySelector('[data-testid=tree-section-env-button]')", "the environments")
        # a click before the report has loaded its data does nothing: click until it opens
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
