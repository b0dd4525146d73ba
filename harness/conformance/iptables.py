"""iptables' own extension tests (extensions/*.t of a checkout) replayed as
iptables 1.8.9's iptables-test.py replays them in its per-rule mode
(run_test_file()): `:CHAIN,CHAIN` names the chains of the lines that follow,
`*table` their table, `@cmd` and `%cmd` run as they are; a rule line
`RULE;SAVED;RESULT[;VARIANT[;OTHER]]` is appended to each chain
(`iptables -A CHAIN [-t TABLE] RULE`), then `iptables-save` is searched for
`CHAIN SAVED` (`=`: the rule itself), then the rule is deleted (`-D`).
A file's tool is its prefix's (run_test_file()): libipt_ and libxt_ (and
iptables.t) iptables, libip6t_ ip6tables; libarpt_ and libebt_ (arptables,
ebtables) are not replayed.

The real iptables-nft 1.8.9 is the judge, not the file's OK/FAIL: a case is
one rule line appended to one chain, and the mock is compared with what the
real tool answered in a scratch network namespace of this machine. Figures
(`figure iptables.NAME N count`):
- cases, real_accepts: the rule cases of the chosen files and how many of them
  the real tool accepts;
- saved_identical: of those, accepted by the mock and saved as iptables-save
  saves them (the case's table, counters and comments aside); nft_identical:
  the same in `nft list ruleset`; deleted_differently: accepted by both, and
  `-D` of the rule answered otherwise;
- saved_differently, not_modelled, refused_wrongly: real accepts, the mock
  saves otherwise, says "not modelled", or refuses with an error;
- accepts_refused: the mock accepts what the real tool refuses;
- refused_same_message, refused_other_message: both refuse, with the same
  first line of error or not;
- python_exceptions, hangs: a front end raising something else than its error,
  or not answering in time, at any step of the case;
- expected_ok_real_refuses: the file says OK (for the nf_tables variant) and
  the real tool refuses here, mostly for a kernel module this kernel lacks
  (`--show expected_ok_real_refuses` names them with the tool's message);
- expectation_met: real accepts whose iptables-save holds the line's
  expectation as iptables-test.py searches for it (a check of the replay);
- setup_cases, setup_disagreements: the `@`/`%` lines, and those where the
  mock's accept or refuse differs from the real tool's.
"""
from __future__ import annotations

import re
import shlex
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from harness.conformance.replay import Answer, Session, SetupCase, Step, replay_mock, replay_real

FAMILIES = {"ipv4": "iptables", "ipv6": "ip6tables"}
HEADLINE_FAMILIES = ("ipv4",)
NOT_MODELLED = "not modelled"
# iptables-test.py's variant_res(): a result scoped to a variant applies to the
# nf_tables one as written, to the legacy one inverted (or as the fifth field says).
_INVERSE = {"OK": "FAIL", "FAIL": "OK", "NOMATCH": "OK"}


def tool_of(name: str) -> str | None:
    """The tool run_test_file() replays a file with; None for arptables and
    ebtables files, which the mock's replay leaves out."""
    if name.startswith(("libarpt_", "libebt_")):
        return None
    return "ip6tables" if name.startswith("libip6t_") else "iptables"


def expected_result(fields: list[str]) -> str:
    """The line's result for iptables-nft, as variant_res() reads `;VARIANT[;ALT]`."""
    result = fields[2].rstrip()
    if len(fields) > 3:
        variant, alt = fields[3].rstrip(), (fields[4].rstrip() if len(fields) > 4 else None)
        if variant != "NFT":
            result = alt if alt is not None else _INVERSE[result]
    return result


@dataclass(frozen=True)
class Case:
    file: str
    lineno: int
    tool: str
    table: str  # "" for the tool's default (filter)
    chain: str
    rule: str
    saved: str  # what iptables-test.py searches for in iptables-save: "CHAIN RULE"
    expected: str  # OK, FAIL or NOMATCH for iptables-nft (for reading only)
    add: int  # index of the append step in the file's session; save, nft list and -D follow

    @property
    def key(self) -> str:
        return f"{self.file}:{self.lineno} {self.table or 'filter'} {self.chain}"


@dataclass
class FileReplay:
    file: str
    tool: str
    session: Session = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)
    setup: list[SetupCase] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)  # lines iptables-test.py cannot run

    def step(self, argv: list[str], needs: int | None = None) -> int:
        self.session.append(Step(tuple(argv), needs))
        return len(self.session) - 1


def test_files(checkout: Path) -> list[Path]:
    root = checkout / "extensions"
    if not (root.is_dir() and (checkout / "iptables-test.py").is_file()):
        raise SystemExit(f"{checkout} is not a checkout of iptables: no extensions/ and iptables-test.py in it")
    return sorted(root.glob("*.t"))


def skipped_files(checkout: Path) -> list[str]:
    return [path.name for path in test_files(checkout) if tool_of(path.name) is None]


def parse_text(name: str, text: str, tool: str) -> FileReplay:
    """The session run_test_file() runs for one file's text."""
    replay = FileReplay(name, tool)
    table, chains = "", []
    for lineno, line in enumerate(text.splitlines(keepends=True), 1):
        if line[0] == "#" or not line.strip():
            continue
        if line[0] == ":":
            chains = line.rstrip()[1:].split(",")
        elif line[0] in "@%":
            command = line.rstrip()[1:]
            replay.setup.append(SetupCase(name, lineno, command, replay.step(_split(command))))
        elif line[0] == "*":
            table = line.rstrip()[1:]
        elif not chains:
            replay.broken.append(f"{name}:{lineno}: a rule before any chain")
        else:
            fields = line.split(";")
            if len(fields) < 3:
                replay.broken.append(f"{name}:{lineno}: not RULE;SAVED;RESULT")
                continue
            for chain in chains:
                in_table = ["-t", table] if table else []
                rule = _split(fields[0])
                add = replay.step([tool, "-A", chain, *in_table, *rule])
                replay.step([f"{tool}-save"], add)
                replay.step(["nft", "list", "ruleset"], add)
                replay.step([tool, "-D", chain, *in_table, *rule], add)
                saved = chain + " " + (fields[0] if fields[1] == "=" else fields[1])
                replay.cases.append(Case(name, lineno, tool, table, chain, fields[0], saved,
                                         expected_result(fields), add))
    return replay


def _split(command: str) -> list[str]:
    """The words the shell (iptables-test.py runs commands with shell=True) makes of a command."""
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def parse_file(path: Path) -> FileReplay | None:
    tool = tool_of(path.name)
    return parse_text(path.name, path.read_text(), tool) if tool else None


def table_section(save: str, table: str) -> list[str]:
    """The lines of one table in an iptables-save output, its counters and
    comments left out: `*table` to `COMMIT`."""
    lines, inside = [], False
    for line in save.splitlines():
        if line.startswith("*"):
            inside = line[1:] == table
        if inside and not line.startswith("#"):
            lines.append(re.sub(r" \[\d+:\d+\]$", "", line))
        if inside and line == "COMMIT":
            break
    return lines


def _first_line(error: str) -> str:
    return error.strip().splitlines()[0] if error.strip() else ""


KINDS = ("saved_identical", "saved_differently", "not_modelled", "refused_wrongly", "accepts_refused",
         "refused_same_message", "refused_other_message", "python_exceptions", "hangs")
SHOWN = KINDS + ("expected_ok_real_refuses", "deleted_differently", "nft_differently")


def verdict(mock: list[Answer | None], real: list[Answer | None], case: Case) -> str:
    """How the mock's answer to `case` compares with the real tool's."""
    steps = [mock[i] for i in range(case.add, case.add + 4)]
    if any(a is not None and a.status == -1 for a in steps):
        return "python_exceptions"
    if any(a is not None and a.status == -2 for a in steps):
        return "hangs"
    m, r = mock[case.add], real[case.add]
    if r.ok:
        if not m.ok:
            return "not_modelled" if NOT_MODELLED in m.err else "refused_wrongly"
        m_save, r_save = mock[case.add + 1], real[case.add + 1]
        table = case.table or "filter"
        same = m_save.ok and table_section(m_save.out, table) == table_section(r_save.out, table)
        return "saved_identical" if same else "saved_differently"
    if m.ok:
        return "accepts_refused"
    return "refused_same_message" if _first_line(m.err) == _first_line(r.err) else "refused_other_message"


@dataclass
class Outcome:
    case: Case
    kind: str
    mock: list[Answer | None]
    real: list[Answer | None]

    def _answer(self, offset: int, real: bool) -> Answer | None:
        return (self.real if real else self.mock)[self.case.add + offset]

    @property
    def real_accepts(self) -> bool:
        return self._answer(0, True).ok

    @property
    def expected_ok_real_refuses(self) -> bool:
        return self.case.expected in ("OK", "NOMATCH") and not self.real_accepts

    @property
    def expectation_met(self) -> bool:
        save = self._answer(1, True)
        return self.real_accepts and save.ok and self.case.saved in save.out

    @property
    def nft_identical(self) -> bool:
        m, r = self._answer(2, False), self._answer(2, True)
        return self.real_accepts and bool(m and m.ok and r and m.out == r.out)

    @property
    def deleted_differently(self) -> bool:
        m, r = self._answer(3, False), self._answer(3, True)
        return self.real_accepts and self._answer(0, False).ok and (m is None or m.ok != r.ok)

    def is_a(self, kind: str) -> bool:
        if kind == "expected_ok_real_refuses":
            return self.expected_ok_real_refuses
        if kind == "deleted_differently":
            return self.deleted_differently
        if kind == "nft_differently":
            return self.kind == "saved_identical" and not self.nft_identical
        return self.kind == kind

    def describe(self, kind: str) -> str:
        c = self.case
        lines = [f"{c.key}: {c.rule.strip()}"]
        m, r = self._answer(0, False), self._answer(0, True)
        table = c.table or "filter"
        if kind == "saved_differently":
            m_save, r_save = self._answer(1, False), self._answer(1, True)
            real_rules = [x for x in table_section(r_save.out, table) if x.startswith("-A")]
            mock_rules = ([x for x in table_section(m_save.out, table) if x.startswith("-A")]
                          if m_save and m_save.ok else [m_save.err if m_save else "?"])
            lines += [f"    real: {' | '.join(real_rules)}", f"    mock: {' | '.join(mock_rules)}"]
        elif kind == "nft_differently":
            real_lines = self._answer(2, True).out.splitlines()
            mock_lines = self._answer(2, False).out.splitlines()
            lines += [f"    real: {' | '.join(x.strip() for x in real_lines if x not in mock_lines)}",
                      f"    mock: {' | '.join(x.strip() for x in mock_lines if x not in real_lines)}"]
        elif kind == "deleted_differently":
            lines += [f"    real: {self._answer(3, True)}", f"    mock: {self._answer(3, False)}"]
        elif kind in ("accepts_refused", "expected_ok_real_refuses"):
            lines.append(f"    real: {_first_line(r.err)}")
        elif kind == "refused_other_message":
            lines += [f"    real: {_first_line(r.err)}", f"    mock: {_first_line(m.err)}"]
        else:
            failed = next((a for a in self.mock[c.add:c.add + 4] if a is not None and not a.ok), m)
            lines.append(f"    mock: {_first_line(failed.err)}")
        return "\n".join(lines)


def run(checkout: Path, families: tuple[str, ...] = HEADLINE_FAMILIES, only: str | None = None,
        refresh: bool = False) -> tuple[list[Outcome], Counter]:
    tools = {FAMILIES[f] for f in families}
    replays = [r for r in map(parse_file, test_files(checkout)) if r is not None and r.tool in tools]
    if only:
        replays = [r for r in replays if re.search(only, r.file)]
    sessions = [r.session for r in replays]
    real = replay_real(sessions, ("iptables", "nft"), refresh)
    mock = replay_mock(sessions)
    outcomes, setup = [], Counter()
    for replay, m, r in zip(replays, mock, real):
        outcomes += [Outcome(case, verdict(m, r, case), m, r) for case in replay.cases]
        for s in replay.setup:
            setup["setup_cases"] += 1
            mine, theirs = m[s.step], r[s.step]
            if mine is None or theirs is None or mine.ok != theirs.ok:
                setup["setup_disagreements"] += 1
            if mine is not None and mine.status == -1:
                setup["setup_python_exceptions"] += 1
        setup["broken_lines"] += len(replay.broken)
    return outcomes, setup


def figures(outcomes: list[Outcome], setup: Counter) -> dict[str, int]:
    counts = Counter(o.kind for o in outcomes)
    result = {"cases": len(outcomes), "real_accepts": sum(o.real_accepts for o in outcomes)}
    result.update({kind: counts[kind] for kind in KINDS})
    result["nft_identical"] = sum(o.nft_identical for o in outcomes)
    result["deleted_differently"] = sum(o.deleted_differently for o in outcomes)
    result["expected_ok_real_refuses"] = sum(o.expected_ok_real_refuses for o in outcomes)
    result["expectation_met"] = sum(o.expectation_met for o in outcomes)
    result.update({k: setup[k] for k in ("setup_cases", "setup_disagreements", "setup_python_exceptions",
                                          "broken_lines")})
    return result
