"""Segments for no connection meet a closed port (RFC 9293 §3.10.7.1): only a SYN
opens a connection."""

from __future__ import annotations

from scapy.all import IP, TCP, IPv6, Raw

from l3l4 import DropReason, Stack


def answer(stack: Stack[bytearray], segment: IP | IPv6) -> list[bytes]:
    return [bytes(p) for p in stack.l3_rx(bytes(segment), 0.0).packets]


def test_data_without_ack_is_answered_with_rst_ack(stack: Stack[bytearray]) -> None:
    segment = IP(src="192.0.2.1", dst="203.0.113.80") / TCP(sport=40000, dport=80, flags="P", seq=1000) / Raw(b"hi")
    [packet] = answer(stack, segment)
    reply = IP(packet)
    assert (reply.src, reply.dst, reply[TCP].sport, reply[TCP].dport) == ("203.0.113.80", "192.0.2.1", 80, 40000)
    assert str(reply[TCP].flags) == "RA" and reply[TCP].seq == 0 and reply[TCP].ack == 1002
    assert reply.flags.DF == 1
    check = reply.copy()
    del check[IP].chksum, check[TCP].chksum
    assert bytes(IP(bytes(check))) == packet
    assert stack.stats.drops[DropReason.TCP_NO_CONNECTION] == 1
    assert stack.flows() == []


def test_ack_is_answered_with_rst_at_its_ack(stack: Stack[bytearray]) -> None:
    segment = IPv6(src="2001:db8::1", dst="2001:db8::80") / TCP(sport=4, dport=443, flags="PA", seq=5, ack=0xFFFFFFF0) / Raw(b"data")
    reply = IPv6(answer(stack, segment)[0])
    assert str(reply[TCP].flags) == "R" and reply[TCP].seq == 0xFFFFFFF0
    check = reply.copy()
    del check[TCP].chksum
    assert bytes(IPv6(bytes(check))) == bytes(reply)


def test_fin_with_data_counts_both_in_the_ack(stack: Stack[bytearray]) -> None:
    segment = IP(src="192.0.2.1", dst="192.0.2.2") / TCP(sport=4, dport=5, flags="F", seq=0xFFFFFFFE) / Raw(b"abc")
    assert IP(answer(stack, segment)[0])[TCP].ack == 2  # wraps mod 2**32


def test_rst_is_never_answered(stack: Stack[bytearray]) -> None:
    assert answer(stack, IP(src="192.0.2.1", dst="192.0.2.2") / TCP(sport=4, dport=5, flags="R")) == []
