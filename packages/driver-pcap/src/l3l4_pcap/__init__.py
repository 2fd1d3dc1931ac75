"""l3l4-pcap: record every packet of an l3l4 stack for Wireshark, replay captures
through a stack, and export flows. See ``docs/pcap.md``."""

from importlib.metadata import version

from l3l4.apps import Application, Echo, Handler, Sink

from .flows import FlowExport, FlowFile, FlowWriter, export_flows, flows_config
from .formats import CapturedPacket, CaptureFormatError, CaptureReader, CaptureWriter, Interface, read_packets
from .linktypes import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    Direction,
    ip_packet,
)
from .record import LinkRecorder, Recorder, RecorderStatistics, wall_clock_offset
from .replay import Checksums, Inbound, Replay, ReplayStatistics, replay

__all__ = [
    "Application",
    "CaptureFormatError",
    "CapturedPacket",
    "CaptureReader",
    "CaptureWriter",
    "Checksums",
    "Direction",
    "Echo",
    "FlowExport",
    "FlowFile",
    "FlowWriter",
    "Handler",
    "Inbound",
    "Interface",
    "LINKTYPE_ETHERNET",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_LOOP",
    "LINKTYPE_NULL",
    "LINKTYPE_RAW",
    "LinkRecorder",
    "Recorder",
    "RecorderStatistics",
    "Replay",
    "ReplayStatistics",
    "Sink",
    "export_flows",
    "flows_config",
    "ip_packet",
    "read_packets",
    "replay",
    "wall_clock_offset",
]

__version__ = version("l3l4-pcap")
"""This package's version: always the core's (``l3l4.__version__``), which it pins."""
