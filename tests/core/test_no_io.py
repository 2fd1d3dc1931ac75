"""The core is sans-IO: no module under packages/core/src may import an IO module."""

from __future__ import annotations

import ast
from pathlib import Path

FORBIDDEN = {
    "socket", "os", "select", "selectors", "threading", "asyncio", "time", "random",
    "subprocess", "multiprocessing", "io", "signal", "fcntl", "mmap", "ssl", "trio",
}
CORE = Path(__file__).resolve().parents[2] / "packages" / "core" / "src"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_core_imports_no_io_module() -> None:
    sources = sorted(CORE.rglob("*.py"))
    assert len(sources) > 10
    offenders = {str(p.relative_to(CORE)): imported_modules(p) & FORBIDDEN for p in sources}
    assert {p: m for p, m in offenders.items() if m} == {}
