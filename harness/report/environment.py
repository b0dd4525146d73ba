"""Each target's environment in the report: what its results ran on.

The first process that builds a target (each xdist worker holds one; a lab worker its
own station) writes `environment-<target>.json` beside the Allure results: the kernel,
the tools that configured and observed it (nft, iproute2, bpftool, bpftrace), the
compiler of the eBPF objects, the harness's commit, and for a lab DUT its station,
distribution and TRex. allurerc.mjs shows each file as its environment's variables;
the sign-off summary lists them (harness.report.summary.environment_info() reads them).
"""
from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path
from typing import Callable, Sequence

import pytest

from harness.target import CommandError, Target

REPOSITORY = Path(__file__).resolve().parents[2]  # the harness's checkout, whose commit the results name

MODELLED_KERNEL = "6.18"  # the kernel the mock follows (its drop reasons are 6.18's BTF: harness/dropreason.py)
TOOL_VERSIONS = (("nft", ["nft", "--version"]), ("iproute2", ["ip", "-V"]),
                 ("bpftool", ["bpftool", "version"]), ("bpftrace", ["bpftrace", "--version"]))
ENVIRONMENT_WRITTEN = pytest.StashKey[bool]()


def record_environment(config: pytest.Config, target: str, dut: Target) -> None:
    """Writes `target`'s environment beside the Allure results (with --alluredir), once
    per process: each xdist worker holds a target, and a lab worker its own station."""
    results_dir = config.getoption("allure_report_dir", None)
    if not results_dir or config.stash.get(ENVIRONMENT_WRITTEN, False) or getattr(dut, "dry_run", False):
        return
    config.stash[ENVIRONMENT_WRITTEN] = True
    info = environment(target, dut)
    name = f"{target}-{info['station']}" if "station" in info else target
    path = Path(results_dir) / f"environment-{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info, indent=2) + "\n")


def environment(target: str, dut: Target) -> dict[str, str]:
    """What the results of `target` ran on, in the order the report shows it: the kernel,
    the tools that configured and observed it, the compiler of the eBPF objects, the
    harness's commit; for a lab DUT its station, distribution and TRex."""
    info = {"target": target}
    if target == "mock":
        info["kernel"] = f"mock model of Linux {MODELLED_KERNEL} (harness/mockkernel)"
    elif target == "netns":
        info["kernel"] = platform.release()  # the namespaces run on this host's kernel
        info |= {tool: _first_line(_run_here, argv) for tool, argv in TOOL_VERSIONS}
    else:
        station = dut.station
        info |= {"station": station.name, "kernel": station.identity["dut"]["kernel"],
                 "distribution": station.identity["dut"]["distribution"]}
        info |= {tool: _first_line(station.host.run, argv) for tool, argv in TOOL_VERSIONS}
        info["trex"] = _trex_version(station.identity["trex"]["version"])
    info["clang"] = _first_line(_run_here, ["clang", "--version"])
    info["python"] = platform.python_version()
    info["commit"] = _first_line(_run_here, ["git", "-C", str(REPOSITORY), "describe", "--always", "--dirty"])
    return info


def _trex_version(version: dict | str) -> str:
    """The TRex server's get_version answer (version, mode, who built it...) on one line."""
    if not isinstance(version, dict):
        return str(version)
    return ", ".join(str(value) if key == "version" else f"{key} {value}" for key, value in version.items() if value)


def _run_here(argv: Sequence[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout


def _first_line(run: Callable[[Sequence[str]], str], argv: Sequence[str]) -> str:
    try:
        output = run(argv)
    except FileNotFoundError:
        return f"{argv[0]} not found"
    except subprocess.CalledProcessError as exc:
        return f"`{' '.join(argv)}` failed: {(exc.stderr or exc.stdout).strip() or exc.returncode}"
    except CommandError as exc:
        return str(exc)
    return next((line.strip() for line in output.splitlines() if line.strip()), "")
