"""The suite-writing kit (harness.testing) as a user meets it: the README's suite,
copied into a directory outside the repository, runs on the mock and passes."""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"

pytest_plugins = ["pytester"]


def readme_suite() -> str:
    """The first python block of the README's "Writing a suite" section, as printed."""
    section = README.read_text().split("## Writing a suite", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block, "README.md's \"Writing a suite\" section has no ```python block"
    return block.group(1)


def test_the_readme_suite_runs_as_printed_outside_the_repository(pytester):
    assert not pytester.path.resolve().is_relative_to(README.parent)
    pytester.makepyfile(test_ttl=readme_suite())
    result = pytester.runpytest("--target=mock", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_a_suite_anywhere_gets_the_hosts_and_router_fixtures_without_a_conftest(pytester):
    pytester.makepyfile(test_plan="""
        from harness.testing import Host

        def test_plan(target, router):
            assert [(h.ip, h.dut_ip, h.mac) for h in router] == [
                ("10.0.0.2", "10.0.0.1", "02:00:00:00:01:01"),
                ("10.0.1.2", "10.0.1.1", "02:00:00:00:01:02"),
                ("10.0.2.2", "10.0.2.1", "02:00:00:00:01:03")]
            assert router[1] == Host(target.ports[1])
            assert "10.0.1.1/24" in target.sh("ip addr show dev p1")
            assert "02:00:00:00:01:03 PERMANENT" in target.sh("ip neigh show 10.0.2.2 dev p2")
            assert target.sh("sysctl -n net.ipv4.ip_forward").strip() == "1"
    """)
    assert not list(pytester.path.glob("conftest.py"))
    result = pytester.runpytest("--target=mock", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_plan_router_builds_the_plan_outside_pytest_as_the_router_fixture_does():
    from harness.mockkernel.target import MockTarget
    from harness.testing import plan_router
    dut = MockTarget()
    try:
        hosts = plan_router(dut)
        assert [h.port.name for h in hosts] == ["p0", "p1", "p2"]
        assert "inet 10.0.2.1/24" in dut.sh("ip addr show dev p2")
        assert "10.0.0.2 dev p0 lladdr 02:00:00:00:01:01 PERMANENT" in dut.sh("ip neigh show")
        assert dut.sh("sysctl -n net.ipv4.ip_forward").strip() == "1"
    finally:
        dut.close()
