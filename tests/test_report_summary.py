"""The sign-off summary (harness/report/summary.py, `python -m harness.report`) read from
hand-written allure-pytest result files: what it groups as one test across targets,
which disagreements it finds, and the text it writes."""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from harness.report import summary as signoff
from harness.report.__main__ import main


def result(name, target, status, message=None, params=(), stop=1000, attachments=(), module="suites.test_nat"):
    """A *-result.json as allure-pytest writes it: the test name with its parametrisation
    id, fullName without it, the target as a parameter and a label."""
    body = {"name": name.split("::")[-1], "status": status, "fullName": f"{module}#{name.split('[')[0]}",
            "parameters": [{"name": "target", "value": target}] + [{"name": k, "value": v} for k, v in params],
            "labels": [{"name": "target", "value": target}, {"name": "suite", "value": module}],
            "attachments": list(attachments), "start": stop - 10, "stop": stop, "uuid": f"{name}-{target}-{stop}"}
    if message is not None:
        body["statusDetails"] = {"message": message, "trace": "..."}
    return body


def write(directory, *results):
    directory.mkdir(exist_ok=True)
    for number, body in enumerate(results):
        (directory / f"{number:04d}-{body['stop']}-result.json").write_text(json.dumps(body))
    return directory


RUN = (
    result("test_snat_in_postrouting", "mock", "passed"),
    result("test_snat_in_postrouting", "netns", "passed"),
    result("test_dnat_reply_unnat", "mock", "passed"),
    result("test_dnat_reply_unnat", "netns", "failed", "harness.target.ExpectError: expected on p0 (netns):\n"
           "  Ether / IP / UDP 10.0.0.2:53 > 10.0.1.2:53\nnothing arrived on p0\njourneys on netns:"),
    result("test_ring_overflow", "mock", "passed"),
    result("test_ring_overflow", "netns", "skipped", "Skipped: veth has no RX ring"),
    result("test_fin_with_data", "mock", "skipped", "XFAIL mock diverges: ACK 40 ms late\n\nAssertionError: x"),
    result("test_fin_with_data", "netns", "passed"),
    result("test_port[53]", "mock", "passed", params=[("port", "53")]),
    result("test_port[53]", "netns", "passed", params=[("port", "53")]),
    result("test_port[67]", "mock", "passed", params=[("port", "67")]),
    result("test_port[67]", "netns", "broken", "KeyError: 'p3'", params=[("port", "67")]),
    result("test_xdp_clang", "mock", "skipped", "Skipped: clang missing: apt-get install clang"),
    result("test_xdp_clang", "netns", "skipped", "Skipped: clang missing: apt-get install clang"),
    result("test_only_on_the_mock", "mock", "passed"),
)


def test_a_test_is_one_case_across_targets_and_each_parameter_set_its_own(tmp_path):
    summary = signoff.read(write(tmp_path / "results", *RUN))
    assert summary.targets == ["mock", "netns"]
    assert len(summary.cases) == 8
    port_cases = sorted(key for key in summary.cases if key[0] == "suites.test_nat#test_port")
    assert port_cases == [("suites.test_nat#test_port", (("port", "53"),)),
                          ("suites.test_nat#test_port", (("port", "67"),))]
    assert sorted(summary.cases[port_cases[1]]) == ["mock", "netns"]


def test_disagreements_are_failures_then_skips_then_known_divergences_and_agreement_is_none(tmp_path):
    summary = signoff.read(write(tmp_path / "results", *RUN))
    names = {kind: [signoff.case_name(summary.cases[key]) for key in keys]
             for kind, keys in summary.disagreements.items()}
    assert names == {
        signoff.Disagreement.FAILS_ON_SOME: ["suites.test_nat::test_dnat_reply_unnat", "suites.test_nat::test_port[67]"],
        signoff.Disagreement.SKIPPED_ON_SOME: ["suites.test_nat::test_ring_overflow"],
        signoff.Disagreement.KNOWN_DIVERGENCE: ["suites.test_nat::test_fin_with_data"],
    }


@pytest.mark.parametrize("outcomes, kind", [
    ({"mock": "passed", "netns": "passed"}, None),
    ({"mock": "failed", "netns": "failed"}, None),  # the same outcome everywhere: nothing to tell apart
    ({"mock": "failed", "netns": "broken"}, "fails on some targets"),
    ({"mock": "xfailed", "netns": "skipped"}, "skipped on some targets"),
    ({"mock": "xfailed", "netns": "failed", "lab": "skipped"}, "fails on some targets"),
    ({"mock": "xpassed", "netns": "passed"}, "known divergence (xfail on some targets)"),
])
def test_disagreement_kind_of_a_set_of_outcomes(outcomes, kind):
    found = signoff.disagreement({target: signoff.Outcome(o) for target, o in outcomes.items()})
    assert (found and str(found)) == kind


def test_summary_text_lists_disagreements_first_then_per_target_counts_and_reasons(tmp_path):
    text = signoff.markdown(signoff.read(write(tmp_path / "results", *RUN)))
    assert text == f"""\
# Sign-off summary

8 tests, 15 results on mock, netns, from `{tmp_path / "results"}`.

## Disagreements between targets

4 of the 7 tests run on more than one target.

### Fails on some targets (2)

| test | mock | netns |
|---|---|---|
| suites.test_nat::test_dnat_reply_unnat | passed | failed: harness.target.ExpectError: expected on p0 (netns): Ether / IP / UDP 10.0.0.2:53 > 10.0.1.2:53 |
| suites.test_nat::test_port[67] | passed | broken: KeyError: 'p3' |

### Skipped on some targets (1)

| test | mock | netns |
|---|---|---|
| suites.test_nat::test_ring_overflow | passed | skipped: veth has no RX ring |

### Known divergence (xfail on some targets) (1)

| test | mock | netns |
|---|---|---|
| suites.test_nat::test_fin_with_data | xfailed: mock diverges: ACK 40 ms late | passed |

## Per target

| target | tests | passed | failed | broken | skipped | xfailed |
|---|---:|---:|---:|---:|---:|---:|
| mock | 8 | 6 | 0 | 0 | 1 | 1 |
| netns | 7 | 3 | 1 | 1 | 2 | 0 |

### mock: skipped by reason

| tests | reason |
|---:|---|
| 1 | clang missing: apt-get install clang |

### mock: xfailed by reason

| tests | reason |
|---:|---|
| 1 | mock diverges: ACK 40 ms late |

### netns: failures (2)

- `suites.test_nat::test_dnat_reply_unnat` failed: harness.target.ExpectError: expected on p0 (netns): Ether / IP / UDP 10.0.0.2:53 > 10.0.1.2:53
- `suites.test_nat::test_port[67]` broken: KeyError: 'p3'

### netns: skipped by reason

| tests | reason |
|---:|---|
| 1 | veth has no RX ring |
| 1 | clang missing: apt-get install clang |

## Environments

No environment-<target>.json in the results.
"""


def test_a_rerun_into_the_same_directory_replaces_the_earlier_result(tmp_path):
    summary = signoff.read(write(tmp_path / "results",
                                 result("test_flaky", "netns", "passed", stop=2000),
                                 result("test_flaky", "netns", "failed", "AssertionError: late", stop=1000),
                                 result("test_flaky", "mock", "passed", stop=1500)))
    assert summary.counts("netns") == {signoff.Outcome.PASSED: 1}
    assert not any(summary.disagreements.values())


def test_a_result_without_target_label_counts_as_no_target_after_the_targets(tmp_path):
    unit = result("test_parser", "mock", "passed", module="tests.test_nft")
    unit["labels"] = [label for label in unit["labels"] if label["name"] != "target"]
    unit["parameters"] = []
    summary = signoff.read(write(tmp_path / "results", unit, result("test_x", "lab", "passed"),
                                 result("test_x", "mock", "passed")))
    assert summary.targets == ["mock", "lab", signoff.NO_TARGET]


def test_a_markdown_cell_keeps_pipes_and_newlines_of_a_message_inside_it(tmp_path):
    text = signoff.markdown(signoff.read(write(tmp_path / "results",
                                               result("test_t", "mock", "passed"),
                                               result("test_t", "netns", "failed", "AssertionError: a | b"))))
    assert "| suites.test_nat::test_t | passed | failed: AssertionError: a \\| b |" in text


def test_environments_are_a_table_with_a_column_per_file(tmp_path):
    results = write(tmp_path / "results", *RUN[:2])
    (results / "environment-mock.json").write_text(json.dumps({"target": "mock", "kernel": "mock 6.18 model",
                                                               "commit": "e9a06aa"}))
    (results / "environment-netns.json").write_text(json.dumps({"target": "netns", "kernel": "6.12.48",
                                                                "nft": "1.0.6", "commit": "e9a06aa"}))
    text = signoff.markdown(signoff.read(results))
    assert text.split("## Environments\n\n")[1] == """\
| | mock | netns |
|---|---|---|
| target | mock | netns |
| kernel | mock 6.18 model | 6.12.48 |
| commit | e9a06aa | e9a06aa |
| nft |  | 1.0.6 |
"""


def test_line_rate_table_from_the_attached_rfc2544_report(tmp_path):
    """64-byte frames are 84 bytes on the wire (preamble, SFD, gap): 1 Mpps is 672 Mbit/s at L1."""
    results = tmp_path / "results"
    results.mkdir()
    report = {"target": "netns", "scenario": "forwarding", "settings": {}, "sizes": [
        {"frame_size": 64, "max_pps": 2_000_000.0, "loss_curve": [], "back_to_back": [], "back_to_back_capped": False,
         "ndr": {"loss_ratio": 0.0, "lower_pps": 1_000_000.0, "upper_pps": 1_010_000.0, "conditional_pps": 1_000_000.0,
                 "latency": {"min_us": 4.0, "avg_us": 5.5, "max_us": 9.0, "jitter_us": 0.5, "histogram": {"4": 10}}},
         "pdr": {"loss_ratio": 0.005, "lower_pps": 1_200_000.0, "upper_pps": None, "conditional_pps": 1_100_000.0,
                 "latency": None},
         "trials": []}]}
    (results / "r1-attachment.json").write_text(json.dumps(report))
    write(results, result("test_rfc2544_sample", "netns", "passed", attachments=[
        {"name": "RFC 2544 (netns).txt", "source": "r1-attachment.txt", "type": "text/plain"},
        {"name": "RFC 2544 (netns).json", "source": "r1-attachment.json", "type": "application/json"}]))
    text = signoff.markdown(signoff.read(results))
    assert text.split("### suites.test_nat::test_rfc2544_sample\n\n")[1] == """\
| target | scenario | frame | goal | lower pps | upper pps | Mbit/s L1 | % max | latency avg us |
|---|---|---:|---:|---:|---:|---:|---:|---:|
| netns | forwarding | 64 | NDR | 1000000.0 | 1010000.0 | 672.00 | 50.00 | 5.50 |
| netns | forwarding | 64 | PDR 0.5% | 1200000.0 | - | 739.20 | 55.00 | - |
"""


def labels(path):
    return [(label["name"], label["value"]) for label in json.loads(path.read_text())["labels"]
            if label["name"] == "disagreement"]


def test_into_the_report_a_global_markdown_attachment_and_a_label_on_each_disagreeing_result(tmp_path):
    results = write(tmp_path / "results", *RUN)
    summary = signoff.read(results)
    assert signoff.write_into_report(summary, "# the summary\n") == 8  # 4 cases on 2 targets
    globals_file = json.loads((results / "sign-off-summary-globals.json").read_text())
    assert globals_file == {"attachments": [{"name": "sign-off summary", "source": "sign-off-summary-attachment.md",
                                             "type": "text/markdown"}]}
    assert (results / "sign-off-summary-attachment.md").read_text() == "# the summary\n"
    by_name = {(json.loads(p.read_text())["name"], json.loads(p.read_text())["labels"][0]["value"]): p
               for p in results.glob("*-result.json")}
    assert labels(by_name["test_dnat_reply_unnat", "mock"]) == [("disagreement", "fails on some targets")]
    assert labels(by_name["test_ring_overflow", "netns"]) == [("disagreement", "skipped on some targets")]
    assert labels(by_name["test_fin_with_data", "mock"]) == [("disagreement",
                                                              "known divergence (xfail on some targets)")]
    assert labels(by_name["test_snat_in_postrouting", "mock"]) == []
    assert signoff.write_into_report(signoff.read(results), "# the summary\n") == 0  # a second run changes nothing


def test_a_case_that_agrees_in_a_later_run_loses_its_label(tmp_path):
    results = write(tmp_path / "results", result("test_t", "mock", "passed"),
                    result("test_t", "netns", "failed", "AssertionError: x"))
    signoff.write_into_report(signoff.read(results), "")
    (results / "0001-1000-result.json").write_text(json.dumps(result("test_t", "netns", "passed", stop=3000)))
    signoff.write_into_report(signoff.read(results), "")
    assert [labels(path) for path in sorted(results.glob("*-result.json"))] == [[], []]


def test_command_writes_the_summary_and_prints_counts_skip_reasons_and_disagreements(tmp_path, capsys):
    results = write(tmp_path / "results", *RUN)
    before = {p.name: p.read_bytes() for p in results.iterdir()}
    out = tmp_path / "summary.md"
    assert main([str(results), "--summary", str(out), "--read-only"]) == 0
    assert {p.name: p.read_bytes() for p in results.iterdir()} == before
    assert out.read_text().startswith("# Sign-off summary\n")
    printed = capsys.readouterr().out
    rows = [line.split() for line in printed.splitlines() if line.strip().startswith(("mock ", "netns "))]
    assert rows == [["mock", "8", "6", "0", "0", "1", "1"], ["netns", "7", "3", "1", "1", "2", "0"]]
    assert f"sign-off summary: {out}" in printed
    assert "skipped on netns, by reason:\n      1  veth has no RX ring\n" in printed
    assert "disagreements between targets: 2 fails on some targets, 1 skipped on some targets, " \
           "1 known divergence (xfail on some targets)" in printed
    assert "  suites.test_nat::test_port[67]  mock passed | netns broken: KeyError: 'p3'" in printed


def test_command_without_results_says_which_directory_and_how_to_make_it(tmp_path, capsys):
    assert main([str(tmp_path / "nothing"), "--summary", str(tmp_path / "s.md")]) == 1
    assert capsys.readouterr().err == (f"python -m harness.report: {tmp_path / 'nothing'}: no allure-results "
                                       f"directory (run pytest with --alluredir={tmp_path / 'nothing'})\n")


def journey_attachment(results, target, verdict):
    """The journey JSON the plugin attaches (harness/report/journey_map.attach_journeys)."""
    from harness.journey import Hop, Journey, journeys_to_json
    journey = Journey("udp 10.0.0.2 > 10.0.1.2", [Hop("NIC_RX", "p0", "DMA"), Hop("NF_FORWARD", "ip filter fwd", verdict)])
    source = f"journey-{target}-attachment.json"
    (results / source).write_text(json.dumps({"target": target, "observed": ["NIC_RX", "NF_FORWARD"],
                                              **journeys_to_json([journey])}))
    return {"name": f"journeys ({target}).json", "source": source, "type": "application/json"}


def test_command_for_the_report_adds_journeys_side_by_side_the_summary_and_the_labels(tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    write(results, result("test_forward", "mock", "passed", attachments=[journey_attachment(results, "mock", "ACCEPT")]),
          result("test_forward", "netns", "failed", "AssertionError: dropped",
                 attachments=[journey_attachment(results, "netns", "DROP")]))
    assert main([str(results), "--summary", str(tmp_path / "summary.md")]) == 0
    written = [json.loads(path.read_text()) for path in sorted(results.glob("*-result.json"))]
    assert [[a["name"] for a in r["attachments"]] for r in written] == \
        [["journeys (mock).json", "journeys side by side (mock | netns)"],
         ["journeys (netns).json", "journeys side by side (mock | netns)"]]
    assert [labels(path) for path in sorted(results.glob("*-result.json"))] == \
        [[("disagreement", "fails on some targets")]] * 2
    assert (results / "sign-off-summary-attachment.md").read_text() == (tmp_path / "summary.md").read_text()
    assert "journeys side by side added to 2 results in" in capsys.readouterr().out


def test_terminal_lists_stop_after_ten_and_say_how_many_more_are_in_the_file(tmp_path, capsys):
    failing = [result(f"test_{n:02d}", "netns", "failed", f"AssertionError: {n}") for n in range(12)]
    summary = signoff.read(write(tmp_path / "results", *failing))
    signoff.print_compact(summary, "summary.md")
    listed = capsys.readouterr().out.split("failed on netns:\n")[1].splitlines()
    assert listed[0] == "  suites.test_nat::test_00  failed: AssertionError: 0"
    assert listed[9:] == ["  suites.test_nat::test_09  failed: AssertionError: 9",
                          "  ... and 2 more in the summary file", "disagreements between targets: none"]


def test_traffic_runs_table_from_the_attached_results(tmp_path):
    """One row per traffic() run in the order the test ran them, all streams together."""
    from harness.traffic import Loss, Result, StreamStats
    results = tmp_path / "results"
    results.mkdir()
    runs = [Result("netns", 2.0, streams={0: StreamStats(0, opackets=3303, ipackets=1751, tx_pps=1651.5, rx_pps=875.5)},
                   losses=[Loss("QDISC", "QDISC_DROP", "tbf", 1552)]),
            Result("netns", 0.1, streams={0: StreamStats(0, opackets=600, ipackets=600, tx_pps=6000.0, rx_pps=6000.0),
                                          1: StreamStats(1, opackets=400, ipackets=300, tx_pps=4000.0, rx_pps=3000.0)})]
    attachments = []
    for number, run in enumerate(runs):
        (results / f"t{number}-attachment.json").write_text(json.dumps(run.to_dict()))
        attachments.append({"name": "traffic (netns).json", "source": f"t{number}-attachment.json",
                            "type": "application/json"})
    write(results, result("test_tbf", "netns", "passed", attachments=attachments, module="suites.test_linerate"))
    text = signoff.markdown(signoff.read(results))
    assert text.split("### suites.test_linerate::test_tbf\n\n")[1] == """\
| target | run | seconds | sent | received | lost | sent pps | received pps | losses |
|---|---:|---:|---:|---:|---:|---:|---:|---|
| netns | 1 | 2.000 | 3,303 | 1,751 | 1,552 (46.99%) | 1,652 | 876 | 1,552 QDISC_DROP at QDISC |
| netns | 2 | 0.100 | 1,000 | 900 | 100 (10.00%) | 10,000 | 9,000 | - |
"""


def test_a_traffic_run_is_attached_as_its_table_and_the_json_the_summary_reads(monkeypatch):
    import allure

    from harness.report import plots
    from harness.traffic import Result, StreamStats
    run = Result("mock", 0.5, streams={0: StreamStats(0, opackets=10, ipackets=9)})
    attached = []
    monkeypatch.setattr(allure, "attach", lambda body, name, attachment_type: attached.append((name, body)))
    plots.attach_traffic(run)
    assert [name for name, _ in attached] == ["traffic (mock).txt", "traffic (mock).json"]
    assert attached[0][1].startswith("traffic on mock: 0.500 s\n")
    assert Result.from_dict(json.loads(attached[1][1])) == run


def test_summary_is_a_plain_reader_that_imports_neither_the_plugin_side_nor_the_maps():
    """journey_map and harness/report/allure.py import from it: an import back closes a cycle
    that stops the plugin from loading."""
    check = ("import sys, harness.report.summary; "
             "print(sorted(m for m in ('harness.report.allure', 'harness.report.journey_map', 'allure', 'pytest') "
             "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True,
                         cwd=pathlib.Path(__file__).resolve().parents[1]).stdout
    assert out == "[]\n"
