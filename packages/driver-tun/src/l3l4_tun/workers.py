"""Multi-queue scale-out: one worker process per queue of a multi-queue TUN device.

The kernel steers each flow to one queue: packets it sends into the device are spread
by a symmetric hash of their addresses and ports, and a flow whose packets a worker
writes on its queue has its replies steered back to that queue (the TUN driver's flow
table learns it), so connections l3l4 opens itself stay with their worker too. Each
worker runs its own :class:`~l3l4.Stack` with no state shared, so throughput grows with
the cores until the kernel's side of the device is the bottleneck.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from functools import partial

from l3l4 import Stack

from .device import TunDevice
from .loop import Handler, Loop, default_stack

__all__ = ["Workers", "serve_workers"]

_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class Workers:
    """Forks a process per queue, each serving it with its own stack and handler.

    ``make_stack()`` and ``make_handler()`` run in the worker, after the fork; without
    ``make_stack``, each worker runs :func:`~l3l4_tun.default_stack`. Call
    :meth:`stop` (or send the workers SIGTERM) to end them; each then closes its flows
    within ``graceful_timeout`` seconds (or aborts them with ``None``), like
    :meth:`Loop.run`.
    """

    def __init__(
        self,
        queues: Sequence[TunDevice],
        make_handler: Callable[[], Handler],
        make_stack: Callable[[], Stack[bytearray]] | None = None,
        *,
        graceful_timeout: float | None = None,
    ) -> None:
        if not queues:
            raise ValueError("no queues to serve")
        self.queues = list(queues)
        self.make_handler = make_handler
        self.make_stack = make_stack if make_stack is not None else partial(default_stack, self.queues)
        self.graceful_timeout = graceful_timeout
        self.pids: list[int] = []
        self._reports: list[int] = []

    def start(self) -> None:
        """Fork the workers; returns at once in the parent."""
        for queue in self.queues:
            read_end, write_end = os.pipe2(os.O_CLOEXEC)
            pid = os.fork()
            if pid == 0:  # the worker
                os.close(read_end)
                for earlier in self._reports:
                    os.close(earlier)
                self._work(queue, write_end)
            os.close(write_end)
            self.pids.append(pid)
            self._reports.append(read_end)

    def stop(self) -> list[dict[str, int]]:
        """SIGTERM every worker, wait for them, and return each one's final
        ``stack.stats.as_dict()`` (an empty dict for a worker that failed)."""
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        return self.wait()

    def wait(self) -> list[dict[str, int]]:
        """Wait for every worker to exit; their final stats, as :meth:`stop`."""
        reports = []
        for pid, read_end in zip(self.pids, self._reports):
            with os.fdopen(read_end, "rb") as pipe:
                data = pipe.read()
            os.waitpid(pid, 0)
            reports.append(json.loads(data) if data else {})
        self.pids.clear()
        self._reports.clear()
        return reports

    def _work(self, queue: TunDevice, report: int) -> None:
        code = 0
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
            for other in self.queues:
                if other is not queue:
                    other.close()
            loop = Loop(self.make_stack(), [queue], self.make_handler())
            loop.run(graceful_timeout=self.graceful_timeout, handle_signals=True)
            os.write(report, json.dumps(loop.stack.stats.as_dict()).encode())
            loop.close_devices()
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)


def serve_workers(
    queues: Sequence[TunDevice],
    make_handler: Callable[[], Handler],
    make_stack: Callable[[], Stack[bytearray]] | None = None,
    *,
    graceful_timeout: float | None = None,
) -> list[dict[str, int]]:
    """Serve each queue in a worker process until SIGINT or SIGTERM reaches this one;
    returns the workers' final stats."""
    workers = Workers(queues, make_handler, make_stack, graceful_timeout=graceful_timeout)
    # Blocked here and waited for, so no signal slips in between a check and a sleep;
    # each worker unblocks them and handles them itself.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        workers.start()
        for queue in queues:
            queue.close()  # the workers hold them now
        signal.sigwait(_STOP_SIGNALS)
        return workers.stop()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
