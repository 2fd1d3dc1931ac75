"""A scripted SACK peer's moves for loss-recovery tests: a handshake with a known RTT,
ACKs with SACK blocks that echo the right timestamp, and the segments' edges."""

from __future__ import annotations

from .peer import MASK, Options, Peer, Result, Segment, make_stack

__all__ = ["RTT", "QUARTER", "established", "end", "run", "ack", "data", "warm_up"]

RTT = 0.01
QUARTER = RTT / 4  # RFC 8985 §6.2 step 4: reo_wnd = min_RTT / 4 once the min RTT is RTT


def established(**config: object) -> Peer:
    peer = Peer(make_stack(**config))
    peer.handshake(rtt=RTT)  # timestamps and SACK, as Linux offers them
    return peer


def end(segment: Segment) -> int:
    return (segment.seq + len(segment.payload)) & MASK


def run(first: Segment, last: Segment) -> tuple[int, int]:
    """The SACK block from ``first`` to ``last``, inclusive."""
    return first.seq, end(last)


def ack(peer: Peer, to: int, *blocks: tuple[int, int], echo: Segment) -> Result:
    """An ACK of ``to`` with SACK ``blocks``, echoing the timestamp of ``echo``, the
    segment whose arrival it answers (RFC 7323 §4.3)."""
    assert echo.ts is not None
    options: Options = [("NOP", None), ("NOP", None), ("Timestamp", (peer.tsval(), echo.ts[0]))]
    if blocks:
        options += [("NOP", None), ("NOP", None), ("SAck", tuple(edge for block in blocks for edge in block))]
    return peer.send("A", ack=to & MASK, options=options)


def data(result: Result) -> list[Segment]:
    return [segment for segment in result.segments if segment.payload]


def warm_up(peer: Peer) -> int:
    """One segment acknowledged a round trip later: RACK's min RTT is RTT. Returns the MSS."""
    mss = peer.stack.flow_info(peer.flow).mss
    one = peer.at(1.0).tx(bytes(mss)).only
    ack(peer.at(1.0 + RTT), end(one), echo=one)
    return mss
