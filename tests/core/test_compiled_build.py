"""The optional mypyc build of the core: the wheel builds from the same sources, its
modules are compiled, and two compiled stacks move bytes intact back to back."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "packages" / "core"

TRANSFER = textwrap.dedent(
    """
    import hashlib
    from ipaddress import ip_address
    import l3l4.tcp.connection, l3l4.wire.tcp
    from l3l4 import Config, DataReceived, Flow, Proto, Stack

    assert l3l4.tcp.connection.__file__.endswith(".so"), l3l4.tcp.connection.__file__
    assert l3l4.wire.tcp.__file__.endswith(".so"), l3l4.wire.tcp.__file__
    a, b = Stack(Config(secret=b"compiled-a-00000")), Stack(Config(secret=b"compiled-b-00000"))
    flow = Flow(Proto.TCP, ip_address("198.51.100.1"), 40000, ip_address("203.0.113.1"), 80)
    data = hashlib.shake_256(b"compiled").digest(3 << 20)
    got = bytearray()
    now, sent = 0.0, 0
    wire = [(b, p) for p in a.connect(flow, now).packets]
    while len(got) < len(data):
        now += 0.001
        if sent < len(data):
            out = a.l4_tx(flow, data[sent:], now)
            sent += out.accepted
            wire += [(b, p) for p in out.packets]
        while wire:
            target, packet = wire.pop(0)
            out = target.l3_rx(packet, now)
            other = a if target is b else b
            wire += [(other, p) for p in out.packets]
            got += b"".join(e.data for e in out.events if isinstance(e, DataReceived) and target is b)
        for stack, other in ((a, b), (b, a)):
            wire += [(other, p) for p in stack.l4_poll(now).packets]
    assert bytes(got) == data
    print("ok", a.stats.tx_packets)
    """
)


def test_the_compiled_core_moves_bytes_intact(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    assert uv is not None, "uv must be on PATH (./scripts/test puts it there)"
    source = tmp_path / "core"
    shutil.copytree(CORE, source, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    environment = dict(os.environ, HATCH_BUILD_HOOK_ENABLE_MYPYC="true")
    build = subprocess.run(
        [uv, "build", "--wheel", "-q", "-o", str(tmp_path / "dist"), str(source)],
        capture_output=True, env=environment, timeout=600, check=False,
    )
    assert build.returncode == 0, build.stderr.decode()[-3000:]
    [wheel] = (tmp_path / "dist").glob("*.whl")
    assert "linux" in wheel.name  # a platform wheel: compiled, not pure
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "-q", "-p", sys.executable, str(venv)], check=True, capture_output=True)
    subprocess.run([uv, "pip", "install", "-q", "-p", str(venv / "bin" / "python"), str(wheel)], check=True)
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", TRANSFER], capture_output=True, cwd=tmp_path, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.startswith(b"ok ")
