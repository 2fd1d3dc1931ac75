"""Probes of Explicit Congestion Notification (RFC 3168): its negotiation in the SYN and
SYN-ACK, and the marks it carries afterwards: the IP header's ECN codepoint (ECT(0),
CE) and the TCP header's ECE and CWR flags. Each probe has its one state and its own
ECN mode on the device (``passive``, both devices' default, unless said otherwise);
the answers' ECN codepoints are compared with the rest (``ect0``, ``ce``; not-ECT is
not shown). The bench's data on a connection that agreed to ECN is ECT(0) unless the
probe marks it CE, as a congested router would (§5).

Negotiation, the device listening (state LISTEN):

- ``ecn-syn``: an ECN-setup SYN (SYN, ECE and CWR, §6.1.1): an ECN-setup SYN-ACK, ECE
  without CWR, not ECT. (The plain ``syn`` probe gets no ECE.)
- ``ecn-syn-off``: the same to a device with ECN off (Linux ``net.ipv4.tcp_ecn=0``,
  l3l4 ``tcp_ecn="off"``): a plain SYN-ACK.
- ``ecn-syn-ece``: a SYN with ECE alone, which is no ECN-setup SYN: a plain SYN-ACK.
- ``ecn-syn-ect``: an ECN-setup SYN whose IP header says ECT(0), which §6.1.1 forbids
  a sender ("A host MUST NOT set ECT on SYN or SYN-ACK packets").

Marks, on a connection the bench opened with an ECN-setup SYN (state ESTABLISHED,
100-byte segments relative to the bench's next sequence number ``P``):

- ``ecn-ce``: data at ``P`` marked CE: its ACK carries ECE (§6.1.3), not ECT (§6.1.4).
- ``ecn-ce-echo``: the same, then ECT(0) data at ``P+100`` without CWR: ECE again, on
  every ACK until a CWR arrives.
- ``ecn-ce-cwr``: the same, the second segment with CWR (the sender reduced its
  window, §6.1.2): its ACK carries no ECE.
- ``ecn-write``: the application writes :data:`ECN_WRITE` bytes: new data goes ECT(0)
  (§6.1.2).
- ``ecn-ce-plain``: data at ``P`` marked CE on a connection that did not agree to ECN
  (the bench's SYN was plain): a plain ACK.

The device as the sender, on a connection the bench opened with an ECN-setup SYN:

- ``ecn-ece`` (state ESTABLISHED+DATA): an ACK of all the data with ECE, then the
  application writes :data:`ECN_WRITE` bytes: the device reduces its window and says
  so with CWR on that new data (§6.1.2), ECT(0).
- ``ecn-retransmit`` (state ESTABLISHED+BULK): the ``dupacks-sack`` sequence: the fast
  retransmission of segment 1 goes not-ECT (§6.1.5).

Negotiation, the device connecting with ECN on (Linux ``net.ipv4.tcp_ecn=1``, l3l4
``tcp_ecn="on"``):

- ``ecn-connect`` (state CLOSED, no connection yet): the application connects: its SYN
  is an ECN-setup SYN, ECE and CWR (§6.1.1), not ECT. The follow-up is the plain
  SYN-ACK that completes the handshake.
- ``ecn-syn-ack`` (state SYN-SENT): an ECN-setup SYN-ACK (ECE alone), then data at
  ``P+1`` marked CE: ECN was agreed, so the data's ACK carries ECE.
- ``ecn-syn-ack-plain`` (state SYN-SENT): a SYN-ACK without ECE, a non-ECN-setup
  SYN-ACK (§6.1.1), then data marked CE: ECN was not agreed, so no ECE.

Not compared: a SYN-ACK with both ECE and CWR, which RFC 3168 §6.1.1 also calls a
non-ECN-setup SYN-ACK. Linux 6.18 reads it as an Accurate ECN SYN-ACK (RFC 9768;
``tcp_ecn_rcv_synack`` takes every ACE value but 0, 1, 5 and 7 for one) even after a
classic ECN-setup SYN, one that did not ask for AccECN, and goes on in AccECN's
feedback mode (a counter in AE, CWR and ECE on its ACKs, ECT(0) on pure ACKs); l3l4
does not use ECN on that connection, as RFC 3168 says ("Receivers MUST correctly
handle all forms of the non-ECN-setup SYN and SYN-ACK packets"). The difference is
Linux's, not one the RFCs allow, so it is left out rather than listed.
"""

from __future__ import annotations

from .bench import Connect, View, Write
from .dut import EcnMode
from .sequences import BULK_STATE, sequence_for
from .wire import CE, ECT0, PAYLOAD, Probe

__all__ = ["ECN_MODES", "ECN_PROBES", "ECN_SETUP", "ECN_WRITE", "ecn_steps"]

ECN_PROBES = {
    "ecn-syn": "LISTEN",
    "ecn-syn-off": "LISTEN",
    "ecn-syn-ece": "LISTEN",
    "ecn-syn-ect": "LISTEN",
    "ecn-ce": "ESTABLISHED",
    "ecn-ce-echo": "ESTABLISHED",
    "ecn-ce-cwr": "ESTABLISHED",
    "ecn-write": "ESTABLISHED",
    "ecn-ce-plain": "ESTABLISHED",
    "ecn-ece": "ESTABLISHED+DATA",
    "ecn-retransmit": BULK_STATE,
    "ecn-connect": "CLOSED",
    "ecn-syn-ack": "SYN-SENT",
    "ecn-syn-ack-plain": "SYN-SENT",
}
"""Every ECN probe and the one state it is sent in."""
ECN_SETUP = ("ecn-ce", "ecn-ce-echo", "ecn-ce-cwr", "ecn-write", "ecn-ece", "ecn-retransmit")
"""The probes sent on a connection the bench opened with an ECN-setup SYN."""
ECN_MODES: dict[str, EcnMode] = {
    "ecn-syn-off": "off", "ecn-connect": "on", "ecn-syn-ack": "on", "ecn-syn-ack-plain": "on",
}
"""The device's ECN mode for the probes that do not use its default, ``passive``."""
ECN_WRITE = 1000
"""What the application writes in ``ecn-write`` and ``ecn-ece``: one short segment."""


def ecn_steps(kind: str, view: View) -> tuple[Probe | Write | Connect, ...]:
    """The steps of the ECN probe called ``kind``, placed by what the bench knows."""
    seq, ack = view.snd_nxt, view.rcv_nxt
    if kind in ("ecn-syn", "ecn-syn-off"):
        return (Probe("SEC", seq, 0),)
    if kind == "ecn-syn-ece":
        return (Probe("SE", seq, 0),)
    if kind == "ecn-syn-ect":
        return (Probe("SEC", seq, 0, ecn=ECT0),)
    if kind in ("ecn-ce", "ecn-ce-plain"):
        return (Probe("PA", seq, ack, PAYLOAD, ecn=CE),)
    if kind == "ecn-ce-echo":
        return (Probe("PA", seq, ack, PAYLOAD, ecn=CE), Probe("PA", seq + 100, ack, PAYLOAD, ecn=ECT0))
    if kind == "ecn-ce-cwr":
        return (Probe("PA", seq, ack, PAYLOAD, ecn=CE), Probe("PAC", seq + 100, ack, PAYLOAD, ecn=ECT0))
    if kind == "ecn-write":
        return (Write(ECN_WRITE),)
    if kind == "ecn-ece":
        return (Probe("AE", seq, ack), Write(ECN_WRITE))
    if kind == "ecn-retransmit":
        return sequence_for("dupacks-sack", view)
    if kind == "ecn-connect":
        return (Connect(),)
    if kind in ("ecn-syn-ack", "ecn-syn-ack-plain"):
        flags = "SAE" if kind == "ecn-syn-ack" else "SA"
        return (Probe(flags, seq, ack), Probe("PA", seq + 1, ack, PAYLOAD, ecn=CE))
    raise KeyError(kind)
