"""The four distributions as a user gets them: each builds a wheel and an sdist with
complete metadata, all at one version, the drivers pinned to the core of that version;
installed from the wheels into a fresh virtual environment (not editable), they pass a
smoke test and their commands answer ``--help``."""

from __future__ import annotations

import email.parser
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.message import Message
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMOKE = Path(__file__).with_name("smoke.py")
PACKAGES = {"l3l4": "l3l4", "l3l4-tun": "l3l4_tun", "l3l4-pcap": "l3l4_pcap", "l3l4-trio": "l3l4_trio"}
"""Distribution name -> import name."""
COMMANDS = {"l3l4-tun": "l3l4-tun = l3l4_tun.cli:main", "l3l4-pcap": "l3l4-pcap = l3l4_pcap.cli:main"}
VERSION = re.search(r'^__version__ = "(.+)"$', (ROOT / "packages/core/src/l3l4/__init__.py").read_text(), re.M)


def uv() -> str:
    path = shutil.which("uv")
    assert path is not None, "uv must be on PATH (./scripts/test puts it there)"
    return path


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every wheel and sdist, built as a release would be (wheels from the sdists)."""
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [uv(), "build", "--all-packages", "--quiet", "--out-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def version() -> str:
    assert VERSION is not None, "no __version__ in the core's __init__.py"
    return VERSION.group(1)


def wheel(dist: Path, name: str) -> Path:
    [path] = dist.glob(f"{name.replace('-', '_')}-*.whl")
    return path


def sdist(dist: Path, name: str) -> Path:
    [path] = dist.glob(f"{name.replace('-', '_')}-*.tar.gz")
    return path


def metadata(dist: Path, name: str) -> Message:
    path = wheel(dist, name)
    with zipfile.ZipFile(path) as archive:
        text = archive.read(f"{path.name.split('-')[0]}-{version()}.dist-info/METADATA").decode()
    return email.parser.Parser().parsestr(text)


def test_every_package_builds_a_wheel_and_an_sdist_of_the_one_version(dist: Path) -> None:
    assert sorted(p.name for p in dist.iterdir() if p.suffix in (".whl", ".gz")) == sorted(
        f"{name.replace('-', '_')}-{version()}{suffix}"
        for name in PACKAGES
        for suffix in ("-py3-none-any.whl", ".tar.gz")
    )
    for name in PACKAGES:
        assert metadata(dist, name)["Version"] == version()


@pytest.mark.parametrize("name", PACKAGES)
def test_metadata_is_complete(dist: Path, name: str) -> None:
    meta = metadata(dist, name)
    assert meta["Name"] == name
    assert len(meta["Summary"]) > 40
    assert meta["License-Expression"] == "MIT" and meta["License-File"] == "LICENSE"
    assert meta["Requires-Python"] == ">=3.11"
    classifiers = meta.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers and "Programming Language :: Python :: 3.11" in classifiers
    assert meta["Description-Content-Type"] == "text/markdown"
    assert str(meta.get_payload()).startswith(f"# {name}")  # the package's own README


@pytest.mark.parametrize("name", ["l3l4-tun", "l3l4-pcap", "l3l4-trio"])
def test_drivers_pin_the_core_and_each_other_at_the_one_version(dist: Path, name: str) -> None:
    requires = metadata(dist, name).get_all("Requires-Dist") or []
    l3l4 = [r for r in requires if re.match(r"l3l4[-\w]*\W", r)]
    assert f"l3l4=={version()}" in l3l4
    for requirement in l3l4:  # the extras: l3l4-tun[pcap], l3l4-pcap[tun]
        assert re.fullmatch(rf"l3l4(-tun|-pcap)?=={re.escape(version())}(; extra == '\w+')?", requirement), requirement


@pytest.mark.parametrize("name", PACKAGES)
def test_wheel_has_the_typed_marker_the_licence_and_its_commands(dist: Path, name: str) -> None:
    with zipfile.ZipFile(wheel(dist, name)) as archive:
        names = set(archive.namelist())
        info = f"{PACKAGES[name]}-{version()}.dist-info"
        assert f"{PACKAGES[name]}/py.typed" in names
        assert f"{info}/licenses/LICENSE" in names
        entry_points = archive.read(f"{info}/entry_points.txt").decode() if f"{info}/entry_points.txt" in names else ""
    assert (COMMANDS[name] in entry_points) if name in COMMANDS else entry_points == ""
    assert not any(n.endswith((".so", ".pyc")) or "__pycache__" in n for n in names)


@pytest.mark.parametrize("name", PACKAGES)
def test_sdist_has_sources_readme_licence_and_typed_marker(dist: Path, name: str) -> None:
    with tarfile.open(sdist(dist, name)) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    assert {"LICENSE", "README.md", "pyproject.toml", "PKG-INFO", f"src/{PACKAGES[name]}/py.typed"} <= names
    assert f"src/{PACKAGES[name]}/__init__.py" in names
    assert not any(n.endswith((".so", ".pyc")) or "__pycache__" in n for n in names)


def install(venv: Path, wheels: list[Path]) -> None:
    """The wheels, and their requirements from uv's cache when it has them (offline),
    else from the package index."""
    base = [uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *map(str, wheels)]
    offline = subprocess.run([*base, "--offline"], capture_output=True, text=True, timeout=120, check=False)
    if offline.returncode != 0:
        online = subprocess.run(base, capture_output=True, text=True, timeout=300, check=False)
        assert online.returncode == 0, offline.stderr + online.stderr


def test_the_wheels_work_in_a_fresh_environment(dist: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, capture_output=True)
    install(venv, [wheel(dist, name) for name in PACKAGES])
    bin_dir = venv / "bin"
    listing = subprocess.run([uv(), "pip", "list", "--python", str(bin_dir / "python"), "--format", "freeze"],
                             capture_output=True, text=True, check=True).stdout
    assert "-e " not in listing and f"l3l4=={version()}" in listing.splitlines()
    clean = {"PATH": f"{bin_dir}:/usr/bin:/bin"}  # no PYTHONPATH: only what is installed
    smoke = subprocess.run([str(bin_dir / "python"), str(SMOKE)], cwd=tmp_path, env=clean,
                           capture_output=True, text=True, timeout=120, check=False)
    assert smoke.returncode == 0, smoke.stderr
    assert smoke.stdout == f"smoke ok {version()}\n"
    for command in COMMANDS:
        result = subprocess.run([str(bin_dir / command), "--help"], cwd=tmp_path, env=clean,
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"usage: {command} ")
