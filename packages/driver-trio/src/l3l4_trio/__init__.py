"""l3l4-trio: run the l3l4 stack under trio.

TCP connections are :class:`trio.abc.HalfCloseableStream` objects, UDP flows are
channels of datagrams, and packets move over a :class:`PacketLink`: an in-memory pair
for tests, or a TUN file descriptor. See ``docs/trio.md``.
"""

from importlib.metadata import version

from .errors import ConnectError, ConnectionRefused, ConnectTimeout, HostUnreachable
from .links import MemoryLink, MemoryLinkStatistics, OffloadLink, Packet, PacketLink, TunLink, memory_link_pair
from .request import TcpRequest
from .stack import Address, Network, NetworkStatistics, open_stack
from .stream import DEFAULT_RECEIVE_SIZE, TcpStream
from .udp import UdpSocket

__all__ = [
    "Address",
    "ConnectError",
    "ConnectionRefused",
    "ConnectTimeout",
    "DEFAULT_RECEIVE_SIZE",
    "HostUnreachable",
    "MemoryLink",
    "MemoryLinkStatistics",
    "Network",
    "NetworkStatistics",
    "OffloadLink",
    "Packet",
    "PacketLink",
    "TcpRequest",
    "TcpStream",
    "TunLink",
    "UdpSocket",
    "memory_link_pair",
    "open_stack",
]

__version__ = version("l3l4-trio")
"""This package's version: always the core's (``l3l4.__version__``), which it pins."""
