"""The shape of the house: no module imports itself back through others, lazily or not; shipped
packages never import the tests; no package imports one on a floor above it."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: The packages installed with driftstream (pyproject's ``packages.find``).
SHIPPED = ("streams", "detectors", "schemas", "load_tests")


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The project modules ``path`` imports anywhere in it (inside functions and
    ``TYPE_CHECKING`` blocks too: a lazy import that closes a loop is still a loop)."""
    here = _module(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != here and not _is_package_of(name, here):
                found.add(name)
    return found


def _is_package_of(name: str, module: str) -> bool:
    """Whether ``name`` is a package above ``module`` (``from streams.x import y`` runs
    ``streams/__init__``, which is no import of the module's own making)."""
    return module.startswith(name + ".")


@functools.cache
def _graph() -> dict[str, set[str]]:
    files = [p for top in SHIPPED for p in (ROOT / top).rglob("*.py")]
    files += list((ROOT / "tests").rglob("*.py"))
    modules = {_module(p) for p in files}
    return {_module(p): _imports(p, modules) for p in files}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_the_cycle_finder_finds_a_lazy_loop() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back() -> None:
    shipped = {m: deps for m, deps in _graph().items() if m.split(".")[0] in SHIPPED}
    assert _cycles(shipped) == []


def test_shipped_packages_never_import_the_tests() -> None:
    graph = _graph()
    offenders = {m: sorted(d for d in deps if d.split(".")[0] == "tests")
                 for m, deps in graph.items() if m.split(".")[0] in SHIPPED}
    assert {m: deps for m, deps in offenders.items() if deps} == {}


#: The floors of the house, from the ground up (docs/design.md, "Layout"): a package may
#: import its own floor's modules and those of the floors below, never one above.
FLOORS = (
    ("schemas", "detectors", "streams.exceptions", "streams.settings"),
    ("streams.pipeline", "streams.ops"),
    ("streams.sinks",),
    ("streams.runtime",),
    ("streams.updater",),
    ("streams.sdk",),
    ("streams.offline",),
    ("streams.cli", "load_tests"),
)


def _floor(module: str) -> int | None:
    for level, packages in enumerate(FLOORS):
        if any(module == p or module.startswith(p + ".") for p in packages):
            return level
    return None


def test_no_package_imports_one_above_it() -> None:
    upward = {}
    for module, deps in _graph().items():
        level = _floor(module)
        if level is None:
            continue
        above = sorted(d for d in deps if (_floor(d) or 0) > level)
        if above:
            upward[module] = above
    assert upward == {}
