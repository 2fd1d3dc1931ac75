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

Loss detection by time (RACK, RFC 8985 §6, on in both devices; state :data:`BULK_STATE`):

- ``rack-lost``: one duplicate ACK with a SACK block over segment 2: segment 1, sent
  before it, is lost once the reordering window has passed (counting would wait for
  two more), and is sent again.
- ``rack-prr``: one duplicate ACK with a SACK block over segment 10: segments 1-9 are
  lost once the reordering window has passed; proportional rate reduction (RFC 6937)
  says how many of them go at once.

Tail loss probe (RFC 8985 §7, on in both devices, with RACK; state ESTABLISHED, the
bench acknowledging nothing):

- ``tlp``: the application writes :data:`SHORT_WRITE` bytes, two full segments and a
  short one: after a probe timeout of about two round trips, well before the
  retransmission timeout, the last segment is sent again.
- ``tlp-new``: the application writes :data:`LONG_WRITE` bytes, more than the initial
  window of ten segments: the probe is the next segment of new data.

SACK blocks sent (state ESTABLISHED, 100-byte segments relative to the bench's next
sequence number ``P``):

- ``data-ooo-2``: data at ``P+100`` and ``P+300``: two blocks, the newest first
  (RFC 2018 §4).
- ``data-ooo-fill``: the same, then ``P+200``, which joins them into one block.
- ``data-ooo-5``: data at ``P+100``, ``P+300``, ... ``P+900``: five blocks held, as
  many sent as fit beside the other options, the newest first.

D-SACK blocks sent (RFC 2883, state ESTABLISHED, placed as above):

- ``data-dup``: data at ``P+100``, then at ``P`` (which fills the hole), then at ``P``
  again: the last ACK reports it as a duplicate below the acknowledgment (§4.1.1).
  Each of the three is acknowledged at once by both devices (out of order, a hole
  filled, a duplicate: RFC 5681 §4.2), whatever their delayed ACKs.
- ``data-ooo-dup``: data at ``P+100``, ``P+300``, then ``P+100`` again: the duplicate
  first, then the block that holds it, then the other (§4.1.2).
"""

from __future__ import annotations

from .bench import View, Write
from .wire import PAYLOAD, Probe

__all__ = ["BULK_STATE", "LONG_WRITE", "NO_SACK", "RACK", "SEQUENCES", "SHORT_WRITE", "TAIL_LOSS_PROBE", "sequence_for"]

BULK_STATE = "ESTABLISHED+BULK"
SEQUENCES = {
    "dupacks-nosack": BULK_STATE,
    "dupacks": BULK_STATE,
    "dupacks-sack": BULK_STATE,
    "sack-lost": BULK_STATE,
    "dsack": BULK_STATE,
    "rack-lost": BULK_STATE,
    "rack-prr": BULK_STATE,
    "tlp": "ESTABLISHED",
    "tlp-new": "ESTABLISHED",
    "data-ooo-2": "ESTABLISHED",
    "data-ooo-fill": "ESTABLISHED",
    "data-ooo-5": "ESTABLISHED",
    "data-dup": "ESTABLISHED",
    "data-ooo-dup": "ESTABLISHED",
}
"""Every sequence and the one state it is sent in."""
NO_SACK = ("dupacks-nosack",)
"""The sequences sent on a connection whose SYN did not offer SACK."""
RACK = ("rack-lost", "rack-prr", "tlp", "tlp-new")
"""The sequences sent with RACK on in both devices; the others detect losses by
counting (RFC 5681 §3.2, RFC 6675)."""
TAIL_LOSS_PROBE = ("tlp", "tlp-new")
"""The sequences sent with the tail loss probe on in both devices; the others have none
(it would resend the last segment of every flight a few ms after it went out)."""
SHORT_WRITE = 3000
"""What the application writes in ``tlp``: two full segments and a short one."""
LONG_WRITE = 20000
"""What the application writes in ``tlp-new``: more than ten segments with every MSS
the bench meets (1428 to 1460), so that some wait for the window."""


def _sack_ack(view: View, ack: int, left: int, right: int) -> Probe:
    """A bare ACK carrying one SACK block [``left``, ``right``)."""
    return Probe("A", view.snd_nxt, ack, options=(("SAck", (left, right)),))


def sequence_for(kind: str, view: View) -> tuple[Probe | Write, ...]:
    """The steps of the sequence called ``kind``, placed by what the bench knows."""
    if kind.startswith("data-"):
        offsets = {
            "data-ooo-2": (100, 300), "data-ooo-fill": (100, 300, 200), "data-ooo-5": (100, 300, 500, 700, 900),
            "data-dup": (100, 0, 0), "data-ooo-dup": (100, 300, 100),
        }
        return tuple(Probe("PA", view.snd_nxt + offset, view.rcv_nxt, PAYLOAD) for offset in offsets[kind])
    if kind == "tlp":
        return (Write(SHORT_WRITE),)
    if kind == "tlp-new":
        return (Write(LONG_WRITE),)
    una = view.acked
    # Segment i of the device is [edges[i - 1], edges[i]).
    edges = (una, *view.data_ends)
    if kind == "dupacks-sack":
        return tuple(_sack_ack(view, una, edges[1], edges[last]) for last in (2, 3, 4))
    if kind == "sack-lost":
        return (_sack_ack(view, una, edges[1], edges[4]),)
    if kind == "rack-lost":
        return (_sack_ack(view, una, edges[1], edges[2]),)
    if kind == "rack-prr":
        return (_sack_ack(view, una, edges[9], edges[10]),)
    if kind == "dsack":
        return (Probe("A", view.snd_nxt, edges[1]), _sack_ack(view, edges[1], edges[0], edges[1]))
    if kind in ("dupacks", "dupacks-nosack"):
        return (Probe("A", view.snd_nxt, una),) * 3
    raise KeyError(kind)
