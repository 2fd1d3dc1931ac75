"""Probes built with scapy and answers classified, independently of l3l4's codec.

A probe may carry an ECN codepoint in its IP header (RFC 3168 §5: the two low bits of
the IPv4 TOS byte or the IPv6 traffic class; none by default), and every answer's
codepoint is classified with it.

Addresses are documentation prefixes only: the bench's end is in 198.51.100.0/24 and
2001:db8:1::/64, the device under test answers as 203.0.113.80 and 2001:db8:2::80.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from scapy.all import IP, TCP, IPv6, Raw
from support.peer import Options, Segment, parse, syn_options

__all__ = [
    "BENCH",
    "BENCH_NETS",
    "CE",
    "DUT",
    "ECN_NAMES",
    "ECT0",
    "MASK",
    "NOT_ECT",
    "PAYLOAD",
    "UNKNOWN_OPTION",
    "Answer",
    "Probe",
    "answer_of",
    "bench_syn_options",
    "build",
    "ip_ecn",
    "segment_to",
]

MASK = 0xFFFFFFFF

BENCH = {4: "198.51.100.7", 6: "2001:db8:1::7"}
"""The bench's address (the peer of every connection)."""
BENCH_NETS = ("198.51.100.0/24", "2001:db8:1::/64")
"""The prefixes the kernel under test routes back into its TUN device."""
DUT = {4: "203.0.113.80", 6: "2001:db8:2::80"}
"""The address the device under test answers as (any address would do)."""

UNKNOWN_OPTION = (99, b"\x5a\x5a")
"""Option kind 99 is unassigned (IANA "TCP Option Kind Numbers")."""
PAYLOAD = bytes(range(48, 148))
"""The text of the bench's data segments."""
NOT_ECT, ECT0, CE = 0, 2, 3
"""ECN codepoints of the IP header (RFC 3168 §5): not ECN-capable, ECT(0), Congestion
Experienced."""
ECN_NAMES = {1: "ect1", ECT0: "ect0", CE: "ce"}
"""How an answer's ECN codepoint is shown (not-ECT is not shown)."""


def bench_syn_options(timestamp: tuple[int, int] | None, sack: bool = True) -> Options:
    """The options of every SYN and SYN-ACK the bench sends: MSS 1460, SACK-permitted
    (unless ``sack`` is false) and window scale 7, with the timestamps option (TSval,
    TSecr) of RFC 7323 when the connection is to use it."""
    options = syn_options(None if timestamp is None else timestamp[0], sack=sack, wscale=7)
    return [(kind, timestamp if kind == "Timestamp" else value) for kind, value in options]


@dataclass(frozen=True)
class Probe:
    """One segment from the bench.

    ``timestamp`` says which TSval it carries on a connection with timestamps: the
    next of the bench's increasing clock (``fresh``), one older than any it sent
    (``old``), or no timestamps option at all (``none``). A SYN's options are added
    when it is sent. ``ecn`` is the ECN codepoint of its IP header (RFC 3168 §5)."""

    flags: str
    seq: int
    ack: int
    payload: bytes = b""
    window: int = 65535
    options: tuple[tuple[Any, Any], ...] = ()
    urgent: int = 0
    bad_checksum: bool = False
    timestamp: Literal["fresh", "old", "none"] = "fresh"
    ecn: int = NOT_ECT

    @property
    def end(self) -> int:
        """The sequence number just past it (payload, SYN and FIN counted)."""
        return (self.seq + len(self.payload) + ("S" in self.flags) + ("F" in self.flags)) & MASK


def build(probe: Probe, version: int, bench_port: int, dut_port: int) -> bytes:
    """The probe as an IP packet from the bench to the device under test."""
    ip = IP(src=BENCH[4], dst=DUT[4], tos=probe.ecn) if version == 4 else IPv6(src=BENCH[6], dst=DUT[6], tc=probe.ecn)
    tcp = TCP(
        sport=bench_port, dport=dut_port, flags=probe.flags, seq=probe.seq & MASK, ack=probe.ack & MASK,
        window=probe.window, options=list(probe.options), urgptr=probe.urgent,
    )
    packet = bytearray(bytes(ip / tcp / Raw(probe.payload) if probe.payload else ip / tcp))
    if probe.bad_checksum:
        offset = (20 if version == 4 else 40) + 16
        (checksum,) = struct.unpack_from("!H", packet, offset)
        struct.pack_into("!H", packet, offset, checksum ^ 0x0101)
    return bytes(packet)


def ip_ecn(segment: Segment) -> int:
    """The ECN codepoint of the IP header ``segment`` came in (RFC 3168 §5): the low
    bits of the IPv4 TOS byte, of the IPv6 traffic class (its second byte's high nibble)."""
    return segment.raw[1] & 3 if segment.version == 4 else (segment.raw[1] >> 4) & 3


def segment_to(packet: bytes | bytearray, bench_port: int) -> Segment | None:
    """``packet`` parsed (checksums checked) if it is TCP to the bench's ``bench_port``."""
    version = packet[0] >> 4
    if version == 4:
        header = (packet[0] & 0x0F) * 4
        if packet[9] != 6:
            return None
    elif version == 6:
        header = 40
        if packet[6] != 6:
            return None
    else:
        return None
    (dport,) = struct.unpack_from("!H", packet, header + 2)
    return parse(packet, version) if dport == bench_port else None


@dataclass(frozen=True)
class Answer:
    """One segment the device sent back, relative to what the bench knows.

    ``seq`` is relative to the device's next sequence number as the bench has seen it
    (``None`` when it is not relative: a SYN's fresh ISN, or a reset's zero); ``ack``
    is relative to the bench's next sequence number before the probe (``None`` without
    the ACK flag): 0 when the probe taught the device nothing, its length when it was
    taken in order. ``echo`` is ``None`` without a timestamps option, else whose TSval
    its TSecr echoes: ``probe`` (the segment it answers), ``earlier`` (one the bench
    sent before) or ``other``. ``sack`` holds the SACK blocks above the acknowledgment
    (RFC 2018), in the order sent, relative to the bench's next sequence number like
    ``ack``; ``dsack`` the D-SACK block (RFC 2883 §4: a first block at or below the
    acknowledgment, or inside the second block), if any, relative the same way and
    left out of ``sack``. ``ecn`` is the ECN codepoint of its IP header (RFC 3168 §5;
    :data:`NOT_ECT` unless the connection agreed to use ECN)."""

    flags: str
    seq: int | None
    ack: int | None
    length: int
    window_zero: bool
    options: tuple[str, ...]
    echo: str | None
    sack: tuple[tuple[int, int], ...]
    dsack: tuple[int, int] | None = None
    ecn: int = NOT_ECT

    def key(self) -> tuple[object, ...]:
        """What the comparison looks at: flags, both relative numbers, payload length,
        the timestamp echoed, the SACK blocks, the D-SACK block and the ECN codepoint."""
        return (self.flags, self.seq, self.ack, self.length, self.echo, self.sack, self.dsack, self.ecn)

    def __str__(self) -> str:
        text = self.flags
        if self.seq is None:
            text += " seq=isn" if "S" in self.flags else " seq=0"
        else:
            text += f" seq{self.seq:+d}"
        if self.ack is not None:
            text += f" ack{self.ack:+d}"
        if self.length:
            text += f" len={self.length}"
        if self.ecn:
            text += f" {ECN_NAMES[self.ecn]}"
        if self.echo is not None:
            text += f" ts={self.echo}"
        if self.dsack is not None:
            text += f" dsack={self.dsack[0]}-{self.dsack[1]}"
        if self.sack:
            text += " sack=" + ",".join(f"{left}-{right}" for left, right in self.sack)
        return text


def _relative(value: int, base: int) -> int:
    """``value - base`` in sequence space, as a signed 32-bit number."""
    offset = (value - base) & MASK
    return offset - (1 << 32) if offset & 0x80000000 else offset


def answer_of(segment: Segment, dut_next: int, bench_next: int, echoes: Mapping[int, str]) -> Answer:
    """Classify ``segment`` against both ends' next sequence numbers and the TSvals the
    bench sent (``echoes`` names each: ``probe`` or ``earlier``)."""
    timestamp = segment.ts
    ack = _relative(segment.ack, bench_next)
    blocks = [(_relative(left, bench_next), _relative(right, bench_next)) for left, right in segment.sack]
    dsack = None
    if blocks and (blocks[0][1] <= ack or (len(blocks) > 1 and blocks[1][0] <= blocks[0][0] <= blocks[0][1] <= blocks[1][1])):
        dsack = blocks.pop(0)
    return Answer(
        flags=segment.flags,
        seq=None if "S" in segment.flags or segment.seq == 0 else _relative(segment.seq, dut_next),
        ack=ack if "A" in segment.flags else None,
        length=len(segment.payload),
        window_zero=segment.window == 0,
        options=tuple(segment.option_kinds),
        echo=None if timestamp is None else echoes.get(timestamp[1], "other"),
        sack=tuple((left, right) for left, right in blocks if right > ack),
        dsack=dsack,
        ecn=ip_ecn(segment),
    )
