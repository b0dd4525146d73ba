"""Replaying command sessions on the mock and on the real tools.

A session is a list of steps run in order on one fresh ruleset; a step runs
only when the step it depends on succeeded. The mock runs each session on a
fresh Kernel; the real tools run every session in one scratch network
namespace (never the host's), `nft flush ruleset` between sessions, and their
answers are cached per steps and tool version, since they do not change.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.drivers.reaper import reaper

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "packet-journey" / "conformance"
STEP_SECONDS = 10  # a mock step taking longer is counted as a hang


@dataclass(frozen=True)
class Step:
    argv: tuple[str, ...]
    needs: int | None = None  # index of the step in the session that must have succeeded

    def to_json(self) -> list:
        return [list(self.argv), self.needs]


@dataclass(frozen=True)
class Answer:
    status: int  # exit status; -1 a Python exception out of the mock, -2 a hang
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.status == 0


@dataclass(frozen=True)
class SetupCase:
    """A line of a test file that sets the tables up (a set, its elements, an
    object, a chain): the command and its step in the file's session."""

    file: str
    lineno: int
    command: str
    step: int


Session = list[Step]
Answers = list[Answer | None]  # None: not run, its dependency failed


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang


def replay_mock(sessions: list[Session]) -> list[Answers]:
    """Every session on a fresh mock kernel. A front end raising anything but
    its tool's error is answered -1 with the exception; a step still running
    after STEP_SECONDS is answered -2."""
    from harness.mockkernel.kernel import Kernel
    from harness.mockkernel.target import sh
    from harness.target import CommandError

    previous = signal.signal(signal.SIGALRM, _alarm)
    out = []
    try:
        for session in sessions:
            kernel, answers = Kernel(), []
            for step in session:
                if step.needs is not None and not (answers[step.needs] and answers[step.needs].ok):
                    answers.append(None)
                    continue
                signal.alarm(STEP_SECONDS)
                try:
                    answers.append(Answer(0, sh(kernel, list(step.argv)), ""))
                except CommandError as err:
                    answers.append(Answer(err.returncode, "", str(err).split("failed: ", 1)[-1]))
                except _Hang:
                    answers.append(Answer(-2, "", f"hang: no answer in {STEP_SECONDS} s"))
                except Exception as exc:  # noqa: BLE001 - a front end's crash is what this counts
                    answers.append(Answer(-1, "", f"Python exception: {type(exc).__name__}: {exc}"))
                finally:
                    signal.alarm(0)
            out.append(answers)
    finally:
        signal.signal(signal.SIGALRM, previous)
    return out


_IN_NAMESPACE = """
import json, subprocess, sys
out = []
for session in json.load(sys.stdin):
    answers = []
    for argv, needs in session:
        if needs is not None and (answers[needs] is None or answers[needs][0] != 0):
            answers.append(None)
            continue
        try:
            done = subprocess.run(argv, capture_output=True, text=True)
            answers.append((done.returncode, done.stdout, done.stderr))
        except OSError as err:  # a test file's external command this machine lacks, as the shell says it
            answers.append((127, "", f"{argv[0]}: {err.strerror}"))
    out.append(answers)
    subprocess.run(["nft", "flush", "ruleset"], check=True)
json.dump(out, sys.stdout)
"""


def tool_versions(tools: tuple[str, ...]) -> str:
    return " ".join(subprocess.run([tool, "--version"], capture_output=True, text=True).stdout.strip()
                    for tool in tools)


def replay_real(sessions: list[Session], tools: tuple[str, ...], refresh: bool = False) -> list[Answers]:
    """Every session in one scratch network namespace; needs root and the tools.
    Each session's answers are cached in CACHE under a digest of its steps and
    the tools' versions, so a replay of some files reuses a replay of all."""
    versions = tool_versions(tools)
    payloads = [json.dumps([step.to_json() for step in session]) for session in sessions]
    paths = [CACHE / f"{tools[0]}-{hashlib.sha256((versions + p).encode()).hexdigest()[:24]}.json" for p in payloads]
    missing = [i for i, path in enumerate(paths) if refresh or not path.exists()]
    if missing:
        if os.geteuid() != 0:
            raise SystemExit("the real tools run in a scratch network namespace: run as root "
                             "(or reuse a cached run of the same sessions)")
        namespace = f"pjconf{os.getpid()}"
        reaper().netns(namespace)  # deleted even if this run is killed
        subprocess.run(["ip", "netns", "add", namespace], check=True)
        try:
            done = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", _IN_NAMESPACE],
                                  input="[" + ",".join(payloads[i] for i in missing) + "]",
                                  capture_output=True, text=True, check=True)
        finally:
            subprocess.run(["ip", "netns", "del", namespace], check=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        for i, answers in zip(missing, json.loads(done.stdout)):
            paths[i].write_text(json.dumps(answers))
    return [[Answer(*answer) if answer is not None else None for answer in json.loads(path.read_text())]
            for path in paths]
