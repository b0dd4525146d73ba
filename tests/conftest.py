"""Fixtures the harness's own tests share."""
from __future__ import annotations

import signal
from pathlib import Path

import pytest

from harness.mockkernel.target import MockTarget
from harness.target import CommandError
from harness.testing import plan_router

REPOSITORY = Path(__file__).resolve().parents[1]

# A run started in the background by a shell without job control inherits SIGINT
# ignored, and so would the pytest sessions these tests start; the tests that
# interrupt one need it delivered (a handler, unlike SIG_IGN, is reset on exec).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def allure_run(pytester, monkeypatch):
    """Runs pytest with `--alluredir=results` in a process of its own: allure-commons'
    hooks are process-global, so an outer --alluredir run (.ci/test's) would take the
    inner run's results and fail them with KeyErrors."""
    monkeypatch.setenv("PYTHONPATH", str(REPOSITORY))  # this checkout's harness

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest_subprocess(*args, "--alluredir=results", "-p", "no:cacheprovider")
    return run


@pytest.fixture
def mock_router():
    """A mock DUT set up as the suites' router (harness.testing.plan_router()):
    (target, hosts); the target is closed after the test."""
    target = MockTarget()
    try:
        yield target, plan_router(target)
    finally:
        target.close()


@pytest.fixture
def refusal():
    """refusal(target, command, stdin=None): the tool's message for a command
    the target refuses (the CommandError's text after "`argv` failed: "); the
    test fails if the command succeeds."""
    def refused(target, command: str, stdin: str | None = None) -> str:
        with pytest.raises(CommandError) as info:
            target.sh(command, stdin=stdin)
        return str(info.value).split("failed: ", 1)[1]
    return refused
