"""nftables' own regression tests (tests/py/*/*.t of a checkout) replayed as
nftables' tests/py/nft-test.py replays them: per file, the chains (`:`), the
tables (`*`, each rule is added to every table of the file and every chain the
table names), sets (`!`), set elements (`?`) and stateful objects (`%`); per
rule, `flush table`, `add rule`, then `nft -s -p list table` (stateless,
numeric protocols, as nft-test.py lists) and `nft -j list table`.

The real nft 1.0.6 is the judge, not the file's ok/fail: a case is the rule
added to one chain of one table, and the mock is compared with what the real
nft answered on this machine. Figures (`figure nft.NAME N count`):
- cases, real_accepts: the rule cases of the chosen directories, and how many
  of them the real nft accepts;
- listed_identical: of those, accepted by the mock and listed as nft lists
  them (the chain's rules in `nft -s -p list table`); json_identical: the
  same in `nft -j list table` (handles aside);
- listed_differently, not_modelled, refused_wrongly: real accepts, the mock
  lists otherwise, says "not modelled", or refuses with an error;
- accepts_refused: the mock accepts what the real nft refuses;
- refused_same_message, refused_other_message: both refuse, with the same
  first line of error or not;
- needs_missing_module: the real nft refuses with the kernel's ENOENT for a
  statement whose kernel module this host's kernel lacks (MISSING_MODULES:
  nft_queue, nft_flow_offload), and the mock, which models a kernel that has it, accepts (not
  counted in accepts_refused; `--show needs_missing_module` names the module);
  missing_module_listed_as_file: of those, listed by the mock as the test
  file says nft lists them (its third field, or the rule itself);
- python_exceptions, hangs: a front end raising something else than its error,
  or not answering in time;
- setup_cases, setup_disagreements: the `!`/`?`/`%` lines, and those where the
  mock's accept or refuse differs from nft's; setup_python_exceptions: the
  steps outside the cases (tables, chains, sets, elements, objects, flushes)
  where a front end raised a Python exception.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from harness.conformance.replay import Answer, Session, SetupCase, Step, replay_mock, replay_real

HEADLINE_DIRS = ("ip", "inet", "any", "ip6")
ALL_DIRS = ("ip", "inet", "any", "ip6", "arp", "bridge", "netdev")
NOT_MODELLED = "not modelled"
# the kernel modules statements need that this host's kernel (6.18, the netns lab's) is
# built without: nf_tables_newrule() finds no expression type, ENOENT
MISSING_MODULES = (("nft_queue", re.compile(r"(?:^|\s)queue(?:\s|$)")),
                   ("nft_flow_offload", re.compile(r"(?:^|\s)flow (?:add|offload) @")))
KERNEL_LACKS_IT = "Error: Could not process rule: No such file or directory"
LIST = ("nft", "-s", "-p")


@dataclass(frozen=True)
class Case:
    file: str  # relative to tests/py, e.g. any/meta.t
    lineno: int
    table: str  # "family name"
    chain: str
    rule: str
    expected: str  # the file's ok/fail, for reading only
    add: int  # index of the `add rule` step in the file's session
    listed: str = ""  # how the file says nft lists the rule (its third field, else the rule)

    @property
    def missing_module(self) -> str | None:
        """The module of MISSING_MODULES the rule needs, if any."""
        return next((name for name, pattern in MISSING_MODULES if pattern.search(self.rule)), None)

    @property
    def key(self) -> str:
        return f"{self.file}:{self.lineno} {self.table} {self.chain}"


@dataclass
class FileReplay:
    file: str
    session: Session = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)
    setup: list[SetupCase] = field(default_factory=list)

    def step(self, text: str, needs: int | None = None, argv: tuple[str, ...] = ("nft",)) -> int:
        self.session.append(Step((*argv, text), needs))
        return len(self.session) - 1


def test_files(checkout: Path, dirs: tuple[str, ...]) -> list[Path]:
    root = checkout / "tests" / "py"
    if not root.is_dir():
        raise SystemExit(f"{checkout} is not a checkout of nftables: no tests/py in it")
    return [path for d in dirs for path in sorted((root / d).glob("*.t"))]


def parse_file(path: Path, root: Path) -> FileReplay:
    """The session nft-test.py's run_test_file() runs for one file."""
    replay = FileReplay(str(path.relative_to(root)))
    chains: dict[str, str] = {}
    tables: list[tuple[str, list[str]]] = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line[0] in "#-":
            continue
        head, body = line[0], line.rstrip()[1:]
        if head == ":":
            name, config = (body.split(";") + [""])[:2]
            chains.setdefault(name, config)  # chain_get_by_name(): the first chain of that name
        elif head == "*":
            family, name, names = body.split(";")[:3]
            table = f"{family} {name}"
            tables.append((table, names.split(",")))
            replay.step(f"add table {table}")
            for chain in names.split(","):
                config = chains.get(chain, "")
                replay.step(f"add chain {table} {chain}" + (f" {{ {config}; }}" if config else ""))
        elif head == "!":
            text = body.split(";")[0]
            for table, _ in tables:
                replay.setup.append(SetupCase(replay.file, lineno, f"add set {table} {_set_spec(text)}",
                                              replay.step(f"add set {table} {_set_spec(text)}")))
        elif head == "?":
            text = body.split(";")[0]
            name, _, elements = text.partition(" ")
            for table, _ in tables:
                command = f"add element {table} {name} {{ {', '.join(elements.split(','))} }}"
                replay.setup.append(SetupCase(replay.file, lineno, command, replay.step(command)))
        elif head == "%":
            brace = line.rfind("}")
            text = line[1:brace + 1] if brace >= 0 else body.split(";")[0]
            for table, _ in tables:
                command = f"add {_obj_spec(text, table)}"
                replay.setup.append(SetupCase(replay.file, lineno, command, replay.step(command)))
        else:
            fields = line.split(";")
            if len(fields) not in (2, 3) or fields[1].rstrip() not in ("ok", "fail"):
                continue
            for table, names in tables:
                for chain in names:
                    replay.step(f"flush table {table}")
                    add = replay.step(f"add rule {table} {chain} {fields[0]}")
                    replay.step(f"list table {table}", add, LIST)
                    replay.step(f"list table {table}", add, ("nft", "-j"))
                    listed = fields[2].strip() if len(fields) == 3 else fields[0].strip()
                    replay.cases.append(Case(replay.file, lineno, table, chain, fields[0], fields[1].rstrip(), add,
                                             listed))
    return replay


def _set_spec(text: str) -> str:
    """set_process(): `name type T [. T]... [timeout X] [flags F]`."""
    tokens = text.split(" ")
    name, kind, i = tokens[0], tokens[2], 3
    while len(tokens) > i and tokens[i] == ".":
        kind += " . " + tokens[i + 1]
        i += 2
    timeout = flags = ""
    if len(tokens) == i + 2 and tokens[i] == "timeout":
        timeout, i = f"timeout {tokens[i + 1]};", i + 2
    if len(tokens) == i + 2 and tokens[i] == "flags":
        flags = f"flags {tokens[i + 1]}; "
    return f"{name} {{ type {kind};{timeout} {flags}}}"


def _obj_spec(text: str, table: str) -> str:
    """obj_process(): `name type KIND [spec]`, `ct helper|timeout|expectation` kinds."""
    tokens = text.split(" ")
    name, kind = tokens[0], tokens[2]
    if kind == "ct" and len(tokens) > 3 and tokens[3] in ("helper", "timeout", "expectation"):
        kind, tokens[3] = f"ct {tokens[3]}", ""
    spec = " ".join(tokens[3:]) if len(tokens) > 3 else ""
    return f"{kind} {table} {name} {spec}"


def chain_rules(listing: str, chain: str) -> list[str]:
    """The rules of `chain` in a `nft list table` listing, as lines without
    indentation; the base chain's type/hook line and the chain's comment left out."""
    rules, inside = [], False
    for line in listing.splitlines():
        text = line.strip()
        if not inside:
            inside = text == f"chain {chain} {{"
            continue
        if text == "}":
            break
        if text and not text.startswith(("type ", "comment ")):
            rules.append(text)
    return rules


def json_rules(listing: str, chain: str) -> list:
    try:
        nodes = json.loads(listing)["nftables"]
    except (ValueError, KeyError, TypeError):
        return [listing]
    rules = [node["rule"] for node in nodes if "rule" in node and node["rule"].get("chain") == chain]
    return [{k: v for k, v in rule.items() if k != "handle"} for rule in rules]


def _first_line(error: str) -> str:
    return error.strip().splitlines()[0] if error.strip() else ""


def _case_answers(answers: list[Answer | None], case: Case) -> list[Answer | None]:
    """The case's own steps: the `add rule` and its two listings."""
    return answers[case.add:case.add + 3]


def verdict(mock: list[Answer | None], real: list[Answer | None], case: Case) -> tuple[str, bool]:
    """How the mock's answer to `case` compares with the real nft's, and whether
    the JSON listing is identical too. A Python exception or a hang in any of the
    case's steps (the add or either listing) is counted as such."""
    statuses = {a.status for a in _case_answers(mock, case) if a is not None}
    if -1 in statuses:
        return "python_exceptions", False
    if -2 in statuses:
        return "hangs", False
    m, r = mock[case.add], real[case.add]
    if r.ok:
        if not m.ok:
            return ("not_modelled" if NOT_MODELLED in m.err else "refused_wrongly"), False
        m_list, r_list = mock[case.add + 1], real[case.add + 1]
        if m_list is None or not m_list.ok:
            return "listed_differently", False
        chain = case.chain
        same = chain_rules(m_list.out, chain) == chain_rules(r_list.out, chain)
        m_json, r_json = mock[case.add + 2], real[case.add + 2]
        json_same = bool(m_json and m_json.ok and json_rules(m_json.out, chain) == json_rules(r_json.out, chain))
        return ("listed_identical" if same else "listed_differently"), json_same
    if m.ok:
        if _first_line(r.err) == KERNEL_LACKS_IT and case.missing_module:
            return "needs_missing_module", False
        return "accepts_refused", False
    return ("refused_same_message" if _first_line(m.err) == _first_line(r.err) else "refused_other_message"), False


SETUP_FIGURES = ("setup_cases", "setup_disagreements", "setup_python_exceptions")
KINDS = ("listed_identical", "listed_differently", "not_modelled", "refused_wrongly", "accepts_refused",
         "refused_same_message", "refused_other_message", "needs_missing_module", "python_exceptions", "hangs")


@dataclass
class Outcome:
    case: Case
    kind: str
    json_same: bool
    mock: list[Answer | None]
    real: list[Answer | None]

    @property
    def listed_as_file(self) -> bool:
        """The mock lists the rule as the test file says nft lists it."""
        listing = self.mock[self.case.add + 1]
        return bool(listing and listing.ok and chain_rules(listing.out, self.case.chain) == [self.case.listed])

    def describe(self) -> str:
        c, m, r = self.case, self.mock[self.case.add], self.real[self.case.add]
        lines = [f"{c.key}: {c.rule}"]
        if self.kind in ("python_exceptions", "hangs"):
            m = next(a for a in _case_answers(self.mock, c) if a is not None and a.status in (-1, -2))
        if self.kind in ("listed_differently",):
            real_rules = chain_rules(self.real[c.add + 1].out, c.chain)
            mock_list = self.mock[c.add + 1]
            mock_rules = chain_rules(mock_list.out, c.chain) if mock_list and mock_list.ok else [
                mock_list.err if mock_list else "?"]
            lines += [f"    real: {' | '.join(real_rules)}", f"    mock: {' | '.join(mock_rules)}"]
        elif self.kind == "accepts_refused":
            lines.append(f"    real: {_first_line(r.err)}")
        elif self.kind == "needs_missing_module":
            mock_list = self.mock[c.add + 1]
            listed = " | ".join(chain_rules(mock_list.out, c.chain)) if mock_list and mock_list.ok else "?"
            lines += [f"    needs {c.missing_module}, which this kernel lacks (real: {_first_line(r.err)})",
                      f"    mock lists: {listed}" + ("" if self.listed_as_file else f" (the file: {c.listed})")]
        elif self.kind == "refused_other_message":
            lines += [f"    real: {_first_line(r.err)}", f"    mock: {_first_line(m.err)}"]
        elif self.kind != "listed_identical":
            lines.append(f"    mock: {_first_line(m.err)}")
        return "\n".join(lines)


def run(checkout: Path, dirs: tuple[str, ...], only: str | None = None, refresh: bool = False
        ) -> tuple[list[Outcome], Counter]:
    root = checkout / "tests" / "py"
    replays = [parse_file(path, root) for path in test_files(checkout, dirs)]
    if only:
        replays = [r for r in replays if re.search(only, r.file)]
    sessions = [r.session for r in replays]
    real = replay_real(sessions, ("nft",), refresh)
    mock = replay_mock(sessions)
    outcomes, setup = [], Counter()
    for replay, m, r in zip(replays, mock, real):
        for case in replay.cases:
            kind, json_same = verdict(m, r, case)
            outcomes.append(Outcome(case, kind, json_same, m, r))
        for s in replay.setup:
            setup["setup_cases"] += 1
            mine, theirs = m[s.step], r[s.step]
            if mine is None or theirs is None or mine.ok != theirs.ok:
                setup["setup_disagreements"] += 1
        case_steps = {case.add + i for case in replay.cases for i in range(3)}
        setup["setup_python_exceptions"] += sum(1 for i, a in enumerate(m)
                                                if i not in case_steps and a is not None and a.status == -1)
    return outcomes, setup


def figures(outcomes: list[Outcome], setup: Counter) -> dict[str, int]:
    counts = Counter(o.kind for o in outcomes)
    result = {"cases": len(outcomes), "real_accepts": sum(1 for o in outcomes if o.real[o.case.add].ok)}
    result.update({kind: counts[kind] for kind in KINDS})
    result["json_identical"] = sum(o.json_same for o in outcomes)
    result["missing_module_listed_as_file"] = sum(o.kind == "needs_missing_module" and o.listed_as_file
                                                  for o in outcomes)
    result.update({name: setup[name] for name in SETUP_FIGURES})
    return result
