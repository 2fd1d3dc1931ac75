"""Segmentation offload (``Config.tcp_tso_packet``): new data leaves in packets larger
than the MTU, and ``Stack.tso_segment_size`` tells a driver the segment size to cut
them into."""

from __future__ import annotations

from ipaddress import ip_address

import pytest
from support.link import Impairment, Link

from l3l4 import Config, DataReceived, Flow, FlowOpened, Proto, Stack, UnknownFlowError

FLOWS = [
    Flow(Proto.TCP, ip_address("198.51.100.1"), 40000, ip_address("203.0.113.80"), 80),
    Flow(Proto.TCP, ip_address("2001:db8::1"), 40000, ip_address("2001:db8:ffff::80"), 443),
]


@pytest.mark.parametrize("flow", FLOWS, ids=["ipv4", "ipv6"])
def test_super_packets_are_whole_segments_of_the_size_the_stack_reports(flow: Flow) -> None:
    a: Stack[bytearray] = Stack(Config(secret=b"client-secret-01", tcp_tso_packet=65535))
    b: Stack[bytearray] = Stack(Config(secret=b"server-secret-01"))
    link = Link(a, b, Impairment(), record=True)
    data = bytes(range(256)) * 800  # fits the send buffer: one l4_tx takes it all
    received = bytearray()

    def on_event(side: str, event: object, link: Link) -> None:
        if side == "b" and isinstance(event, DataReceived):
            received.extend(event.data)
        if side == "a" and isinstance(event, FlowOpened):
            link.call("a", a.l4_tx(flow, data, link.now))

    link.handler = on_event
    link.call("a", a.connect(flow, 0.0))
    link.run(lambda: len(received) == len(data), limit=60.0)
    assert bytes(received) == data
    header = 20 if flow.version == 4 else 40
    large = [packet for side, packet in link.wire if side == "a" and len(packet) > 1500]
    assert large
    mss = a.flow_info(flow).mss
    for packet in large:
        size = a.tso_segment_size(packet)
        assert size == mss
        tcp_header = (packet[header + 12] >> 4) * 4
        # Cut into segments of that size, every one fits the MTU.
        assert len(packet) - header - tcp_header > size and header + tcp_header + size <= 1500
    link.call("a", a.abort(flow, link.now))
    with pytest.raises(UnknownFlowError):
        a.tso_segment_size(large[0])
