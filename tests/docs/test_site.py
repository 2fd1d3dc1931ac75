"""The documentation site builds with ``mkdocs build --strict``: no warning at all
(broken links, pages missing from the nav, docstrings griffe cannot read), and the
API reference really holds the documented objects."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_site_builds_without_warnings(tmp_path: Path) -> None:
    site = tmp_path / "site"
    environment = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(site)],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    assert "WARNING" not in result.stderr, result.stderr
    for page in ("quickstart", "core", "tcp", "tun", "trio", "pcap", "performance", "benchmarks", "reliability", "conformance"):
        assert (site / page / "index.html").is_file(), page
    assert "In-memory bulk TCP" in (site / "benchmarks" / "index.html").read_text()  # the included tables
    api = {name: (site / "api" / name / "index.html").read_text() for name in ("l3l4", "l3l4_tun", "l3l4_trio", "l3l4_pcap")}
    for name, anchor in [
        ("l3l4", "l3l4.Stack.l3_rx"),
        ("l3l4", "l3l4.apps.Echo"),
        ("l3l4_tun", "l3l4_tun.Loop"),
        ("l3l4_tun", "l3l4_tun.cli.main"),
        ("l3l4_trio", "l3l4_trio.open_stack"),
        ("l3l4_pcap", "l3l4_pcap.Recorder"),
    ]:
        assert f'id="{anchor}"' in api[name], anchor
    assert not any(":class:`" in html for html in api.values())  # roles became links
