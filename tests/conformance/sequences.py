"""Probes of several segments ("sequences"), sent back to back and answered as one:
the duplicate ACKs and SACK blocks that set off loss recovery in a device with ten
segments in flight, and the out-of-order data that makes a device send SACK blocks.

Loss recovery (state :data:`BULK_STATE`: the device's application wrote ten segments'
worth, all sent, none acknowledged; segment ``i`` is the ``i``-th the device sent):

- ``dupacks-nosack``: three duplicate ACKs on a connection whose SYN offered no SACK:
  RFC 5681 §3.2 fast retransmit of the first segment.
- ``dupacks``: three duplicate ACKs without SACK blocks on a SACK connection.
- ``dupacks-sack``: three duplicate ACKs whose SACK blocks cover segments 2, 2-3 and
  2-4 (RFC 6675 §5: the third duplicate ACK starts recovery; segment 1 is the hole).
- ``sack-lost``: one duplicate ACK with a SACK block over segments 2-4: RFC 6675
  IsLost(HighACK + 1) holds after a single duplicate ACK.
- ``dsack``: an ACK of segment 1, then the same ACK with a D-SACK block (RFC 2883)
  reporting segment 1 received twice: no loss to recover from.

SACK blocks sent (state ESTABLISHED, 100-byte segments relative to the bench's next
sequence number ``P``):

- ``data-ooo-2``: data at ``P+100`` and ``P+300``: two blocks, the newest first
  (RFC 2018 §4).
- ``data-ooo-fill``: the same, then ``P+200``, which joins them into one block.
- ``data-ooo-5``: data at ``P+100``, ``P+300``, ... ``P+900``: five blocks held, as
  many sent as fit beside the other options, the newest first.
"""

from __future__ import annotations

from .bench import View
from .wire import PAYLOAD, Probe

__all__ = ["BULK_STATE", "NO_SACK", "SEQUENCES", "sequence_for"]

BULK_STATE = "ESTABLISHED+BULK"
SEQUENCES = {
    "dupacks-nosack": BULK_STATE,
    "dupacks": BULK_STATE,
    "dupacks-sack": BULK_STATE,
    "sack-lost": BULK_STATE,
    "dsack": BULK_STATE,
    "data-ooo-2": "ESTABLISHED",
    "data-ooo-fill": "ESTABLISHED",
    "data-ooo-5": "ESTABLISHED",
}
"""Every sequence and the one state it is sent in."""
NO_SACK = ("dupacks-nosack",)
"""The sequences sent on a connection whose SYN did not offer SACK."""


def _sack_ack(view: View, ack: int, left: int, right: int) -> Probe:
    """A bare ACK carrying one SACK block [``left``, ``right``)."""
    return Probe("A", view.snd_nxt, ack, options=(("SAck", (left, right)),))


def sequence_for(kind: str, view: View) -> tuple[Probe, ...]:
    """The segments of the sequence called ``kind``, placed by what the bench knows."""
    if kind.startswith("data-ooo-"):
        offsets = {"data-ooo-2": (100, 300), "data-ooo-fill": (100, 300, 200), "data-ooo-5": (100, 300, 500, 700, 900)}
        return tuple(Probe("PA", view.snd_nxt + offset, view.rcv_nxt, PAYLOAD) for offset in offsets[kind])
    una = view.acked
    # Segment i of the device is [edges[i - 1], edges[i]).
    edges = (una, *view.data_ends)
    if kind == "dupacks-sack":
        return tuple(_sack_ack(view, una, edges[1], edges[last]) for last in (2, 3, 4))
    if kind == "sack-lost":
        return (_sack_ack(view, una, edges[1], edges[4]),)
    if kind == "dsack":
        return (Probe("A", view.snd_nxt, edges[1]), _sack_ack(view, edges[1], edges[0], edges[1]))
    if kind in ("dupacks", "dupacks-nosack"):
        return (Probe("A", view.snd_nxt, una),) * 3
    raise KeyError(kind)
