"""The core as pure Python against the same sources compiled with mypyc, in one run.

    uv run python benchmarks/compiled.py [MiB]

Builds the optional compiled wheel (``HATCH_BUILD_HOOK_ENABLE_MYPYC=true uv build
packages/core``) into a virtual environment under ``~/.cache/l3l4-bench``, then runs
``tcp_bulk.py`` and ``small_flows.py --quick`` with each interpreter environment and
prints both tables. Needs ``uv`` on PATH and a C compiler.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path.home() / ".cache" / "l3l4-bench" / "compiled"


def build_compiled_env() -> Path:
    """A virtual environment holding the mypyc-compiled wheel of the core; its python."""
    uv = shutil.which("uv")
    if uv is None:
        raise SystemExit("uv is needed on PATH (./scripts/test puts it there)")
    wheels = CACHE / "wheels"
    shutil.rmtree(CACHE, ignore_errors=True)
    # A copy: the mypyc hook leaves compiled modules beside the sources it compiles,
    # where they would shadow the pure ones.
    source = CACHE / "core"
    shutil.copytree(ROOT / "packages" / "core", source, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    environment = dict(os.environ, HATCH_BUILD_HOOK_ENABLE_MYPYC="true")
    subprocess.run([uv, "build", "--wheel", "-q", "-o", str(wheels), str(source)], check=True, env=environment)
    venv = CACHE / "venv"
    subprocess.run([uv, "venv", "-q", "-p", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([uv, "pip", "install", "-q", "-p", str(python), *map(str, wheels.glob("*.whl"))], check=True)
    return python


def run(python: Path | str, script: str, *args: str) -> str:
    result = subprocess.run(
        [str(python), str(ROOT / "benchmarks" / script), *args], capture_output=True, text=True, check=True
    )
    return result.stdout


def main() -> None:
    mib = sys.argv[1] if len(sys.argv) > 1 else "64"
    compiled = build_compiled_env()
    where = subprocess.run(
        [str(compiled), "-c", "import l3l4.tcp.connection as c; print(c.__file__)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    if not where.endswith(".so"):
        raise SystemExit(f"the compiled environment imports {where}, not a compiled module")
    for label, python in (("pure Python", sys.executable), ("compiled with mypyc", str(compiled))):
        print(f"## {label}\n")
        print(run(python, "tcp_bulk.py", mib))
        print(run(python, "small_flows.py", "--quick"))


if __name__ == "__main__":
    main()
