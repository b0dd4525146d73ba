"""The sign-off summary of a run, read back from an allure-results directory.

allure-pytest writes one `*-result.json` per test and target. A test run on several
targets (the mock, the netns lab, a lab DUT: the result's "target" label) is one case
here, keyed by `case_key()`: its fullName and its parameters other than "target", so a
test parametrised by anything else stays one case per parameter set. Where a
directory holds a case twice on one target (a rerun, a second run into the same
directory) the result that stopped last counts.

The summary, in this order:
- the disagreements: cases whose outcome differs between targets, a failure on some
  targets apart from a skip on some targets and from a known divergence (an xfail on
  some targets, as MOCK_DIVERGES marks the mock's), each target's outcome and message;
- per target the counts (passed, failed, broken, skipped, xfailed, xpassed), the
  failures with their message, the skips and xfails by reason;
- the environments, one `environment-<target>.json` per target in the directory
  (a flat JSON object, written by harness/report/environment.py);
- the line-rate tables: the RFC 2544 reports and the `Target.traffic()` runs the
  line-rate tests attached (`RFC 2544 (<target>).json`, `traffic (<target>).json`:
  harness/report/plots.py).

`write_into_report()` puts the summary into the Allure report as a global markdown
attachment and labels every result of a disagreeing case `disagreement=<kind>`, for
the report's disagreements view.
"""
from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from harness.traffic import FCS_LEN, Result, l1_bits

NO_TARGET = "no target"  # a result without a "target" label: a test that used no DUT
TARGET_ORDER = ("mock", "netns", "dut", "lab")  # the rest follow alphabetically
DISAGREEMENT_LABEL = "disagreement"
SUMMARY_ATTACHMENT = "sign-off-summary-attachment.md"  # fixed names: a second run replaces them
SUMMARY_GLOBALS = "sign-off-summary-globals.json"
RFC2544_ATTACHMENT = "RFC 2544 ("  # "RFC 2544 (<target>).json", a Report.to_dict()
TRAFFIC_ATTACHMENT = "traffic ("  # "traffic (<target>).json", a Result.to_dict() per run

CaseKey = tuple[str, tuple[tuple[str, str], ...]]


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    BROKEN = "broken"
    SKIPPED = "skipped"
    XFAILED = "xfailed"
    XPASSED = "xpassed"
    UNKNOWN = "unknown"  # the run stopped before the test ended


FAILING = {Outcome.FAILED, Outcome.BROKEN, Outcome.UNKNOWN}
EXPECTED_TO_FAIL = {Outcome.XFAILED, Outcome.XPASSED}


class Disagreement(StrEnum):
    """How a case's outcomes differ between targets, in the order the summary lists them."""
    FAILS_ON_SOME = "fails on some targets"
    SKIPPED_ON_SOME = "skipped on some targets"
    KNOWN_DIVERGENCE = "known divergence (xfail on some targets)"


@dataclass(frozen=True)
class CaseResult:
    """One allure result: one test on one target."""
    path: Path
    target: str
    case: CaseKey
    name: str  # module::test[id]
    outcome: Outcome
    message: str  # the reason of a skip or xfail, the exception line of a failure
    stop: int
    attachments: tuple[dict, ...]


@dataclass
class Summary:
    results_dir: Path
    results: list[CaseResult]
    targets: list[str]
    cases: dict[CaseKey, dict[str, CaseResult]]  # case -> target -> its result
    disagreements: dict[Disagreement, list[CaseKey]]
    environments: dict[str, dict]  # environment-<name>.json by name (harness/report/environment.py)
    line_rate: list[tuple[CaseResult, dict]] = field(default_factory=list)  # (result, Report.to_dict())
    traffic: list[tuple[CaseResult, Result]] = field(default_factory=list)  # each traffic() run of a test

    def counts(self, target: str) -> Counter:
        return Counter(case[target].outcome for case in self.cases.values() if target in case)

    def on(self, target: str) -> list[CaseResult]:
        return [case[target] for case in self.cases.values() if target in case]


def case_key(result: dict) -> CaseKey:
    """The same test on every target: fullName and the parameters other than "target"."""
    parameters = tuple(sorted((p["name"], str(p.get("value"))) for p in result.get("parameters", [])
                              if p["name"] != "target"))
    return result.get("fullName") or result.get("name", "?"), parameters


def outcome(result: dict) -> Outcome:
    """allure-pytest's status, with xfail and xpass told apart by their message."""
    status, message = result.get("status"), _message(result)
    if status == "skipped" and message.startswith("XFAIL"):
        return Outcome.XFAILED
    if status == "passed" and message.startswith("XPASS"):
        return Outcome.XPASSED
    try:
        return Outcome(status)
    except ValueError:
        return Outcome.UNKNOWN


def reason(result: dict) -> str:
    """One line: why it was skipped or xfailed, or the exception a failure raised,
    with the line after it when it ends in ":" (an ExpectError's expected frame)."""
    lines = _message(result).strip().splitlines()
    first = lines[0] if lines else ""
    if first.endswith(":") and len(lines) > 1:
        first = f"{first} {lines[1].strip()}"
    for prefix in ("Skipped:", "XFAIL", "XPASS"):
        first = first.removeprefix(prefix)
    return first.strip()


def _message(result: dict) -> str:
    return (result.get("statusDetails") or {}).get("message") or ""


def _target(result: dict) -> str:
    return next((label["value"] for label in result.get("labels", []) if label.get("name") == "target"), NO_TARGET)


def read(results_dir: str | os.PathLike) -> Summary:
    """Every result in `results_dir`, grouped by case and target."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"{results_dir}: no allure-results directory (run pytest with --alluredir={results_dir})")
    results = []
    for path in sorted(results_dir.glob("*-result.json")):
        raw = json.loads(path.read_text())
        full_name = raw.get("fullName") or ""
        module = full_name.split("#")[0]
        results.append(CaseResult(path=path, target=_target(raw), case=case_key(raw),
                                  name=f"{module}::{raw.get('name', '?')}" if module else raw.get("name", "?"),
                                  outcome=outcome(raw), message=reason(raw), stop=raw.get("stop") or 0,
                                  attachments=tuple(raw.get("attachments", []))))
    cases: dict[CaseKey, dict[str, CaseResult]] = defaultdict(dict)
    for result in sorted(results, key=lambda r: r.stop):  # the last one stopped wins
        cases[result.case][result.target] = result
    targets = sorted({r.target for r in results},
                     key=lambda t: (t == NO_TARGET, TARGET_ORDER.index(t) if t in TARGET_ORDER else len(TARGET_ORDER), t))
    summary = Summary(results_dir=results_dir, results=results, targets=targets, cases=dict(cases),
                      disagreements={kind: [] for kind in Disagreement}, environments=environment_info(results_dir))
    for key in sorted(summary.cases, key=lambda k: case_name(summary.cases[k])):
        kind = disagreement({t: r.outcome for t, r in summary.cases[key].items()})
        if kind is not None:
            summary.disagreements[kind].append(key)
    summary.line_rate = _attached(summary, RFC2544_ATTACHMENT)
    summary.traffic = [(result, Result.from_dict(data)) for result, data in _attached(summary, TRAFFIC_ATTACHMENT)]
    return summary


def disagreement(outcomes: dict[str, Outcome]) -> Disagreement | None:
    """How the outcomes of one case on several targets differ, or None if they agree:
    a failure anywhere first, then a skip (the case was not compared there), then an
    xfail or xpass (a divergence the suite already names)."""
    seen = set(outcomes.values())
    if len(seen) < 2:
        return None
    if seen & FAILING:
        return Disagreement.FAILS_ON_SOME
    if Outcome.SKIPPED in seen:
        return Disagreement.SKIPPED_ON_SOME
    return Disagreement.KNOWN_DIVERGENCE


def environment_info(results_dir: str | os.PathLike) -> dict[str, dict]:
    """Every environment-*.json in `results_dir` (harness/report/environment.py writes them), by
    the name after "environment-" ("mock", "netns", "lab-<station>")."""
    return {path.stem.removeprefix("environment-"): json.loads(path.read_text())
            for path in sorted(Path(results_dir).glob("environment-*.json"))}


def case_name(by_target: dict[str, CaseResult]) -> str:
    return next(iter(by_target.values())).name


def _attached(summary: Summary, prefix: str) -> list[tuple[CaseResult, dict]]:
    """The JSON attachments named `prefix`..., by target, test and order attached."""
    found = []
    for target in summary.targets:
        for result in sorted(summary.on(target), key=lambda r: r.name):
            for attachment in result.attachments:
                if attachment.get("name", "").startswith(prefix) and attachment.get("type") == "application/json":
                    found.append((result, json.loads((summary.results_dir / attachment["source"]).read_text())))
    return found


COLUMNS = (Outcome.PASSED, Outcome.FAILED, Outcome.BROKEN, Outcome.SKIPPED, Outcome.XFAILED)


def columns(summary: Summary) -> list[Outcome]:
    """The outcome columns: always the five of a sign-off, xpassed and unknown when a run has them."""
    extra = [o for o in (Outcome.XPASSED, Outcome.UNKNOWN) if any(summary.counts(t)[o] for t in summary.targets)]
    return [*COLUMNS, *extra]


def markdown(summary: Summary) -> str:
    """reports/summary.md: disagreements, per target counts and reasons, environments, line rate."""
    lines = ["# Sign-off summary", "",
             f"{len(summary.cases)} tests, {sum(len(c) for c in summary.cases.values())} results on "
             f"{', '.join(summary.targets) or 'no target'}, from `{summary.results_dir}`.", ""]
    lines += _disagreements_markdown(summary)
    lines += _targets_markdown(summary)
    lines += _environments_markdown(summary)
    lines += _line_rate_markdown(summary)
    lines += _traffic_markdown(summary)
    return "\n".join(lines).rstrip() + "\n"


def _disagreements_markdown(summary: Summary) -> list[str]:
    compared = sum(1 for case in summary.cases.values() if len(case) > 1)
    total = sum(len(keys) for keys in summary.disagreements.values())
    lines = ["## Disagreements between targets", ""]
    if not total:
        return lines + [f"None: each of the {compared} tests run on more than one target has one outcome on all.", ""]
    lines += [f"{total} of the {compared} tests run on more than one target.", ""]
    for kind, keys in summary.disagreements.items():
        if not keys:
            continue
        targets = [t for t in summary.targets if any(t in summary.cases[k] for k in keys)]
        lines += [f"### {kind[0].upper()}{kind[1:]} ({len(keys)})", "",
                  "| test | " + " | ".join(targets) + " |", "|---" * (len(targets) + 1) + "|"]
        for key in keys:
            case = summary.cases[key]
            lines.append(f"| {_cell(case_name(case))} | " + " | ".join(
                _cell(_outcome_text(case[t])) if t in case else "not run" for t in targets) + " |")
        lines.append("")
    return lines


def _outcome_text(result: CaseResult) -> str:
    return f"{result.outcome}: {result.message}" if result.message else str(result.outcome)


def _targets_markdown(summary: Summary) -> list[str]:
    shown = columns(summary)
    lines = ["## Per target", "", "| target | tests | " + " | ".join(shown) + " |", "|---|" + "---:|" * (len(shown) + 1)]
    for target in summary.targets:
        counts = summary.counts(target)
        lines.append(f"| {target} | {sum(counts.values())} | " + " | ".join(str(counts[o]) for o in shown) + " |")
    lines.append("")
    for target in summary.targets:
        results = summary.on(target)
        failures = sorted((r for r in results if r.outcome in FAILING), key=lambda r: r.name)
        if failures:
            lines += [f"### {target}: failures ({len(failures)})", ""]
            lines += [f"- `{r.name}` {r.outcome}: {r.message or '(no message)'}" for r in failures]
            lines.append("")
        for kind in (Outcome.SKIPPED, Outcome.XFAILED):
            reasons = Counter(r.message or "(no reason given)" for r in results if r.outcome == kind)
            if reasons:
                lines += [f"### {target}: {kind} by reason", "", "| tests | reason |", "|---:|---|"]
                lines += [f"| {count} | {_cell(text)} |" for text, count in reasons.most_common()]
                lines.append("")
    return lines


def _environments_markdown(summary: Summary) -> list[str]:
    if not summary.environments:
        return ["## Environments", "", "No environment-<target>.json in the results.", ""]
    targets = list(summary.environments)
    keys = list(dict.fromkeys(k for values in summary.environments.values() for k in values))
    lines = ["## Environments", "", "| | " + " | ".join(targets) + " |", "|---" * (len(targets) + 1) + "|"]
    lines += [f"| {_cell(k)} | " + " | ".join(_cell(str(summary.environments[t].get(k, ""))) for t in targets) + " |"
              for k in keys]
    return lines + [""]


def line_rate_rows(summary: Summary) -> dict[str, list[tuple[str, ...]]]:
    """Per test, one row per target, scenario, frame size and goal: the RFC 2544
    throughput found and the latency measured there."""
    tables: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for result, report in summary.line_rate:
        for size in report["sizes"]:
            for goal in (size.get("ndr"), size.get("pdr")):
                if not goal:
                    continue
                conditional = goal.get("conditional_pps")
                latency = goal.get("latency")
                tables[result.name].append((
                    result.target, report.get("scenario", ""), str(size["frame_size"]),
                    "NDR" if goal["loss_ratio"] == 0 else f"PDR {100 * goal['loss_ratio']:g}%",
                    _pps(goal.get("lower_pps")), _pps(goal.get("upper_pps")),
                    f"{conditional * l1_bits(size['frame_size'] - FCS_LEN) / 1e6:.2f}" if conditional else "-",
                    f"{100 * conditional / size['max_pps']:.2f}" if conditional else "-",
                    f"{latency['avg_us']:.2f}" if latency else "-"))
    return dict(tables)


LINE_RATE_HEADER = ("target", "scenario", "frame", "goal", "lower pps", "upper pps", "Mbit/s L1", "% max",
                    "latency avg us")


def _line_rate_markdown(summary: Summary) -> list[str]:
    return _tables_markdown(
        "## Line rate: RFC 2544 throughput (26.1)",
        "Mbit/s and % of the maximum rate at the conditional throughput, as `python -m harness.rfc2544` prints them.",
        LINE_RATE_HEADER, "|---|---|" + "---:|" * (len(LINE_RATE_HEADER) - 2), line_rate_rows(summary))


def _tables_markdown(title: str, intro: str, header: tuple[str, ...], rule: str,
                     tables: dict[str, list[tuple[str, ...]]]) -> list[str]:
    """A section of one markdown table per test (none without rows); `rule` is the
    table's alignment line."""
    if not tables:
        return []
    lines = [title, "", intro, ""]
    for name, rows in sorted(tables.items()):
        lines += [f"### {name}", "", "| " + " | ".join(header) + " |", rule]
        lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
        lines.append("")
    return lines


TRAFFIC_HEADER = ("target", "run", "seconds", "sent", "received", "lost", "sent pps", "received pps", "losses")


def traffic_rows(summary: Summary) -> dict[str, list[tuple[str, ...]]]:
    """Per test, one row per traffic() run: packets sent into the DUT and received
    from it over all streams, and where the target saw them lost."""
    tables: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    runs: Counter = Counter()
    for result, run in summary.traffic:
        runs[result.name, result.target] += 1
        streams = run.streams.values()
        sent, received = sum(s.opackets for s in streams), sum(s.ipackets for s in streams)
        lost = f"{sent - received:,} ({(sent - received) / sent:.2%})" if sent else "-"
        losses = "; ".join(f"{loss.packets:,} {loss.reason} at {loss.stage}" for loss in run.losses) or "-"
        tables[result.name].append((result.target, str(runs[result.name, result.target]), f"{run.duration:.3f}",
                                    f"{sent:,}", f"{received:,}", lost, f"{sum(s.tx_pps for s in streams):,.0f}",
                                    f"{sum(s.rx_pps for s in streams):,.0f}", losses))
    return dict(tables)


def _traffic_markdown(summary: Summary) -> list[str]:
    return _tables_markdown(
        "## Line rate: traffic runs",
        "Each `target.traffic()` run of a test, all its streams together; its table per port and stream "
        "is attached to the test's result.",
        TRAFFIC_HEADER, "|---|" + "---:|" * (len(TRAFFIC_HEADER) - 2) + "---|", traffic_rows(summary))


def _pps(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "-"


def _cell(text: str) -> str:
    """Text that stays inside one markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def write_into_report(summary: Summary, text: str) -> int:
    """The summary as a global attachment of the report, and the label
    `disagreement=<kind>` on every result of a disagreeing case (removed from a
    result whose case agrees now). Returns the results rewritten."""
    directory = summary.results_dir
    (directory / SUMMARY_ATTACHMENT).write_text(text)
    (directory / SUMMARY_GLOBALS).write_text(json.dumps({"attachments": [
        {"name": "sign-off summary", "source": SUMMARY_ATTACHMENT, "type": "text/markdown"}]}))
    kinds = {(key, target): kind for kind, keys in summary.disagreements.items()
             for key in keys for target in summary.cases[key]}
    rewritten = 0
    for result in summary.results:
        kind = kinds.get((result.case, result.target))
        raw = json.loads(result.path.read_text())
        labels = [label for label in raw.get("labels", []) if label.get("name") != DISAGREEMENT_LABEL]
        if kind is not None:
            labels.append({"name": DISAGREEMENT_LABEL, "value": str(kind)})
        if labels != raw.get("labels", []):
            raw["labels"] = labels
            result.path.write_text(json.dumps(raw))
            rewritten += 1
    return rewritten


SHOWN_PER_LIST = 10  # the terminal's lists stop here; summary.md has them all


def print_compact(summary: Summary, summary_path: str | os.PathLike, console=None) -> None:
    """The summary on the terminal: counts per target, skip reasons, failures and
    disagreements (the first few of each), and where the whole summary is."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    console = console or Console(highlight=False, soft_wrap=True)
    shown = columns(summary)
    table = Table("target", box=box.SIMPLE, title=f"sign-off summary: {summary_path}", title_justify="left")
    for heading in ("tests", *shown):
        table.add_column(str(heading), justify="right")
    for target in summary.targets:
        counts = summary.counts(target)
        table.add_row(target, str(sum(counts.values())), *(str(counts[o]) for o in shown))
    console.print(table)
    for target in summary.targets:
        results = summary.on(target)
        skips = Counter(r.message or "(no reason given)" for r in results if r.outcome == Outcome.SKIPPED)
        if skips:
            console.print(f"skipped on {target}, by reason:", markup=False)
            _print_list(console, [f"{count:5d}  {text}" for text, count in skips.most_common()])
        failures = sorted((r for r in results if r.outcome in FAILING), key=lambda r: r.name)
        if failures:
            console.print(f"failed on {target}:", markup=False)
            _print_list(console, [f"{r.name}  {_outcome_text(r)}" for r in failures])
    total = {kind: len(keys) for kind, keys in summary.disagreements.items() if keys}
    if not total:
        console.print("disagreements between targets: none", markup=False)
        return
    console.print("disagreements between targets: " + ", ".join(f"{n} {kind}" for kind, n in total.items()),
                  markup=False)
    for kind, keys in summary.disagreements.items():
        if keys:
            console.print(f"{kind}:", markup=False)
            _print_list(console, [case_name(summary.cases[key]) + "  " + " | ".join(
                f"{t} {_outcome_text(r)}" for t, r in summary.cases[key].items()) for key in keys])


def _print_list(console, lines: list[str]) -> None:
    for line in lines[:SHOWN_PER_LIST]:
        console.print("  " + line, markup=False)
    if len(lines) > SHOWN_PER_LIST:
        console.print(f"  ... and {len(lines) - SHOWN_PER_LIST} more in the summary file", markup=False)
