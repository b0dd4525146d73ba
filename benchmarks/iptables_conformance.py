"""The project's iptables conformance corpus (tests/iptables_corpus/*.rules,
rule lines written by hand) replayed on the mock and compared with the answers
the real iptables-nft 1.8.9 / ip6tables gave (tests/golden/iptables/corpus.json,
recorded in a network namespace by tests/golden/record_iptables): per case, the
same accept or refusal with the same message, the same iptables-save, the
same `nft list ruleset` and the same `iptables -L -n`.

Prints, as `figure iptables.NAME N count`:
- cases, real_accepts: the corpus and how much of it the real tool accepts;
- accepted_identical: accepted by both and saved identically; listed_identical:
  of those, also listed identically by `nft list ruleset` and `iptables -L -n`;
- saved_differently, not_modelled, refused_wrongly: what the real tool accepts
  and the mock saves otherwise, calls not modelled, or refuses;
- accepts_refused: what the mock accepts and the real tool refuses;
- refused_same_message, refused_other_message: refusals of both, alike or not;
- python_exceptions: cases where the mock raised something other than an error;
- json_identical: accepted cases `nft -j list ruleset` shows identically (not
  yet asserted: nft_compat's extensions print there by name, native ones as
  expressions, and the mock tells them apart only for the extensions it added).
"""
from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from harness.conformance import replay
from harness.conformance.replay import Answer, Session, Step

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "iptables_corpus"
GOLDEN = ROOT / "tests" / "golden" / "iptables" / "corpus.json"
PROGRAMS = ("iptables", "ip6tables")
NOT_MODELLED = "is not modelled by the mock kernel"


@dataclass(frozen=True)
class Case:
    prog: str  # iptables | ip6tables
    table: str
    chain: str
    rule: str  # the options, shell-quoted as written

    @property
    def key(self) -> str:
        return f"{self.prog} -t {self.table} -A {self.chain} {self.rule}"

    def steps(self) -> list[list[str]]:
        """Append the rule; then (when appended) save the table, list the
        ruleset and list the chain as iptables -L -n does."""
        return [[self.prog, "-t", self.table, "-A", self.chain, *shlex.split(self.rule)],
                [f"{self.prog}-save", "-t", self.table], ["nft", "list", "ruleset"],
                [self.prog, "-t", self.table, "-L", self.chain, "-n"], ["nft", "-j", "list", "ruleset"]]


def load_corpus() -> list[Case]:
    cases = []
    for prog in PROGRAMS:
        for line in (CORPUS / f"{prog}.rules").read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                table, chain, rule = (line.split(None, 2) + [""])[:3]
                cases.append(Case(prog, table, chain, rule))
    return cases


def _session(case: Case) -> Session:
    """The append, then the rest only when it was appended."""
    first, *rest = case.steps()
    return [Step(tuple(first)), *(Step(tuple(argv), 0) for argv in rest)]


def _answer(answers: list[Answer | None]) -> dict:
    """The append's status and message; the save (its timestamp comments left
    out) and the listing when it was appended."""
    append = answers[0]
    answer = {"status": append.status, "error": append.err.strip()}
    if append.ok:
        answer["save"] = re.sub(r"^#.*\n", "", answers[1].out, flags=re.M)
        answer["nft"] = answers[2].out
        answer["list"] = answers[3].out
        answer["json"] = _without_handles(answers[4].out)
    return answer


def _without_handles(listing: str) -> str:
    """`nft -j list ruleset` without its handles: the replay's namespace numbers
    its tables on across the cases, which says nothing of the case itself."""
    def strip(node):
        if isinstance(node, dict):
            return {key: strip(value) for key, value in node.items() if key != "handle"}
        return [strip(item) for item in node] if isinstance(node, list) else node
    return json.dumps(strip(json.loads(listing))) if listing else listing


# ------------------------------------------------------------------ the replays

def replay_mock(cases: list[Case]) -> dict[str, dict]:
    return {case.key: _answer(answers) for case, answers in zip(cases, replay.replay_mock(list(map(_session, cases))))}


def replay_real(cases: list[Case]) -> dict[str, dict]:
    """Every case in one scratch network namespace (never the host's), the
    ruleset flushed after each; needs root and iptables-nft 1.8.9. Asked
    again each time (the golden answers are what it answered)."""
    answers = replay.replay_real(list(map(_session, cases)), ("iptables", "ip6tables", "nft"), refresh=True)
    return {case.key: _answer(a) for case, a in zip(cases, answers)}


def golden() -> dict[str, dict]:
    return json.loads(GOLDEN.read_text())


def record() -> None:
    """Ask the real tools (tests/golden/record_iptables) and keep their answers."""
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(replay_real(load_corpus()), indent=1, sort_keys=True) + "\n")


# ------------------------------------------------------------------ figures

def verdict(mock: dict, real: dict) -> str:
    """How the mock's answer to one case compares with the real tool's."""
    if mock["status"] == -1:
        return "python_exceptions"
    if real["status"] == 0:
        if mock["status"] == 0:
            if mock["save"] != real["save"]:
                return "saved_differently"
            listed = (mock["nft"], mock["list"]) == (real["nft"], real["list"])
            return "listed_identical" if listed else "accepted_identical"
        return "not_modelled" if NOT_MODELLED in mock["error"] else "refused_wrongly"
    if mock["status"] == 0:
        return "accepts_refused"
    same = (mock["status"], mock["error"]) == (real["status"], real["error"])
    return "refused_same_message" if same else "refused_other_message"


def figures(cases: list[Case], mock: dict, real: dict) -> dict[str, int]:
    counts = dict.fromkeys(("cases", "real_accepts", "accepted_identical", "listed_identical", "saved_differently",
                            "not_modelled", "refused_wrongly", "accepts_refused", "refused_same_message",
                            "refused_other_message", "python_exceptions"), 0)
    for case in cases:
        counts["cases"] += 1
        counts["real_accepts"] += real[case.key]["status"] == 0
        counts[verdict(mock[case.key], real[case.key])] += 1
    counts["accepted_identical"] += counts["listed_identical"]  # listed identically is saved identically too
    counts["json_identical"] = sum(1 for case in cases if real[case.key]["status"] == 0 == mock[case.key]["status"]
                                   and mock[case.key]["json"] == real[case.key]["json"])
    return counts


def main() -> None:
    cases = load_corpus()
    for name, value in figures(cases, replay_mock(cases), golden()).items():
        print(f"figure iptables.{name} {value} count")


if __name__ == "__main__":
    main()
