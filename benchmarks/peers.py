"""l3l4 against the other Python TCP stacks, on the same workloads in the same run.
Needs root (TUN devices, network namespaces).

    sudo .venv/bin/python benchmarks/peers.py [--runs 5] [--mib 64] [--peer-mib 16] ...

The peers are installed into a venv of their own under ~/.cache/l3l4-bench/ (made on
first use with pip from PyPI, outside the project's lock) and run there as separate
processes (benchmarks/peers/*.py); the project's environment is never touched:

- **pmd-pytcp** (pure Python, asyncio, one stack per process, TUN in L3 mode): two
  instances over an AF_UNIX datagram socketpair, and one serving a TUN device.
- **mitmproxy_rs** (a Rust smoltcp core under a Python asyncio API): serving a TUN
  device it creates itself, for every address routed into it. Its 0.11 wheels import
  ``mitmproxy_linux`` (the eBPF redirector of its "local" mode, which has no wheel for
  Python 3.11); this script puts an empty stand-in on its ``PYTHONPATH``, which the TUN
  mode never calls.

Every TUN workload runs in a network namespace made for it, with the same client: a
Python socket program in the namespace that times its own transfer (benchmarks/
tun_bulk.py's), so kernel → stack is the client uploading and stack → kernel the
client downloading. Figures are medians of ``--runs`` runs; a peer that cannot run
is reported as such in the table, with the reason under it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import selectors
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO

from l3l4 import Config, DataReceived, EndOfStream, Event, Flow, FlowClosed, Stack
from l3l4_tun import Loop
from l3l4_tun.testing import Namespace, new_namespace, require_root, serve_until_exit, tun_namespace
from tcp_bulk import bulk
from tun_bulk import Case, client, elapsed_of, run_l3l4

PEERS_DIR = Path(__file__).resolve().parent / "peers"
PYTCP_PEER = PEERS_DIR / "pytcp_peer.py"
MITMPROXY_PEER = PEERS_DIR / "mitmproxy_peer.py"

PYTCP = "pmd-pytcp"
MITMPROXY = "mitmproxy_rs"
# Pinned so that runs compare; mitmproxy_rs 0.11.5 is the last release for Python 3.11.
REQUIREMENTS = {PYTCP: "pmd-pytcp==0.3.8", MITMPROXY: "mitmproxy_rs==0.11.5"}

STUB = '''"""Stand-in for mitmproxy_linux (made by l3l4's benchmarks/peers.py): mitmproxy_rs
imports it at start-up, but only its local-redirect mode ever calls it."""


def executable_path():
    raise RuntimeError("mitmproxy_linux is a stand-in here: local-redirect mode is unavailable")
'''

REQUEST = REPLY = 100
CONNS_CLIENT = textwrap.dedent(
    """
    import json, socket, sys, time
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    request = bytes(100)
    start = time.perf_counter()
    for _ in range(count):
        with socket.create_connection((host, port), timeout=30) as s:
            s.sendall(request)
            got = 0
            while got < 100 and (data := s.recv(4096)):
                got += len(data)
            assert got == 100, got
    print(json.dumps(time.perf_counter() - start))
    """
)


NOTES = """\
- (a) l3l4: benchmarks/tcp_bulk.py's two stacks in one process, packets handed over
  in memory (one core). pmd-pytcp: two processes, one stack each (its stack is a
  per-process singleton), exchanging TUN frames over an AF_UNIX datagram socketpair
  (two cores). mitmproxy_rs offers no such transport in its Python API.
- (b) l3l4 with offloads off; pmd-pytcp as it comes (it has no offloads); mitmproxy_rs
  with the MTU of the device it made lowered from 65535 to 1500.
- (c) l3l4: MTU 1500 with checksum and segmentation offloads (virtio-net header, 64 KiB
  super-packets), as l3l4_tun.serve() sets it up; pmd-pytcp: the same figure as (b);
  mitmproxy_rs: its own device, MTU 65535, no offloads.
- (d) A Python client in the namespace: connect, send 100 B, read the 100 B reply,
  close; the server closes after it. (Not the other way round: pmd-pytcp 0.3.8, closing
  first, holds the 4-tuple in TIME_WAIT, and when the kernel reuses that port seconds
  later it completes the handshake, then sends a FIN without the reply; seen here.)
- TUN: the client (benchmarks/tun_bulk.py's) runs in the namespace and times itself;
  kernel → stack is it uploading, stack → kernel downloading. pmd-pytcp serves only its
  own address (192.0.2.2); l3l4 and mitmproxy_rs serve every address routed into the
  device (203.0.113.9 here).
- pmd-pytcp runs with its defaults (64 KiB receive window: sysctl tcp.rcv_wnd_max); its
  senders here keep at most 1 MiB queued, as it has no send-buffer limit of its own."""


# --- the side venv ------------------------------------------------------------------


@dataclass
class SideVenv:
    """The peers' venv: its python, the stand-in module's directory, what is installed
    and, per peer, why it cannot run (absent when it can)."""

    python: Path
    stubs: Path
    python_version: str = "?"
    versions: dict[str, str] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)

    def env(self, peer: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        if peer == MITMPROXY:
            env["PYTHONPATH"] = str(self.stubs)
        return env


def last_lines(text: str | bytes, count: int = 6) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines[-count:]) or "(no output)"


def side_versions(python: Path) -> tuple[str, dict[str, str]]:
    code = (
        "import json, platform, importlib.metadata as m\n"
        "found = {}\n"
        f"for name in {list(REQUIREMENTS)!r}:\n"
        "    try: found[name] = m.version(name)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps([platform.python_version(), found]))\n"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, check=True, timeout=60).stdout
    version, found = json.loads(out)
    return str(version), {str(key): str(value) for key, value in found.items()}


def ensure_side_venv(cache: Path) -> SideVenv:
    """Make (or reuse) the venv and install the pinned peers; record what failed."""
    root = cache / "peers-venv"
    venv = SideVenv(python=root / "bin" / "python", stubs=cache / "stubs")
    try:
        prepare_side_venv(venv, root)
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        for peer in REQUIREMENTS:
            venv.problems.setdefault(peer, f"the peers' venv in {root} is unusable: {type(error).__name__}: {error}")
    return venv


def prepare_side_venv(venv: SideVenv, root: Path) -> None:
    stub = venv.stubs / "mitmproxy_linux" / "__init__.py"
    stub.parent.mkdir(parents=True, exist_ok=True)
    stub.write_text(STUB)
    if not venv.python.exists():
        progress(f"making the peers' venv in {root}")
        made = subprocess.run([sys.executable, "-m", "venv", str(root)], capture_output=True, timeout=300)
        if made.returncode != 0:
            reason = f"could not make a venv: {last_lines(made.stderr)}"
            venv.problems.update({PYTCP: reason, MITMPROXY: reason})
            return
    venv.python_version, venv.versions = side_versions(venv.python)
    for peer, requirement in REQUIREMENTS.items():
        wanted = requirement.split("==")[1]
        if venv.versions.get(peer) == wanted:
            continue
        progress(f"installing {requirement} into the peers' venv")
        # mitmproxy_rs requires mitmproxy_linux, which has no wheel for Python 3.11
        # (and its sdist builds Rust fetched from git): install without it, stand-in above.
        extra = ["--no-deps", "--only-binary=:all:"] if peer == MITMPROXY else []
        pip = [str(venv.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        installed = subprocess.run([*pip, *extra, requirement], capture_output=True, timeout=900)
        if installed.returncode != 0:
            errors = [line for line in installed.stderr.decode(errors="replace").splitlines()
                      if not line.startswith("WARNING:")]
            venv.problems[peer] = f"pip install {requirement} failed: {last_lines(chr(10).join(errors))}"
    venv.python_version, venv.versions = side_versions(venv.python)
    if MITMPROXY in venv.versions:
        check = subprocess.run(
            [str(venv.python), str(MITMPROXY_PEER), "check"], capture_output=True, env=venv.env(MITMPROXY), timeout=60
        )
        if check.returncode != 0:
            venv.problems[MITMPROXY] = f"its TUN mode cannot start: {last_lines(check.stdout + check.stderr)}"
    for peer in REQUIREMENTS:
        if peer not in venv.versions:
            venv.problems.setdefault(peer, "not installed")


# --- peer processes -----------------------------------------------------------------


class PeerProcess:
    """A peer running in the side venv: its stdout read line by line, stderr kept in a
    file (so that it never blocks) for the error message."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], pass_fds: Sequence[int] = ()) -> None:
        self.argv = list(argv)
        self.name = next((Path(arg).name for arg in argv if arg.endswith(".py")), argv[0])
        self.errors: IO[bytes] = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=self.errors, env=env, pass_fds=tuple(pass_fds)
        )
        assert self.process.stdout is not None
        self.stdout = self.process.stdout
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.stdout, selectors.EVENT_READ)
        self.buffer = b""

    def stderr_text(self) -> str:
        self.errors.seek(0)
        return last_lines(self.errors.read())

    def read_line(self, timeout: float) -> str:
        """The next line the peer prints; ``RuntimeError`` with its stderr if it exits or
        says nothing for ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"no answer from {self.name} within {timeout:.0f} s: {self.stderr_text()}")
            if self.selector.select(left):
                chunk = os.read(self.stdout.fileno(), 65536)
                if not chunk:
                    self.process.wait(5)
                    raise RuntimeError(f"{self.name} exited ({self.process.returncode}): {self.stderr_text()}")
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.process.returncode}): {self.stderr_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self.selector.close()
        self.stdout.close()
        self.errors.close()


@contextmanager
def peer_process(argv: Sequence[str], env: dict[str, str], pass_fds: Sequence[int] = ()) -> Iterator[PeerProcess]:
    peer = PeerProcess(argv, env, pass_fds)
    try:
        yield peer
    finally:
        peer.stop()


@contextmanager
def peer_on_tun(
    venv: SideVenv, peer: str, mode: str, size: int, mtu: int | None = None
) -> Iterator[tuple[Namespace, str, PeerProcess]]:
    """A namespace whose traffic goes into a TUN device that ``peer`` opened and serves;
    yields the namespace, the address to connect to, and the peer's process."""
    with new_namespace() as namespace, ExitStack() as stack:
        for scope in ("all", "default"):  # no IPv6 chatter (or link-local addresses) on the devices
            namespace.check("sysctl", "-qw", f"net.ipv6.conf.{scope}.disable_ipv6=1")
        script = PYTCP_PEER if peer == PYTCP else MITMPROXY_PEER
        device = ("pyt" if peer == PYTCP else "mrs") + namespace.name[5:]
        argv = namespace.command(str(venv.python), str(script), "tun", device, mode, str(size))
        process = stack.enter_context(peer_process(argv, venv.env(peer)))
        ready = process.read_line(60)
        if ready != f"ready {device}":
            raise RuntimeError(f"unexpected start-up line {ready!r}: {process.stderr_text()}")
        if peer == PYTCP:  # pmd-pytcp serves its own address, 192.0.2.2, on the device's /24
            namespace.check("ip", "addr", "add", "192.0.2.1/24", "dev", device)
            namespace.check("ip", "link", "set", device, "up")
            host = "192.0.2.2"
        else:  # mitmproxy_rs serves every address routed into it
            namespace.check("ip", "addr", "flush", "dev", device)  # its 169.254.0.1
            if mtu is not None:
                namespace.check("ip", "link", "set", device, "mtu", str(mtu))
            namespace.check("ip", "addr", "add", "192.0.2.1/24", "dev", device)
            namespace.check("ip", "route", "add", "203.0.113.0/24", "dev", device, "src", "192.0.2.1")
            host = "203.0.113.9"
        yield namespace, host, process


# --- workloads ----------------------------------------------------------------------


def elapsed(process: subprocess.Popen[bytes]) -> float:
    """The client's own timing of its run; the client is killed if that fails."""
    try:
        return elapsed_of(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def serve_and_time(loop: Loop, process: subprocess.Popen[bytes]) -> float:
    """Serve l3l4 until the client is done; its timing."""
    try:
        serve_until_exit(loop, [process], 300.0)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return elapsed(process)


def mb_per_s(size: int, seconds: float) -> float:
    return size / seconds / 1e6


def l3l4_pair(size: int, runs: int) -> list[float]:
    return [mb_per_s(size, bulk(size, 1500)[0]) for _ in range(runs)]


def pytcp_pair(venv: SideVenv, size: int, runs: int) -> list[float]:
    results = []
    for _ in range(runs):
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        with a, b, ExitStack() as stack:
            env = venv.env(PYTCP)
            argv = [str(venv.python), str(PYTCP_PEER), "pair-recv", str(a.fileno())]
            receiver = stack.enter_context(peer_process(argv, env, [a.fileno()]))
            if receiver.read_line(60) != "ready":
                raise RuntimeError(f"receiver did not start: {receiver.stderr_text()}")
            argv = [str(venv.python), str(PYTCP_PEER), "pair-send", str(b.fileno()), str(size)]
            stack.enter_context(peer_process(argv, env, [b.fileno()]))
            result = json.loads(receiver.read_line(300))
            if result["bytes"] != size:
                raise RuntimeError(f"received {result['bytes']} bytes of {size}")
            results.append(mb_per_s(size, result["seconds"]))
    return results


def l3l4_tun_bulk(mode: str, offload: bool, size: int, runs: int) -> list[float]:
    """benchmarks/tun_bulk.py's one-queue case: l3l4's loop here, the client in the namespace."""
    case = Case("peers", mode, offload, 1, 1)
    return [mb_per_s(size, run_l3l4(case, size).seconds) for _ in range(runs)]


def peer_tun_bulk(venv: SideVenv, peer: str, mode: str, size: int, runs: int, mtu: int | None = None) -> list[float]:
    results = []
    with peer_on_tun(venv, peer, mode, size, mtu) as (namespace, host, process):
        for _ in range(runs):
            results.append(mb_per_s(size, elapsed(client(namespace, host, size, 1, mode))))
            process.check_alive()
    return results


def conns_client(namespace: Namespace, host: str, count: int) -> subprocess.Popen[bytes]:
    return namespace.popen(
        "python3", "-c", CONNS_CLIENT, host, "5201", str(count), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


class Reply:
    """Answers a 100-byte request with 100 bytes; closes after the client does."""

    def __init__(self) -> None:
        self.got: dict[Flow, int] = {}

    def on_event(self, loop: Loop, event: Event) -> None:
        if isinstance(event, DataReceived):
            got = self.got.get(event.flow, 0) + len(event.data)
            if got < REQUEST:
                self.got[event.flow] = got
                return
            self.got.pop(event.flow, None)
            loop.send(event.flow, bytes(REPLY))
        elif isinstance(event, EndOfStream):
            loop.close(event.flow)
        elif isinstance(event, FlowClosed):
            self.got.pop(event.flow, None)


def l3l4_conns(count: int, runs: int) -> list[float]:
    results = []
    for _ in range(runs):
        with tun_namespace() as (namespace, devices):
            loop = Loop(Stack(Config(tcp_tso_packet=65535, tcp_checksum_offload=True)), devices, Reply())
            process = conns_client(namespace, "203.0.113.9", count)
            results.append(count / serve_and_time(loop, process))
    return results


def peer_conns(venv: SideVenv, peer: str, count: int, runs: int) -> list[float]:
    results = []
    with peer_on_tun(venv, peer, "rr", 0) as (namespace, host, process):
        for _ in range(runs):
            results.append(count / elapsed(conns_client(namespace, host, count)))
            process.check_alive()
    return results


# --- the table ----------------------------------------------------------------------


Cell = float | str


@dataclass
class Row:
    workload: str
    unit: str
    sizes: str
    l3l4: Cell
    pytcp: Cell
    mitmproxy: Cell


def progress(message: str) -> None:
    print(f"  ... {message}", file=sys.stderr, flush=True)


class Runner:
    """Runs each measurement, keeps its median, or the reason it could not be had."""

    def __init__(self, venv: SideVenv) -> None:
        self.venv = venv
        self.notes: list[str] = []

    def measure(self, peer: str, what: str, work: Callable[[], list[float]]) -> Cell:
        if peer in self.venv.problems:
            return "not run"
        progress(f"{peer}: {what}")
        try:
            return statistics.median(work())
        except Exception as error:  # a peer failing is a result to report, not a crash
            self.notes.append(f"{peer}, {what}: {type(error).__name__}: {last_lines(str(error), 3)}")
            return f"failed ({len(self.notes)})"


def figure(value: Cell) -> str:
    if isinstance(value, str):
        return value
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def ratio(ours: Cell, theirs: Cell) -> str:
    if isinstance(ours, str) or isinstance(theirs, str) or theirs <= 0:
        return "–"
    return f"{ours / theirs:.2f}×"


def machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"{platform.machine()}, {model}, {os.cpu_count()} cores, Linux {platform.release()}; load average {load}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (the median is shown)")
    parser.add_argument("--mib", type=int, default=64, help="MiB per TUN transfer, l3l4 and mitmproxy_rs")
    parser.add_argument("--pair-mib", type=int, default=32, help="MiB per in-memory transfer, l3l4")
    parser.add_argument("--peer-mib", type=int, default=16, help="MiB per transfer, pmd-pytcp (both workloads)")
    parser.add_argument("--conns", type=int, default=1000, help="connections per run, l3l4 and mitmproxy_rs")
    parser.add_argument("--peer-conns", type=int, default=200, help="connections per run, pmd-pytcp")
    parser.add_argument(
        "--cache", type=Path, default=Path.home() / ".cache" / "l3l4-bench", help="where the peers' venv lives"
    )
    parser.add_argument("--skip", default="", help=f"comma-separated peers not to run: {PYTCP},{MITMPROXY}")
    args = parser.parse_args()
    try:
        require_root()
    except RuntimeError as error:
        sys.exit(f"{error}; run: sudo {shlex.join([sys.executable, *sys.argv])}")

    started_on = machine()
    venv = ensure_side_venv(args.cache)
    for peer in filter(None, args.skip.split(",")):
        venv.problems[peer] = "skipped (--skip)"
    runner = Runner(venv)
    runs = args.runs
    mib, pair_mib, peer_mib = args.mib << 20, args.pair_mib << 20, args.peer_mib << 20

    def on_l3l4(what: str, work: Callable[[], list[float]]) -> Cell:
        return runner.measure("l3l4", what, work)

    def on_pytcp(what: str, work: Callable[[], list[float]]) -> Cell:
        return runner.measure(PYTCP, what, work)

    def on_mitmproxy(what: str, work: Callable[[], list[float]]) -> Cell:
        return runner.measure(MITMPROXY, what, work)

    tun_sizes = f"{args.mib} / {args.peer_mib} / {args.mib} MiB"
    rows: list[Row] = []
    rows.append(Row(
        "bulk, two stacks back to back, MTU 1500 (a)", "MB/s", f"{args.pair_mib} / {args.peer_mib} / – MiB",
        on_l3l4("bulk in memory", lambda: l3l4_pair(pair_mib, runs)),
        on_pytcp("bulk over a socketpair", lambda: pytcp_pair(venv, peer_mib, runs)),
        "–",
    ))
    pytcp_up = on_pytcp("kernel → pmd-pytcp", lambda: peer_tun_bulk(venv, PYTCP, "up", peer_mib, runs))
    pytcp_down = on_pytcp("pmd-pytcp → kernel", lambda: peer_tun_bulk(venv, PYTCP, "down", peer_mib, runs))
    directions = (("kernel → stack", "up", pytcp_up), ("stack → kernel", "down", pytcp_down))
    for label, mode, pytcp in directions:
        rows.append(Row(
            f"TUN, {label}, MTU 1500, no offloads (b)", "MB/s", tun_sizes,
            on_l3l4(f"TUN {mode}, offloads off", lambda: l3l4_tun_bulk(mode, False, mib, runs)),
            pytcp,
            on_mitmproxy(f"TUN {mode}, MTU 1500", lambda: peer_tun_bulk(venv, MITMPROXY, mode, mib, runs, mtu=1500)),
        ))
    for label, mode, pytcp in directions:
        rows.append(Row(
            f"TUN, {label}, each as shipped (c)", "MB/s", tun_sizes,
            on_l3l4(f"TUN {mode}, offloads on", lambda: l3l4_tun_bulk(mode, True, mib, runs)),
            pytcp,
            on_mitmproxy(f"TUN {mode}, MTU 65535", lambda: peer_tun_bulk(venv, MITMPROXY, mode, mib, runs)),
        ))
    rows.append(Row(
        "TUN, connections from the kernel, one at a time (d)", "conns/s",
        f"{args.conns} / {args.peer_conns} / {args.conns} conns",
        on_l3l4("connections", lambda: l3l4_conns(args.conns, runs)),
        on_pytcp("connections", lambda: peer_conns(venv, PYTCP, args.peer_conns, runs)),
        on_mitmproxy("connections", lambda: peer_conns(venv, MITMPROXY, args.conns, runs)),
    ))

    versions = ", ".join(f"{peer} {venv.versions.get(peer, '(not installed)')}" for peer in REQUIREMENTS)
    print("# l3l4 and the other Python TCP stacks")
    print()
    print(f"- machine: {started_on} (at start)")
    python = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"- Python: {python} (l3l4 {metadata.version('l3l4')}); "
          f"the peers' venv ({venv.python.parent.parent}): Python {venv.python_version}, {versions}")
    print(f"- command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"- each figure the median of {runs} runs; sizes are per run, l3l4 / pmd-pytcp / mitmproxy_rs; "
          "a ratio is l3l4's figure over the peer's (above 1: l3l4 is faster)")
    print()
    print(f"| workload | unit | sizes | l3l4 | {PYTCP} | l3l4 ÷ {PYTCP} | {MITMPROXY} | l3l4 ÷ {MITMPROXY} |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row.workload} | {row.unit} | {row.sizes} | {figure(row.l3l4)} | {figure(row.pytcp)} | "
              f"{ratio(row.l3l4, row.pytcp)} | {figure(row.mitmproxy)} | {ratio(row.l3l4, row.mitmproxy)} |")
    print()
    print(NOTES)
    for peer, problem in venv.problems.items():
        print(f"- {peer} not measured: {problem}")
    for number, note in enumerate(runner.notes, 1):
        print(f"- ({number}) {note}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
