"""The mock's layering (../shared/DESIGN.md, "Layering of the mock"), read from
its source: every import of harness/mockkernel, at module level and inside
functions, `import x` and `from x import y` alike.

A module imports only from its own layer or below, the packages of one layer
import each other without cycles, no two modules import each other at
run time (directly or round a longer loop), and an import inside a function says
on its line why it is there (it must not be a cycle dodged: a registration is
missing then). Layers, top to bottom:

    target     mockkernel/target.py
    linerate   the line-rate model: traffic profiles through the kernel in virtual time
    cmd        the front ends
    kernel     kernel.py
    netfilter sched bpf
    ipv4 ipv6 bridge
    core       core/, net.py, tracer.py, clock.py, nic.py, netfilter/core.py
    wire
    lib        userspace libraries the front ends and iptables' extensions share
"""
from __future__ import annotations

import ast
import pathlib
from dataclasses import dataclass

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = "harness.mockkernel"
LAYERS = (("lib",), ("wire",), ("core",), ("ipv4", "ipv6", "bridge"), ("netfilter", "sched", "bpf"), ("kernel",), ("cmd",),
          ("linerate",), ("target",))
LAYER = {package: level for level, packages in enumerate(LAYERS) for package in packages}
# modules outside core/ that are the core layer: the per-namespace tables, the
# tracer, the clock, the NIC, and the netfilter hook machinery (NF_HOOK)
CORE_MODULES = ("net", "tracer", "clock", "nic", "netfilter.core")
AT_IMPORT, IN_FUNCTION, TYPE_CHECKING = "at import", "in a function", "for type checking"


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module names
    imported: str
    where: str  # file:line
    runs: str  # AT_IMPORT, IN_FUNCTION or TYPE_CHECKING (never at run time)
    commented: bool  # its line carries a comment


def package_of(module: str) -> str:
    """The layer package of a module of harness.mockkernel: `ipv4` for
    harness.mockkernel.ipv4.udp, `core` for harness.mockkernel.net."""
    rest = module[len(PACKAGE) + 1:]
    if rest in CORE_MODULES or any(rest.startswith(m + ".") for m in CORE_MODULES):
        return "core"
    return rest.split(".")[0]


def read_imports(sources: dict[str, tuple[str, str]]) -> list[Import]:
    """The imports between the modules of `sources` (module name: (file, text))."""
    imports = []
    for importer, (filename, text) in sources.items():
        lines = text.splitlines()
        package = importer if filename.endswith("__init__.py") else importer.rpartition(".")[0]
        for node, runs in _import_nodes(ast.parse(text, filename)):
            for imported in _imported_modules(node, package, sources):
                imports.append(Import(importer, imported, f"{filename}:{node.lineno}", runs,
                                      "#" in lines[node.lineno - 1]))
    return imports


def _import_nodes(tree: ast.Module):
    """Every import statement, and when it runs."""
    def walk(node, runs: str):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, runs
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                yield from walk(child, IN_FUNCTION if runs == AT_IMPORT else runs)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                yield from walk(ast.Module(body=child.body, type_ignores=[]), TYPE_CHECKING)
                yield from walk(ast.Module(body=child.orelse, type_ignores=[]), runs)
            else:
                yield from walk(child, runs)
    yield from walk(tree, AT_IMPORT)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported_modules(node: ast.Import | ast.ImportFrom, package: str, sources) -> list[str]:
    """The modules of the mock an import statement loads: for `from X import y`,
    X.y when that is a module (`from harness.mockkernel import cmd`), else X."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in sources]
    base = node.module or ""
    if node.level:
        base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
    found = []
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        if submodule in sources:
            found.append(submodule)
        elif base in sources and base not in found:
            found.append(base)
    return found


def upward_imports(imports: list[Import]) -> list[str]:
    return [f"{i.where}: {i.importer} imports {i.imported}, {package_of(i.imported)} is above "
            f"{package_of(i.importer)}" for i in imports
            if LAYER[package_of(i.importer)] < LAYER[package_of(i.imported)]]


def cycles(edges: dict[str, dict[str, str]]) -> list[str]:
    """Each cycle of a graph (node: {successor: where}), as its nodes and the
    imports that close it: the strongly connected components of two or more."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def connect(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for succ in edges.get(node, {}):
            if succ not in index:
                connect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                members = sorted(component)
                closing = [f"{a} -> {b} ({where})" for a in members for b, where in sorted(edges[a].items())
                           if b in component]
                found.append(f"cycle of {', '.join(members)}: " + "; ".join(closing))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def package_cycles(imports: list[Import]) -> list[str]:
    edges: dict[str, dict[str, str]] = {}
    for i in imports:
        src, dst = package_of(i.importer), package_of(i.imported)
        if src != dst:
            edges.setdefault(src, {}).setdefault(dst, f"{i.where} imports {i.imported}")
    return cycles(edges)


def module_cycles(imports: list[Import]) -> list[str]:
    edges: dict[str, dict[str, str]] = {}
    for i in imports:
        if i.runs != TYPE_CHECKING and i.importer != i.imported:
            edges.setdefault(i.importer, {}).setdefault(i.imported, i.where)
    return cycles(edges)


def unexplained_function_imports(imports: list[Import]) -> list[str]:
    return [f"{i.where}: {i.importer} imports {i.imported} inside a function with no comment saying why"
            for i in imports if i.runs == IN_FUNCTION and not i.commented]


def mock_sources() -> dict[str, tuple[str, str]]:
    sources = {}
    for path in sorted((ROOT / "harness" / "mockkernel").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        sources[module] = (str(path.relative_to(ROOT)), path.read_text())
    return sources


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return read_imports(mock_sources())


def test_every_module_of_the_mock_is_in_a_layer():
    unplaced = sorted({package_of(m) for m in mock_sources() if m != PACKAGE} - set(LAYER))
    assert not unplaced, f"put these in a layer of DESIGN.md and of LAYERS here: {unplaced}"


def test_the_mock_reads_its_imports(imports):
    """The checks below see the imports that matter (so an empty result means something)."""
    found = {(i.importer, i.imported) for i in imports}
    assert ("harness.mockkernel.ipv4.ip_output", "harness.mockkernel.netfilter.core") in found
    assert ("harness.mockkernel.target", "harness.mockkernel.kernel") in found


def test_no_module_imports_from_a_layer_above_its_own(imports):
    upward = upward_imports(imports)
    assert not upward, "\n".join(["imports up a layer (register instead, as the kernel does):", *upward])


def test_the_packages_import_each_other_without_cycles(imports):
    found = package_cycles(imports)
    assert not found, "\n".join(found)


def test_no_modules_import_each_other(imports):
    """Not at import time nor from a function: imports only for type checking
    never run, so they close no cycle."""
    found = module_cycles(imports)
    assert not found, "\n".join(found)


def test_every_import_inside_a_function_says_why(imports):
    found = unexplained_function_imports(imports)
    assert not found, "\n".join(found)


# the checker itself ----------------------------------------------------------
def _synthetic(**modules: str) -> list[Import]:
    return read_imports({f"{PACKAGE}.{name}": (f"{name.replace('.', '/')}.py", text)
                         for name, text in modules.items()})


def test_the_checker_flags_an_import_from_a_layer_above():
    imports = _synthetic(**{
        "core.dev": "def f():\n    from harness.mockkernel.ipv4 import arp\n",
        "core.skbuff": "from ..ipv4.route import Rtable\n",
        "ipv4.arp": "",
        "ipv4.route": "",
        "kernel": "from harness.mockkernel import cmd\n",
        "cmd": "",
    })
    assert upward_imports(imports) == [
        "core/dev.py:2: harness.mockkernel.core.dev imports harness.mockkernel.ipv4.arp, ipv4 is above core",
        "core/skbuff.py:1: harness.mockkernel.core.skbuff imports harness.mockkernel.ipv4.route, ipv4 is above core",
        "kernel.py:1: harness.mockkernel.kernel imports harness.mockkernel.cmd, cmd is above kernel",
    ]


def test_the_checker_flags_a_cycle_between_packages_of_one_layer():
    imports = _synthetic(**{
        "sched.cls_bpf": "from harness.mockkernel.bpf.vm import run\n",
        "bpf.vm": "import harness.mockkernel.sched.cls_bpf\n",
        "bpf.maps": "",
    })
    assert upward_imports(imports) == []
    assert package_cycles(imports) == [
        "cycle of bpf, sched: bpf -> sched (bpf/vm.py:1 imports harness.mockkernel.sched.cls_bpf); "
        "sched -> bpf (sched/cls_bpf.py:1 imports harness.mockkernel.bpf.vm)"]


def test_the_checker_flags_a_module_cycle_but_not_a_type_only_import():
    imports = _synthetic(**{
        "bpf.syscall": "from harness.mockkernel.bpf import elf\n",
        "bpf.elf": "from harness.mockkernel.bpf.maps import BpfMap\n",
        "bpf.maps": "from harness.mockkernel.bpf.syscall import X\n",
        "bpf.vm": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                  "    from harness.mockkernel.bpf.syscall import BpfRuntime\n",
    })
    assert module_cycles(imports) == [
        "cycle of harness.mockkernel.bpf.elf, harness.mockkernel.bpf.maps, harness.mockkernel.bpf.syscall: "
        "harness.mockkernel.bpf.elf -> harness.mockkernel.bpf.maps (bpf/elf.py:1); "
        "harness.mockkernel.bpf.maps -> harness.mockkernel.bpf.syscall (bpf/maps.py:1); "
        "harness.mockkernel.bpf.syscall -> harness.mockkernel.bpf.elf (bpf/syscall.py:1)"]


def test_the_checker_flags_an_import_in_a_function_without_a_reason():
    imports = _synthetic(**{
        "ipv4.udp": "def f():\n    from harness.mockkernel.ipv4 import icmp\n",
        "ipv4.icmp": "def g():\n    from harness.mockkernel.ipv4 import udp  # the reason\n",
    })
    assert unexplained_function_imports(imports) == [
        "ipv4/udp.py:2: harness.mockkernel.ipv4.udp imports harness.mockkernel.ipv4.icmp inside a function "
        "with no comment saying why"]
