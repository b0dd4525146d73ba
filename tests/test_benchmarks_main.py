"""`python -m benchmarks`: which names run and where options go."""
from __future__ import annotations

from benchmarks import __main__ as benchmarks_main


def test_options_after_one_name_go_to_that_benchmark(monkeypatch):
    seen = []
    monkeypatch.setitem(benchmarks_main.BENCHMARKS, "lab_faults", lambda argv: seen.append(argv) or 0)
    assert benchmarks_main.main(["lab_faults", "--minutes", "30"]) == 0
    assert seen == [["--minutes", "30"]]


def test_options_for_a_benchmark_that_takes_none_or_for_several_are_refused(capsys):
    assert benchmarks_main.main(["ipv4_path", "--minutes", "3"]) == 2
    assert benchmarks_main.main(["lab_faults", "ipv4_path", "--minutes", "3"]) == 2
    assert "go to one benchmark that takes them: lab_faults" in capsys.readouterr().err


def test_an_unknown_name_is_refused_naming_those_there_are(capsys):
    assert benchmarks_main.main(["nosuch"]) == 2
    assert "unknown benchmark(s): nosuch; have: ipv4_path" in capsys.readouterr().err
