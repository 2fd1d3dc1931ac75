"""A ``TunLink(offload=True)`` that shows the offloads at work, for the trio tests."""

from __future__ import annotations

from collections.abc import Sequence

from l3l4_trio import Packet, TunLink


class RecordingOffloadLink(TunLink):
    """A ``TunLink(fd, offload=True)`` that notes the largest packet each way (beyond the
    MTU: a super-packet) and every checksum verdict it hands to the stack."""

    def __init__(self, fd: int) -> None:
        super().__init__(fd, offload=True)
        self.largest_in = 0
        self.largest_out = 0
        self.verdicts: set[bool] = set()

    async def receive_offloaded(self) -> list[tuple[Packet, bool]]:
        packets = await super().receive_offloaded()
        self.largest_in = max((self.largest_in, *(len(packet) for packet, _ in packets)))
        self.verdicts.update(verified for _, verified in packets)
        return packets

    async def send_packets(self, packets: Sequence[Packet]) -> None:
        self.largest_out = max((self.largest_out, *(len(packet) for packet in packets)))
        await super().send_packets(packets)
