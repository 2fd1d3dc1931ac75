"""Exceptions for flows that could not be opened, and the words for why a flow broke."""

from __future__ import annotations

import errno

from l3l4 import CloseReason, Flow

__all__ = ["ConnectError", "ConnectionRefused", "ConnectTimeout", "HostUnreachable", "connect_error", "describe"]

_WHY = {
    CloseReason.CLOSED: "the connection was closed",
    CloseReason.RESET: "the peer reset the connection",
    CloseReason.TIMED_OUT: "the connection timed out",
    CloseReason.IDLE: "the connection was idle too long",
    CloseReason.REFUSED: "the connection was refused",
    CloseReason.UNREACHABLE: "the destination is unreachable",
    CloseReason.ABORTED: "the connection was aborted",
    CloseReason.EVICTED: "the flow was evicted to stay under a flow limit",
}


def describe(reason: CloseReason) -> str:
    """A human sentence for why a flow ended."""
    return _WHY[reason]


class ConnectError(OSError):
    """A TCP connection could not be opened (``Network.connect``) or a requested one
    could not be completed (``TcpRequest.accept``).

    ``flow`` is the flow, from this stack's side; ``reason`` the
    :class:`~l3l4.CloseReason` the stack gave. The subclasses are also the matching
    builtin exceptions, so ``except ConnectionRefusedError`` works as with sockets.
    """

    def __init__(self, flow: Flow, reason: CloseReason, code: int = errno.ECONNABORTED) -> None:
        super().__init__(code, f"{describe(reason)}: {_endpoints(flow)}")
        self.flow = flow
        self.reason = reason


class ConnectionRefused(ConnectError, ConnectionRefusedError):
    """The peer answered the SYN with a reset (``CloseReason.REFUSED``)."""


class ConnectTimeout(ConnectError, TimeoutError):
    """The SYN (or SYN-ACK) retransmissions ran out (``CloseReason.TIMED_OUT``)."""


class HostUnreachable(ConnectError):
    """An ICMP unreachable answered the SYN (``CloseReason.UNREACHABLE``)."""


def connect_error(flow: Flow, reason: CloseReason) -> ConnectError:
    """The exception for a handshake that ended with ``reason``."""
    if reason is CloseReason.REFUSED:
        return ConnectionRefused(flow, reason, errno.ECONNREFUSED)
    if reason is CloseReason.TIMED_OUT:
        return ConnectTimeout(flow, reason, errno.ETIMEDOUT)
    if reason is CloseReason.UNREACHABLE:
        return HostUnreachable(flow, reason, errno.EHOSTUNREACH)
    return ConnectError(flow, reason)


def _endpoints(flow: Flow) -> str:
    return f"{_address(flow.local_ip, flow.local_port)} -> {_address(flow.remote_ip, flow.remote_port)}"


def _address(ip: object, port: int) -> str:
    text = str(ip)
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"
