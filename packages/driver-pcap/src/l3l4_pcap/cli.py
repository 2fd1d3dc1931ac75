"""``l3l4-pcap``: record a TUN echo session, replay a capture, export flows.

    l3l4-pcap record session.pcapng --tun echo0 --address 192.0.2.1/24 --route 203.0.113.0/24
    l3l4-pcap replay field.pcapng --inbound marked --secret "$SECRET" -o replayed.pcapng
    l3l4-pcap flows capture.pcap -d flows/

Each prints a summary table when it ends; ``replay`` and ``flows`` show a progress bar
on stderr when it is a terminal (or with ``--progress``).
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
import time
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from l3l4 import Config, Stack, Stats
from l3l4.apps import Echo, Sink

from .flows import export_flows, flows_config
from .formats import CaptureFormatError, CaptureReader, CaptureWriter, detect_format
from .record import Recorder, RecorderStatistics, wall_clock_offset
from .replay import Replay, ReplayStatistics

__all__ = ["main", "build_parser"]

DEFAULT_REPLAY_SECRET = "l3l4-pcap-replay"


# -- output helpers ---------------------------------------------------------------------


class Progress:
    """A one-line progress bar on a terminal: bytes of the file read, packets, time."""

    def __init__(self, total: int | None, stream: IO[str], enabled: bool, width: int = 30) -> None:
        self.total = total
        self.stream = stream
        self.enabled = enabled
        self.width = width
        self.started = time.monotonic()
        self._shown = 0.0
        self._drawn = False

    def update(self, position: int, packets: int, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._shown < 0.1:
            return
        self._shown = now
        elapsed = now - self.started
        if self.total:
            fraction = min(1.0, position / self.total)
            filled = int(fraction * self.width)
            bar = f"[{'#' * filled}{'.' * (self.width - filled)}] {fraction * 100:5.1f}% "
            size = f"{position / 1e6:.1f}/{self.total / 1e6:.1f} MB"
        else:
            bar, size = "", f"{position / 1e6:.1f} MB"
        self.stream.write(f"\r{bar}{size}  {packets} packets  {elapsed:.1f} s ")
        self.stream.flush()
        self._drawn = True

    def done(self, position: int, packets: int) -> None:
        if self.enabled:
            self.update(position, packets, force=True)
            if self._drawn:
                self.stream.write("\n")
                self.stream.flush()


def table(rows: Sequence[Sequence[object]], header: Sequence[str] | None = None) -> str:
    """Rows as aligned columns; numbers right-aligned."""
    cells = [[str(cell) for cell in row] for row in ([header] if header else []) + [list(r) for r in rows]]
    if not cells:
        return ""
    widths = [max(len(row[i]) for row in cells if i < len(row)) for i in range(max(len(row) for row in cells))]
    numeric = [all(isinstance(row[i], int) for row in rows if i < len(row)) for i in range(len(widths))]
    lines = []
    for index, row in enumerate(cells):
        line = "  ".join(
            cell.rjust(widths[i]) if numeric[i] and not (header and index == 0) else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        )
        lines.append(line.rstrip())
        if header and index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


_STACK_COUNTERS = (
    "flows_opened",
    "tcp_established",
    "rx_packets",
    "rx_bytes",
    "tx_packets",
    "tx_bytes",
    "tcp_retransmits",
    "tcp_resets_sent",
)


def stack_rows(stats: Stats) -> list[tuple[str, int]]:
    """Flows, packets and bytes each way, and every drop reason that counted."""
    rows = [(name, getattr(stats, name)) for name in _STACK_COUNTERS]
    rows.append(("drops", stats.dropped))
    rows += [(f"drop: {reason.value}", count) for reason, count in stats.drops.items() if count]
    return rows


# -- configuration from the command line ------------------------------------------------


def _convert(name: str, kind: Any, text: str) -> object:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if type(None) in options and text.lower() == "none":
            return None
        last: Exception | None = None
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(name, option, text)
            except ValueError as error:
                last = error
        raise ValueError(str(last))
    if origin is typing.Literal:
        if text not in typing.get_args(kind):
            raise ValueError(f"{name} must be one of {', '.join(map(str, typing.get_args(kind)))}")
        return text
    if kind is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name} takes true or false, not {text!r}")
    if kind is int:
        return int(text, 0)
    if kind is float:
        return float(text)
    if kind is bytes:
        return text.encode()
    raise ValueError(f"{name} cannot be set from the command line")


def make_config(settings: Sequence[str], secret: str | None, base: Config | None = None) -> Config:
    """A :class:`~l3l4.Config` from ``NAME=VALUE`` settings and a secret (text)."""
    hints = typing.get_type_hints(Config)
    values: dict[str, object] = {}
    for setting in settings:
        name, equals, text = setting.partition("=")
        name = name.strip().replace("-", "_")
        if not equals or name not in hints or name == "secret":
            known = ", ".join(f.name for f in dataclasses.fields(Config) if f.name != "secret")
            raise ValueError(f"bad --config {setting!r}: expected NAME=VALUE with NAME one of {known}")
        values[name] = _convert(name, hints[name], text.strip())
    if secret is not None:
        values["secret"] = secret.encode()
    return dataclasses.replace(base or Config(), **values)  # type: ignore[arg-type]


# -- the subcommands --------------------------------------------------------------------


def _progress_enabled(args: argparse.Namespace) -> bool:
    if args.progress is not None:
        return bool(args.progress)
    return sys.stderr.isatty()


def _parse_size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower().removesuffix("b").removesuffix("i")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def _recorder_rows(stats: RecorderStatistics) -> list[tuple[str, int]]:
    return [
        ("packets recorded", stats.recorded),
        ("packets written", stats.written),
        ("packets dropped by the recorder", stats.dropped),
        ("file bytes written", stats.bytes_written),
        ("files", len(stats.files)),
    ]


def run_record(args: argparse.Namespace, out: IO[str]) -> int:
    try:
        from l3l4_tun import Loop
        from l3l4_tun.cli import open_device, stack_config
    except ImportError:
        print("l3l4-pcap record needs the TUN driver: pip install 'l3l4-pcap[tun]'", file=sys.stderr)
        return 2
    config = make_config(args.config, args.secret, stack_config(args, Echo.config()))
    recorder = Recorder(
        args.output,
        format=args.format or detect_format(args.output),
        rotate_bytes=_parse_size(args.rotate_size) if args.rotate_size else None,
        max_files=args.max_files,
        time_offset=wall_clock_offset() if args.wall_clock else 0.0,
    )
    device = open_device(args)
    loop = Loop(Stack(config), [device], Echo(), recorder=recorder)
    print(f"recording {device.name} to {args.output}; echoing every TCP and UDP flow; Ctrl-C stops", file=sys.stderr)
    timer = threading.Timer(args.duration, loop.stop) if args.duration else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        loop.run(graceful_timeout=2.0, handle_signals=True)
    finally:
        if timer is not None:
            timer.cancel()
        loop.close_devices()
        recorder.close()
    stats = recorder.statistics()
    print(table(_recorder_rows(stats) + stack_rows(loop.stack.stats), ["recorded", "count"]), file=out)
    for path in stats.files:
        print(f"wrote {path}", file=out)
    return 0


def run_replay(args: argparse.Namespace, out: IO[str]) -> int:
    config = make_config(args.config, args.secret, Echo.config() if args.app == "echo" else None)
    stack: Stack[bytearray] = Stack(config)
    writer = (
        CaptureWriter(args.output, args.format or detect_format(args.output), interfaces=["replay"])
        if args.output
        else None
    )
    handler = Echo() if args.app == "echo" else Sink()
    session = Replay(
        stack,
        args.inbound or ["marked"],
        handler=handler,
        output=writer,
        adopt=args.adopt,
        checksums=args.checksums,
        time_shift=args.time_shift,
    )
    try:
        with CaptureReader(args.capture) as reader:
            progress = Progress(reader.size, sys.stderr, _progress_enabled(args))
            session.run(reader, linger=args.linger, progress=lambda n: progress.update(reader.position, n))
            progress.done(reader.position, session.statistics.packets)
            cut_short = reader.cut_short
    finally:
        if writer is not None:
            writer.close()
    statistics = session.statistics
    print(table(_replay_rows(statistics) + stack_rows(stack.stats), ["replay", "count"]), file=out)
    if cut_short:
        print(f"note: {args.capture} ends in the middle of a packet", file=out)
    if statistics.fed == 0 and statistics.packets:
        print("note: no packet was inbound; choose them with --inbound (see --help)", file=out)
    if writer is not None:
        print(f"wrote {args.output}", file=out)
    return 0


def _replay_rows(statistics: ReplayStatistics) -> list[tuple[str, int]]:
    rows = [
        ("packets read", statistics.packets),
        ("not IP", statistics.not_ip),
        ("not inbound", statistics.not_inbound),
        ("fed to the stack", statistics.fed),
        ("cut short by the capture", statistics.truncated),
        ("sent by the stack", statistics.sent),
    ]
    if statistics.rewritten or statistics.connected:
        rows += [("acknowledgments rewritten", statistics.rewritten), ("connections adopted", statistics.connected)]
    return rows


def run_flows(args: argparse.Namespace, out: IO[str]) -> int:
    base = flows_config(args.secret.encode()) if args.secret else flows_config()
    config = make_config(args.config, None, base)
    with CaptureReader(args.capture) as reader:
        progress = Progress(reader.size, sys.stderr, _progress_enabled(args))
        export = export_flows(
            reader,
            args.directory,
            inbound=args.inbound or ["all"],
            config=config,
            checksums=args.checksums,
            progress=lambda n: progress.update(reader.position, n),
        )
        progress.done(reader.position, export.replay.packets)
    rows = [(str(file.path.name), file.bytes) for file in export.files]
    if rows:
        print(table(rows, ["file", "bytes"]), file=out)
        print(file=out)
    summary = [
        ("flow directions written", len(export.files)),
        ("bytes written", export.bytes),
        *_replay_rows(export.replay),
        *stack_rows(export.stats),
    ]
    print(table(summary, ["flows", "count"]), file=out)
    print(f"wrote {len(export.files)} files to {args.directory}", file=out)
    return 0


# -- the parser ---------------------------------------------------------------------------


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set an l3l4.Config field, e.g. -c mtu=1400 -c tcp_sack=false (repeatable)",
    )
    parser.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show a progress bar on stderr (default: when stderr is a terminal)",
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="never show a progress bar")


_INBOUND_HELP = (
    "which packets go into the stack, by destination: all, marked (the capture's own "
    "inbound marks), ADDRESS, PREFIX, :PORT, ADDRESS:PORT, PREFIX:PORT, [IPV6]:PORT; repeatable"
)
_CHECKSUM_HELP = (
    "verify: check every TCP/UDP checksum; offload (default): take packets whose checksum "
    "was left to the NIC (captured on the sending host) as verified; trust: check none"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="l3l4-pcap",
        description="Record an l3l4 stack's packets for Wireshark, replay captures through a stack, export flows.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    record = commands.add_parser(
        "record",
        help="serve TCP/UDP echo on a TUN device and record every packet",
        description=(
            "Open a TUN device, serve a TCP and UDP echo for every address routed into it, "
            "and record every packet in and out until Ctrl-C (or SIGTERM, or --duration). "
            "Needs root and the l3l4-pcap[tun] extra."
        ),
    )
    record.add_argument("output", type=Path, help="capture file to write (.pcapng, or .pcap for classic pcap)")
    record.add_argument("--format", choices=["pcapng", "pcap"], help="file format (default: from the name)")
    record.add_argument("--rotate-size", metavar="SIZE", help="start a new file at this size, e.g. 100M")
    record.add_argument("--max-files", type=int, metavar="N", help="with --rotate-size: keep the newest N files")
    record.add_argument(
        "--wall-clock", action="store_true", help="timestamps in wall-clock time, not the stack's clock"
    )
    record.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")
    record.add_argument("--secret", help="Config.secret as text (at least 16 bytes), to replay the session exactly")
    record.add_argument(
        "--config", "-c", action="append", default=[], metavar="NAME=VALUE", help="set an l3l4.Config field"
    )
    try:
        from l3l4_tun.cli import add_device_arguments
    except ImportError:
        record.epilog = "The TUN driver is not installed: pip install 'l3l4-pcap[tun]'."
    else:
        add_device_arguments(record)

    replay = commands.add_parser(
        "replay",
        help="feed a capture into a stack and write what it sends",
        description=(
            "Feed a capture's inbound packets into an l3l4 stack with their timestamps as "
            "its clock, and write every packet fed and sent to OUTPUT. The same capture, "
            "configuration and secret give the same output, byte for byte."
        ),
    )
    replay.add_argument("capture", type=Path, help="pcap or pcapng file (any byte order, any supported link type)")
    replay.add_argument("--output", "-o", type=Path, help="capture to write (.pcapng, or .pcap)")
    replay.add_argument("--format", choices=["pcapng", "pcap"], help="output format (default: from the name)")
    replay.add_argument(
        "--inbound", "-i", action="append", metavar="SELECTOR", help=_INBOUND_HELP + " (default: marked)"
    )
    replay.add_argument(
        "--app", choices=["sink", "echo"], default="sink", help="the application answering (default: sink)"
    )
    replay.add_argument(
        "--adopt",
        action="store_true",
        help="a capture between two other hosts: rewrite acknowledgments so the stack takes both ends",
    )
    replay.add_argument("--secret", default=DEFAULT_REPLAY_SECRET, help="Config.secret as text (default: a fixed one)")
    replay.add_argument("--checksums", choices=["verify", "offload", "trust"], default="offload", help=_CHECKSUM_HELP)
    replay.add_argument(
        "--linger", type=float, default=0.0, metavar="SECONDS", help="run timers this long after the last packet"
    )
    replay.add_argument("--time-shift", type=float, default=0.0, metavar="SECONDS", help="added to every timestamp")
    _add_common(replay)

    flows = commands.add_parser(
        "flows",
        help="write each flow's bytes, per direction, to files",
        description=(
            "Replay a capture through a stack that takes both ends of every connection, and "
            "write each direction's reassembled bytes to its own file, named "
            "PROTO-SRC.PORT-DST.PORT, like tcpflow."
        ),
    )
    flows.add_argument("capture", type=Path, help="pcap or pcapng file")
    flows.add_argument("--directory", "-d", type=Path, required=True, help="where to write the files (created)")
    flows.add_argument("--inbound", "-i", action="append", metavar="SELECTOR", help=_INBOUND_HELP + " (default: all)")
    flows.add_argument("--secret", help="Config.secret as text (default: a fixed one)")
    flows.add_argument("--checksums", choices=["verify", "offload", "trust"], default="offload", help=_CHECKSUM_HELP)
    _add_common(flows)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = sys.stdout
    try:
        if args.command == "record":
            return run_record(args, out)
        if args.command == "replay":
            return run_replay(args, out)
        return run_flows(args, out)
    except (CaptureFormatError, ValueError, OSError) as error:
        print(f"l3l4-pcap {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
