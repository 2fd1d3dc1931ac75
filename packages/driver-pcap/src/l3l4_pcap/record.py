"""``Recorder``: every packet in and out of a stack, to pcapng or pcap, without ever
making the stack wait.

``record()`` copies the packet into a bounded queue and returns; a writer thread encodes
and writes. When the disk cannot keep up and the queue is full, packets are dropped and
counted, never waited for. Files rotate by size, optionally keeping only the newest few.
"""

from __future__ import annotations

import atexit
import collections
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ._ip import complete_checksum, partial_checksum, transport
from .formats import CaptureWriter, Format, PathLike, detect_format

__all__ = ["LinkRecorder", "Recorder", "RecorderStatistics"]

_Item = tuple[float, bool, int, bytes]
"""(now, outbound, interface or a command, packet)"""
_STATISTICS_BLOCK = 76
"""Bytes of the Interface Statistics Block ``CaptureWriter.write_statistics`` writes."""
_FLUSH = -1
_ADD_INTERFACE = -2
"""Add interface ``n``: the item's interface is ``_ADD_INTERFACE - n``."""


@dataclass(frozen=True, slots=True)
class RecorderStatistics:
    """What a :class:`Recorder` has done so far."""

    recorded: int
    """Packets handed to ``record`` (on every link)."""
    written: int
    """Packets written to files."""
    dropped: int
    """Packets dropped because the queue was full (or writing had failed)."""
    queued: int
    """Packets waiting for the writer right now."""
    bytes_written: int
    """File bytes written, headers included, over every file."""
    files: tuple[Path, ...]
    """Every file written, oldest first (without those rotation has deleted)."""
    checksums_completed: int = 0
    """Inbound packets whose partial (offloaded) checksum was filled in."""


class LinkRecorder:
    """Records one link as its own pcapng interface: hand it to a driver as its
    recorder (it has the ``record(packet, outbound, now)`` method drivers call)."""

    __slots__ = ("recorder", "interface", "name")

    def __init__(self, recorder: Recorder, interface: int, name: str) -> None:
        self.recorder = recorder
        self.interface = interface
        self.name = name

    def record(self, packet: bytes | bytearray | memoryview, outbound: bool, now: float) -> None:
        self.recorder._put(packet, outbound, now, self.interface)


class Recorder:
    """Writes every packet a driver hands it to ``path``, from a writer thread.

    Any driver takes it as its recorder: ``l3l4_tun.Loop(..., recorder=recorder)``, or
    call ``recorder.record(packet, outbound, now)`` yourself for each packet in
    (``outbound=False``) and out (``True``) with the stack's ``now``. ``link(name)`` gives
    one more recorder for another link, recorded as its own pcapng interface.

    - ``format``: ``"pcapng"`` (directions recorded, several links) or ``"pcap"``;
      by default from the file name (``.pcap`` or ``.cap`` is pcap).
    - ``rotate_bytes``: start a new file before one would pass this size; files are then
      named ``capture.pcapng``, ``capture.1.pcapng``, ``capture.2.pcapng``...
      ``max_files`` keeps only the newest ones.
    - ``queue_packets``, ``queue_bytes``: how much may wait for the writer; beyond
      that packets are dropped and counted (``statistics().dropped``, and the
      pcapng Interface Statistics Block Wireshark shows).
    - ``complete_checksums``: fill in TCP/UDP checksums that hold only the
      pseudo-header sum (what the Linux kernel hands a TUN device with offloads on), so
      that Wireshark does not report them as bad. Off, packets are written as given.
    - ``time_offset``: added to ``now`` (say ``time.time() - time.monotonic()`` to see
      wall-clock times); ``threaded=False`` writes in ``record`` itself instead (no
      thread, no drops, and its errors raised there: for tests and offline use).

    Call ``record`` (of the recorder and of its links) from one thread: a driver's
    loop. ``close`` writes what is queued; it also runs at interpreter exit.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        format: Format | None = None,
        interface: str = "l3l4",
        rotate_bytes: int | None = None,
        max_files: int | None = None,
        queue_packets: int = 65536,
        queue_bytes: int = 64 << 20,
        complete_checksums: bool = True,
        time_offset: float = 0.0,
        nanoseconds: bool = True,
        threaded: bool = True,
    ) -> None:
        if rotate_bytes is not None and rotate_bytes < 4096:
            raise ValueError("rotate_bytes must be at least 4096")
        if max_files is not None and (max_files < 1 or rotate_bytes is None):
            raise ValueError("max_files needs rotate_bytes and must be at least 1")
        if queue_packets < 1 or queue_bytes < 1:
            raise ValueError("the queue bounds must be positive")
        self.path = Path(path)
        self.format: Format = format or detect_format(path)
        self.rotate_bytes = rotate_bytes
        self.max_files = max_files
        self.queue_packets = queue_packets
        self.queue_bytes = queue_bytes
        self.complete_checksums = complete_checksums
        self.time_offset = time_offset
        self.nanoseconds = nanoseconds
        self._names = [interface]
        self._received = [0]
        self._dropped = [0]
        # Written by the writer thread only, so that no counter has two writers.
        self._file_names = [interface]
        self._lost = [0]
        self._dequeued_bytes = 0
        self._completed = 0
        self._first: float | None = None
        self._last = 0.0
        self._written = 0
        self._bytes_before = 0
        self._files: collections.deque[Path] = collections.deque()
        self._index = 0
        self._queue: collections.deque[_Item] = collections.deque()
        self._queued_bytes = 0
        """Bytes ever queued; less ``_dequeued_bytes``, what waits now."""
        self._markers: list[threading.Event] = []
        self._wakeup = threading.Event()
        self._lock = threading.Lock()
        self._closing = False
        self._closed = False
        self.error: BaseException | None = None
        """What stopped the writer (a full disk, say); ``close`` raises it."""
        self._writer = self._open(self.path)  # errors surface here, in the caller
        self._thread: threading.Thread | None = None
        if threaded:
            self._thread = threading.Thread(target=self._run, name=f"l3l4-pcap {self.path.name}", daemon=True)
            self._thread.start()
        atexit.register(self._at_exit)  # what is queued still reaches the file

    # -- the driver's side ---------------------------------------------------------------

    def record(self, packet: bytes | bytearray | memoryview, outbound: bool, now: float) -> None:
        """Take one packet (copied at once) for the first link; never blocks."""
        self._put(packet, outbound, now, 0)

    def link(self, name: str) -> LinkRecorder:
        """A recorder for one more link, written as its own pcapng interface ``name``."""
        if self.format == "pcap":
            raise ValueError("a pcap file holds one link: record to pcapng for several")
        with self._lock:
            self._names.append(name)
            self._received.append(0)
            self._dropped.append(0)
            self._lost.append(0)
            index = len(self._names) - 1
            if self._thread is None:
                self._add_interface(index)
            else:
                self._queue.append((0.0, False, _ADD_INTERFACE - index, b""))  # in order with the packets
                self._wake()
        return LinkRecorder(self, index, name)

    def _put(self, packet: bytes | bytearray | memoryview, outbound: bool, now: float, interface: int) -> None:
        self._received[interface] += 1
        if self._first is None:
            self._first = now
        self._last = now
        if self._thread is None:
            if self._closed or self.error is not None:
                self._dropped[interface] += 1
                return
            self._write(now, outbound, interface, bytes(packet))
            return
        size = len(packet)
        if (
            len(self._queue) >= self.queue_packets
            or self._queued_bytes - self._dequeued_bytes + size > self.queue_bytes
            or self.error is not None
            or self._closing
        ):
            self._dropped[interface] += 1
            return
        self._queued_bytes += size
        self._queue.append((now, outbound, interface, bytes(packet)))
        if not self._wakeup.is_set():
            self._wakeup.set()

    def _wake(self) -> None:
        if not self._wakeup.is_set():
            self._wakeup.set()

    # -- counters and control ------------------------------------------------------------

    def statistics(self) -> RecorderStatistics:
        return RecorderStatistics(
            recorded=sum(self._received),
            written=self._written,
            dropped=sum(self._dropped) + sum(self._lost),
            queued=len(self._queue),
            bytes_written=self._bytes_before + self._writer.bytes_written,
            files=tuple(self._files),
            checksums_completed=self._completed,
        )

    @property
    def files(self) -> list[Path]:
        return list(self._files)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything recorded so far is written and flushed to the file;
        returns False if ``timeout`` seconds passed first."""
        if self._thread is None:
            if not self._closed:
                self._writer.flush()
            return True
        marker = threading.Event()
        with self._lock:
            self._markers.append(marker)
            self._queue.append((0.0, False, _FLUSH, b""))
        self._wake()
        return marker.wait(timeout)

    def close(self) -> None:
        """Write what is queued, the interfaces' statistics, and close the file.
        Raises the error that stopped the writer, if one did. Idempotent."""
        if self._closed:
            return
        atexit.unregister(self._at_exit)
        self._closing = True
        if self._thread is not None:
            self._wake()
            self._thread.join()
        self._closed = True
        if self.error is None:
            try:
                self._finish_file()
            except OSError as error:
                self.error = error
        else:
            try:
                self._writer.close()
            except OSError:
                pass
        if self.error is not None:
            raise self.error

    def _at_exit(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - nobody is left to tell at exit
            pass

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # -- the writer ----------------------------------------------------------------------

    def _file_name(self, index: int) -> Path:
        if index == 0:
            return self.path
        return self.path.with_name(f"{self.path.stem}.{index}{self.path.suffix}")

    def _open(self, path: Path) -> CaptureWriter:
        writer = CaptureWriter(
            path,
            self.format,
            interfaces=list(self._file_names),
            nanoseconds=self.nanoseconds,
            time_offset=self.time_offset,
        )
        self._files.append(path)
        return writer

    def _finish_file(self) -> None:
        writer = self._writer
        first = self._first if self._first is not None else 0.0
        for interface in range(len(writer.interfaces)):
            dropped = self._dropped[interface] + self._lost[interface]
            writer.write_statistics(interface, self._received[interface], dropped, first, self._last)
        writer.close()

    def _add_interface(self, index: int) -> None:
        self._file_names.append(self._names[index])
        self._writer.add_interface(self._names[index])

    def _rotate(self) -> None:
        self._finish_file()
        self._bytes_before += self._writer.bytes_written
        self._index += 1
        self._writer = self._open(self._file_name(self._index))
        while self.max_files is not None and len(self._files) > self.max_files:
            oldest = self._files.popleft()
            try:
                os.unlink(oldest)
            except FileNotFoundError:
                pass

    def _write(self, now: float, outbound: bool, interface: int, packet: bytes) -> None:
        if self.complete_checksums and not outbound:
            where = transport(packet)
            if where is not None and partial_checksum(packet, where):
                mutable = bytearray(packet)
                complete_checksum(mutable, where)
                packet = bytes(mutable)
                self._completed += 1
        block = self._writer.encode(packet, now, outbound if self.format == "pcapng" else None, interface)
        # Room is kept for the statistics blocks written at the end: no file passes rotate_bytes.
        statistics = _STATISTICS_BLOCK * len(self._file_names) if self.format == "pcapng" else 0
        if (
            self.rotate_bytes is not None
            and self._writer.packets_written
            and self._writer.bytes_written + len(block) + statistics > self.rotate_bytes
        ):
            self._rotate()
        self._writer.write_encoded(block)
        self._written += 1

    def _run(self) -> None:
        queue = self._queue
        wakeup = self._wakeup
        while True:
            wakeup.wait()
            wakeup.clear()
            while True:
                try:
                    now, outbound, interface, packet = queue.popleft()
                except IndexError:
                    break
                self._dequeued_bytes += len(packet)
                if self.error is not None:
                    if interface >= 0:
                        self._lost[interface] += 1
                    continue
                try:
                    if interface >= 0:
                        self._write(now, outbound, interface, packet)
                    elif interface <= _ADD_INTERFACE:
                        self._add_interface(_ADD_INTERFACE - interface)
                    else:
                        self._writer.flush()
                        with self._lock:
                            markers, self._markers = self._markers, []
                        for marker in markers:
                            marker.set()
                except (OSError, ValueError) as error:
                    self.error = error
                    if interface >= 0:
                        self._lost[interface] += 1
            if self.error is None:
                try:
                    self._writer.flush()
                except OSError as error:
                    self.error = error
            if self.error is not None:
                with self._lock:
                    markers, self._markers = self._markers, []
                for marker in markers:
                    marker.set()
            if self._closing and not queue:
                return


def wall_clock_offset() -> float:
    """``time.time() - time.monotonic()``: the ``time_offset`` that turns a stack's
    monotonic ``now`` into wall-clock timestamps."""
    return time.time() - time.monotonic()
