"""``TcpRequest``: a SYN waiting for the application's answer (``Config(accept="manual")``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from l3l4 import Flow

from .stream import TcpStream

if TYPE_CHECKING:
    from .stack import Network

__all__ = ["TcpRequest"]


class TcpRequest:
    """A TCP connection a peer asked for, not answered yet.

    Under ``Config(accept="manual")`` nothing goes back to the peer until you call
    :meth:`accept` (SYN-ACK) or :meth:`reject` (RST). A transparent proxy reads
    :attr:`flow`, connects upstream first, and only then accepts, or rejects honestly
    so the client sees "connection refused" rather than a connection that dies. A
    request nobody answers ages out after ``Config.tcp_halfopen_idle_timeout``.
    """

    def __init__(self, network: Network, flow: Flow) -> None:
        self._network = network
        self.flow = flow
        """The requested flow, from this stack's side: ``local_*`` is where the peer
        wants to go."""
        self._answered = False

    def __repr__(self) -> str:
        return f"<TcpRequest {self.flow}>"

    @property
    def answered(self) -> bool:
        """Whether :meth:`accept` or :meth:`reject` has been called."""
        return self._answered

    async def accept(self) -> TcpStream:
        """Answer with a SYN-ACK and wait for the handshake to complete.

        Raises :class:`~l3l4_trio.ConnectError` if it does not (the peer went away, or
        the request had aged out), and :exc:`RuntimeError` if already answered. If
        cancelled while waiting, the connection is aborted.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        self._take()
        stream = self._network._accept_request(self)
        await self._network._established(stream)
        return stream

    def reject(self) -> None:
        """Refuse with a reset (RFC 9293 §3.10.7.2): the peer's connect is refused.

        Raises :exc:`RuntimeError` if already answered.
        """
        self._take()
        self._network._reject_request(self)

    def _take(self) -> None:
        if self._answered:
            raise RuntimeError(f"{self} was already answered")
        self._answered = True
