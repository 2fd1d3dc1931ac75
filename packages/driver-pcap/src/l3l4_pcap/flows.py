"""Flow export: each flow's reassembled bytes, one file per direction (like tcpflow).

The reassembly is the stack's own: the capture is replayed with ``adopt`` (see
:class:`~l3l4_pcap.Replay`), so the stack receives both ends of every connection, and
each direction's bytes are what ``DataReceived`` delivered, after retransmissions,
reordering and overlaps were sorted out the way l3l4 sorts them out.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from l3l4 import Config, DataReceived, Event, Flow, FlowClosed, Stack, Stats
from l3l4.apps import Application, Sink

from .formats import CapturedPacket, CaptureWriter, PathLike, open_source
from .replay import Checksums, Inbound, Replay, ReplayStatistics

__all__ = ["FlowExport", "FlowFile", "export_flows", "flows_config"]

_MAX_OPEN = 64


def flows_config(secret: bytes = b"l3l4-pcap-flows!") -> Config:
    """The configuration flow export uses: a fixed secret (reproducible runs), a
    32 MiB receive window (a real receiver may have offered a large one) and room for
    many flows and holes."""
    return Config(
        secret=secret,
        tcp_receive_buffer=32 << 20,
        tcp_max_ooo_ranges=4096,
        max_tcp_flows=1 << 20,
        max_udp_flows=1 << 20,
    )


@dataclass(slots=True)
class FlowFile:
    """One direction of one flow, and the file its bytes went to."""

    flow: Flow
    """The flow as the stack saw it: the bytes went from ``remote`` to ``local``."""
    path: Path
    bytes: int = 0

    @property
    def source(self) -> str:
        return _endpoint(self.flow.remote_ip.compressed, self.flow.remote_port)

    @property
    def destination(self) -> str:
        return _endpoint(self.flow.local_ip.compressed, self.flow.local_port)


@dataclass(slots=True)
class FlowExport:
    """What :func:`export_flows` wrote, and the counters of the replay behind it."""

    files: list[FlowFile] = field(default_factory=list)
    replay: ReplayStatistics = field(default_factory=ReplayStatistics)
    stats: Stats = field(default_factory=Stats)
    """The stack's counters: drops by reason say what could not be reassembled."""

    @property
    def bytes(self) -> int:
        return sum(file.bytes for file in self.files)


def _endpoint(address: str, port: int) -> str:
    return f"{address}.{port}"


def file_name(flow: Flow) -> str:
    """``tcp-198.51.100.1.40000-203.0.113.80.80``: protocol, source, destination."""
    proto = flow.proto.name.lower()
    return f"{proto}-{_endpoint(flow.remote_ip.compressed, flow.remote_port)}-" + _endpoint(
        flow.local_ip.compressed, flow.local_port
    )


class FlowWriter(Sink):
    """A replay handler that appends every ``DataReceived`` to its direction's file in
    ``directory`` (a flow seen again after it closed gets ``-2``, ``-3``...)."""

    def __init__(self, directory: PathLike) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.files: list[FlowFile] = []
        self._current: dict[Flow, FlowFile] = {}
        self._used: set[str] = set()
        self._open: collections.OrderedDict[Path, IO[bytes]] = collections.OrderedDict()
        self._started: set[Path] = set()

    def on_event(self, app: Application, event: Event) -> None:
        if isinstance(event, DataReceived) and event.data:
            self._append(event.flow, event.data)
        elif isinstance(event, FlowClosed):
            record = self._current.pop(event.flow, None)
            if record is not None:
                handle = self._open.pop(record.path, None)
                if handle is not None:
                    handle.close()
        super().on_event(app, event)

    def _append(self, flow: Flow, data: bytes) -> None:
        record = self._current.get(flow)
        if record is None:
            base = file_name(flow)
            name, number = base, 1
            while name in self._used:
                number += 1
                name = f"{base}-{number}"
            self._used.add(name)
            record = FlowFile(flow, self.directory / name)
            self._current[flow] = record
            self.files.append(record)
        handle = self._open.get(record.path)
        if handle is None:
            mode = "ab" if record.path in self._started else "wb"
            self._started.add(record.path)
            handle = open(record.path, mode)  # noqa: SIM115 - kept open across events
            self._open[record.path] = handle
            if len(self._open) > _MAX_OPEN:
                self._open.popitem(last=False)[1].close()
        else:
            self._open.move_to_end(record.path)
        handle.write(data)
        record.bytes += len(data)

    def close(self) -> None:
        while self._open:
            self._open.popitem()[1].close()


def export_flows(
    capture: PathLike | IO[bytes] | Iterable[CapturedPacket],
    directory: PathLike,
    *,
    inbound: Inbound | str | Sequence[str] = "all",
    config: Config | None = None,
    checksums: Checksums = "offload",
    output: CaptureWriter | None = None,
    progress: Callable[[int], None] | None = None,
) -> FlowExport:
    """Write each flow's bytes, per direction, to files in ``directory``.

    ``inbound`` picks the packets replayed (every IP packet by default, so both
    directions of every flow); ``config`` defaults to :func:`flows_config`. TCP
    connections are reassembled from their handshake on: one already open when the
    capture started is not (the stack answers its segments with resets, counted in
    ``stats.drops``). UDP datagrams of a flow are written one after another.
    """
    stack: Stack[bytearray] = Stack(config or flows_config())
    writer = FlowWriter(directory)
    session = Replay(stack, inbound, handler=writer, output=output, adopt=True, checksums=checksums)
    packets, reader = open_source(capture)
    try:
        session.run(packets, progress=progress)
    finally:
        writer.close()
        if reader is not None:
            reader.close()
    return FlowExport(writer.files, session.statistics, stack.stats)
