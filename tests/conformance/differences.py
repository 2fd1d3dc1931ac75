"""The differences between Linux and l3l4 that the RFCs allow, each with the text that
allows it. The runner checks every difference it finds against this list; one not
listed is a bug to fix (or a justification to write)."""

from __future__ import annotations

from dataclasses import dataclass

from .matrix import OPTION_SETS, Case

__all__ = ["DIFFERENCES", "Difference", "justification"]


@dataclass(frozen=True)
class Difference:
    """A way the two devices legitimately answer one set of cases differently."""

    key: str
    title: str
    states: tuple[str, ...]
    probes: tuple[str, ...]
    linux: str
    l3l4: str
    rfc: str
    """The RFC text that allows both answers, quoted."""
    options: tuple[str, ...] = OPTION_SETS
    """The SYN option sets it shows with."""

    def covers(self, case: Case) -> bool:
        return case.state in self.states and case.probe in self.probes and case.options in self.options


DIFFERENCES = (
    Difference(
        key="syn-in-syn-received",
        title="A SYN in SYN-RECEIVED (passive open)",
        states=("SYN-RECEIVED",),
        probes=("syn", "syn-ack"),
        linux="Resets and forgets the half-open connection (RFC 793's rule: a SYN in the window is an error).",
        l3l4="Sends a challenge ACK and keeps the connection, as RFC 5961 §4.2 does for the synchronized states.",
        rfc=(
            'RFC 9293 §3.10.7.4, fourth step: "RFC 5961 recommends that in these synchronized states, if the '
            'SYN bit is set, irrespective of the sequence number, TCP endpoints MUST send a "challenge ACK" to '
            'the remote peer [...] For implementations that do not follow RFC 5961, the original behavior '
            'described in RFC 793 follows in this paragraph. If the SYN is in the window it is an error: send a '
            'reset [...] enter the CLOSED state, delete the TCB, and return." For SYN-RECEIVED from a passive '
            'open it adds "return this connection to the LISTEN state and return". Linux takes the RFC 793 '
            "branch for its request sockets; l3l4 applies the RFC 5961 mitigation from SYN-RECEIVED on, so a "
            "blind SYN cannot tear down a handshake either."
        ),
    ),
    Difference(
        key="syn-sent-early-retransmit",
        title="An unacceptable ACK in SYN-SENT",
        states=("SYN-SENT",),
        probes=("ack-old", "ack-future"),
        linux="Sends the reset, then retransmits its SYN at once (a new timer of a few ms) instead of waiting for its RTO.",
        l3l4="Sends the reset; its SYN is retransmitted when the retransmission timer says so.",
        rfc=(
            'RFC 9293 §3.10.7.3: "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset (unless the RST bit is '
            'set, if so drop the segment and return) <SEQ=SEG.ACK><CTL=RST> and discard the segment. Return." '
            "Both send exactly that reset; when to retransmit the SYN is the retransmission timer's business "
            "(RFC 6298), a matter of timing, which this bench does not compare."
        ),
    ),
    Difference(
        key="simultaneous-open-timestamps",
        title="The SYN-ACK of a simultaneous open, to a SYN without timestamps",
        states=("SYN-SENT",),
        probes=("syn",),
        options=("plain",),
        linux="Sends its own SYN again with an ACK, timestamps option included (tcp_syn_options offers it in every SYN it sends).",
        l3l4="Sends a SYN-ACK without timestamps: the SYN it answers offered none.",
        rfc=(
            'RFC 7323 §3.2: "A TCP MAY send the TSopt in an initial <SYN> segment (i.e., segment containing a '
            'SYN bit and no ACK bit), and MAY send a TSopt in <SYN,ACK> only if it received a TSopt in the '
            'initial <SYN> segment for the connection." l3l4 keeps to the letter; in a simultaneous open Linux '
            "reads its own SYN, which offered timestamps, as the initial one. Neither side uses timestamps "
            'afterwards ("Once TSopt has been successfully negotiated, that is both <SYN> and <SYN,ACK> contain '
            'TSopt"), so the option is harmless.'
        ),
    ),
    Difference(
        key="time-wait-syn-timestamps",
        title="A new SYN in TIME-WAIT with a newer timestamp",
        states=("TIME-WAIT",),
        probes=("syn",),
        options=("ts",),
        linux="Accepts it as a new incarnation of the connection (RFC 6191) and answers with a SYN-ACK.",
        l3l4="Sends a challenge ACK, as for any SYN in a synchronized state; the peer gets a connection once TIME-WAIT ends.",
        rfc=(
            'RFC 1122 §4.2.2.13: "When a connection is closed actively, it MUST linger in TIME-WAIT state [...] '
            "However, it MAY accept a new SYN from the remote TCP to reopen the connection directly from "
            'TIME-WAIT state". RFC 6191 §2 tells how to do so with timestamps ("If TCP Timestamps would be '
            "enabled for the new incarnation of the connection, and the timestamp contained in the incoming SYN "
            "segment is greater than the last timestamp seen on the previous incarnation of the connection [...] "
            'honor the connection request"), which Linux does; without it, RFC 9293 §3.10.7.4, fourth step, '
            'applies: "TCP endpoints MUST send a \"challenge ACK\" to the remote peer".'
        ),
    ),
    Difference(
        key="text-after-fin",
        title="Data overlapping RCV.NXT after the peer's FIN",
        states=("CLOSE-WAIT",),
        probes=("data-overlap",),
        linux="Resets the connection (tcp_rcv_state_process, LINUX_MIB_TCPABORTONDATA: new data after a FIN).",
        l3l4="Ignores the segment text, as RFC 9293 says for these states.",
        rfc=(
            'RFC 9293 §3.10.7.4, seventh step, for CLOSE-WAIT, CLOSING, LAST-ACK and TIME-WAIT: "This should '
            'not occur since a FIN has been received from the remote side. Ignore the segment text." Linux '
            'extends RFC 1122 §4.2.2.13 ("If [...] new data is received after CLOSE is called, its TCP SHOULD '
            'send a RST") to data beyond a received FIN; l3l4 keeps to RFC 9293.'
        ),
    ),
    Difference(
        key="time-wait-unsent-ack",
        title="An ACK of unsent data in TIME-WAIT",
        states=("TIME-WAIT",),
        probes=("ack-future",),
        linux="Ignores it: its TIME-WAIT mini-socket absorbs any bare segment at RCV.NXT without looking at the ACK field.",
        l3l4="Answers with an ACK, as RFC 5961 §5.2 asks in every synchronized state.",
        rfc=(
            'RFC 9293 §3.10.7.4, fifth step (RFC 5961 §5.2): "All incoming segments whose ACK value doesn\'t '
            'satisfy the above condition MUST be discarded and an ACK sent back." This is MAY-12 in RFC 9293 '
            '("mitigation that implementations MAY choose to include"), so leaving it out in TIME-WAIT, as '
            "Linux does, is allowed too."
        ),
    ),
    Difference(
        key="push-in-flight",
        title="PSH inside the flight of a long write",
        states=("ESTABLISHED",),
        probes=("tlp-new",),
        linux=(
            "Also sets PSH on segments inside the flight of the 20000 bytes written in one call (here the fifth "
            "and the tenth), where the chunks its send queue was built of end."
        ),
        l3l4="Sets PSH only on the segment that empties its send buffer: none of these eleven, data being left.",
        rfc=(
            'RFC 9293 §3.9.1.2: "A TCP endpoint MAY implement PUSH flags on SEND calls (MAY-15). If PUSH flags '
            "are not implemented, then the sending TCP peer: (1) MUST NOT buffer data indefinitely (MUST-60), "
            "and (2) MUST set the PSH bit in the last buffered segment (i.e., when there is no more queued data "
            'to be sent) (MUST-61)." Neither sends a segment that empties its buffer here; where else PSH goes '
            'is the sender\'s choice: "The PSH bit is not a record marker and is independent of segment '
            'boundaries" (RFC 1122 §4.2.2.2). The segments and the tail loss probe (the eleventh, new data) '
            "are the same."
        ),
    ),
    Difference(
        key="ecn-setup-syn-ect",
        title="An ECN-setup SYN whose IP header says ECT",
        states=("LISTEN",),
        probes=("ecn-syn-ect",),
        linux=(
            "Declines ECN: a plain SYN-ACK. A SYN may not be ECT, so ECN bits in it are taken for a path that "
            'mangles them (commit bd14b1b2e29b, "tcp: be more strict before accepting ECN negociation": "we '
            'can disable TCP ECN negociation if it happens we receive mangled CT bits in the SYN packet").'
        ),
        l3l4="Agrees to ECN with an ECN-setup SYN-ACK (ECE), as for any ECN-setup SYN: it looks at the TCP flags only.",
        rfc=(
            'RFC 3168 §6.1.1 defines the ECN-setup SYN by its TCP flags alone ("We call a SYN packet with the ECE '
            'and CWR flags set an "ECN-setup SYN packet""), and leaves the answer to the receiver: "If a host has '
            'received an ECN-setup SYN packet, then it MAY send an ECN-setup SYN-ACK packet." Its rule on ECT, '
            '"A host MUST NOT set ECT on SYN or SYN-ACK packets", binds the sender of the SYN, not its receiver.'
        ),
    ),
)


def justification(case: Case) -> Difference | None:
    """The listed difference that covers ``case``, if any."""
    for difference in DIFFERENCES:
        if difference.covers(case):
            return difference
    return None
