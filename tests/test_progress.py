"""harness/progress.py: when a run draws its progress bar. The rule: after
SHOW_AFTER wall seconds, when stderr is a terminal; progress=True/False or
PJ_PROGRESS=1/0 force it; an enclosing bar's forcing holds for the bars inside
it. SHOW_AFTER is set to 0 or to never here: no test waits on the clock."""
from __future__ import annotations

import sys

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from harness import progress
from harness.mockkernel.target import MockTarget
from harness.progress import ProgressBar
from harness.target import PORTS
from harness.traffic import Profile, Stream

NEVER = 1e9


@pytest.fixture(autouse=True)
def no_setting(monkeypatch):
    monkeypatch.delenv("PJ_PROGRESS", raising=False)


def run_bar(description: str = "a run", progress_setting: bool | None = None) -> None:
    with ProgressBar(description, 10, progress=progress_setting) as bar:
        bar.update(5)


@pytest.mark.parametrize("show_after, drawn", [(0.0, True), (NEVER, False)])
def test_a_wanted_bar_is_drawn_only_once_its_run_took_show_after(monkeypatch, capsys, show_after, drawn):
    monkeypatch.setattr(progress, "SHOW_AFTER", show_after)
    run_bar(progress_setting=True)
    assert ("a run" in capsys.readouterr().err) is drawn


@pytest.mark.parametrize("terminal", [True, False])
def test_by_default_a_bar_is_drawn_only_when_stderr_is_a_terminal(monkeypatch, capsys, terminal):
    monkeypatch.setattr(progress, "SHOW_AFTER", 0.0)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    run_bar()
    assert ("a run" in capsys.readouterr().err) is terminal


@pytest.mark.parametrize("setting, drawn", [("0", False), ("1", True)])
def test_pj_progress_forces_the_bar(monkeypatch, capsys, setting, drawn):
    monkeypatch.setattr(progress, "SHOW_AFTER", 0.0)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: not drawn)
    monkeypatch.setenv("PJ_PROGRESS", setting)
    run_bar()
    assert ("a run" in capsys.readouterr().err) is drawn


def test_the_progress_argument_overrides_pj_progress(monkeypatch, capsys):
    monkeypatch.setattr(progress, "SHOW_AFTER", 0.0)
    monkeypatch.setenv("PJ_PROGRESS", "1")
    run_bar(progress_setting=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("outer", [True, False])
def test_a_forced_bar_forces_the_bars_of_the_runs_inside_it(monkeypatch, capsys, outer):
    monkeypatch.setattr(progress, "SHOW_AFTER", 0.0)
    monkeypatch.setenv("PJ_PROGRESS", "0" if outer else "1")
    with ProgressBar("campaign", 2, progress=outer) as bar:
        run_bar("trial")
        bar.update(1)
    run_bar("later run")
    err = capsys.readouterr().err
    assert ("campaign" in err, "trial" in err, "later run" in err) == (outer, outer, not outer)


def test_bars_drawn_together_share_one_display_that_ends_with_the_last(monkeypatch, capsys):
    monkeypatch.setattr(progress, "SHOW_AFTER", 0.0)
    with ProgressBar("campaign", 2, progress=True) as bar:
        bar.update(1)
        run_bar("trial")
        assert progress._live is not None and len(progress._live.tasks) == 1  # the trial's line is gone
    assert progress._live is None
    assert "campaign" in capsys.readouterr().err


@pytest.mark.parametrize("setting", ["0", "1"])
def test_the_mock_s_traffic_run_shows_its_simulated_seconds(monkeypatch, capsys, setting):
    monkeypatch.setattr(progress, "SHOW_AFTER", 0.0)
    monkeypatch.setenv("PJ_PROGRESS", setting)
    frame = Ether(src=PORTS[0].peer_mac, dst=PORTS[0].mac) / IP(src="10.0.0.2", dst="10.0.0.1") / UDP(dport=9)
    MockTarget().traffic(Profile((Stream.of("p0", frame),)), duration=0.01)
    assert ("0.010/0.010 s simulated" in capsys.readouterr().err) is (setting == "1")
