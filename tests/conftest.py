"""Fixtures the harness's own tests share."""
from __future__ import annotations

import signal
from pathlib import Path

import pytest

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
