"""Linux TUN devices opened with the kernel's ioctls (``Documentation/networking/tuntap.rst``)."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
import subprocess
from collections.abc import Sequence

__all__ = ["TunDevice", "TunError", "run_ip"]

_TUN_PATH = "/dev/net/tun"
# linux/if_tun.h
TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
TUNSETVNETHDRSZ = 0x400454D8
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_MULTI_QUEUE = 0x0100
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
# linux/sockios.h
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCSIFMTU = 0x8922
IFF_UP = 0x1
_IFREQ = struct.Struct("16sH22x")
_IFREQ_INT = struct.Struct("16si20x")


class TunError(OSError):
    """A TUN device could not be opened or configured; the message says what to do."""


def run_ip(*args: str) -> None:
    """Run the ``ip`` tool (iproute2); raise :class:`TunError` with its message."""
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise TunError(f"ip {' '.join(args)}: {result.stderr.strip()}")


class TunDevice:
    """One queue of a TUN device: a non-blocking fd carrying raw IP packets.

    ``TunDevice("tun7")`` creates (or, with ``multi_queue``, joins) the device named
    ``tun7``; ``TunDevice()`` lets the kernel pick a name (``device.name`` tells).

    ``offload`` (the default) opens it with ``IFF_VNET_HDR`` and turns on checksum and
    TCP segmentation offload (``TUNSETOFFLOAD``: CSUM, TSO4, TSO6): every packet read
    or written starts with a virtio-net header (:mod:`l3l4.wire.vnet`), the kernel hands
    us TCP super-segments of up to 64 KiB with checksums it vouches for, and splits the
    large segments we write. It moves several times the bytes per packet handled; see
    ``docs/tun.md`` for the figures.

    Raises :class:`TunError` when not permitted (needs CAP_NET_ADMIN), when
    ``/dev/net/tun`` is missing, or when the name is taken by another kind of device.
    """

    def __init__(
        self,
        name: str = "",
        *,
        multi_queue: bool = False,
        offload: bool = True,
    ) -> None:
        if len(name.encode()) > 15:
            raise TunError(f"device name {name!r} is longer than 15 bytes")
        try:
            fd = os.open(_TUN_PATH, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise TunError(f"{_TUN_PATH} does not exist: load the tun module (modprobe tun)") from None
        except PermissionError:
            raise TunError(f"cannot open {_TUN_PATH}: run as root or with CAP_NET_ADMIN") from None
        flags = IFF_TUN | IFF_NO_PI
        if multi_queue:
            flags |= IFF_MULTI_QUEUE
        if offload:
            flags |= IFF_VNET_HDR
        try:
            answer = fcntl.ioctl(fd, TUNSETIFF, _IFREQ.pack(name.encode(), flags))
            if offload:
                fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
        except OSError as error:
            os.close(fd)
            if error.errno == errno.EPERM:
                raise TunError("TUNSETIFF not permitted: run as root or with CAP_NET_ADMIN") from None
            if error.errno == errno.EBUSY:
                raise TunError(f"device {name!r} is busy: taken by another device or queue") from None
            if error.errno == errno.EINVAL:
                raise TunError(f"device {name!r} exists with other flags (multi-queue, vnet)") from None
            raise TunError(error.errno, f"TUNSETIFF {name!r}: {error.strerror}") from None
        self.fd = fd
        self.name = answer[:16].rstrip(b"\0").decode()
        self.vnet_hdr = offload
        """Every packet read or written carries a virtio-net header first."""
        self.multi_queue = multi_queue

    def __enter__(self) -> TunDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        """Release the queue; the kernel deletes a non-persistent device with its last."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def read(self, size: int = 65536 + 16) -> bytes | None:
        """One packet, or ``None`` when none is waiting."""
        try:
            return os.read(self.fd, size)
        except BlockingIOError:
            return None

    def write(self, packet: bytes | bytearray | memoryview, vnet_header: bytes = b"") -> bool:
        """Queue one packet to the kernel, after its virtio-net header on a ``vnet_hdr``
        device; ``False`` if the queue is full (the packet is dropped)."""
        try:
            if vnet_header:
                os.writev(self.fd, (vnet_header, packet))
            else:
                os.write(self.fd, packet)
        except BlockingIOError:
            return False
        return True

    # -- configuration (the device's own, not the queue's) -------------------------------

    def _ifreq(self, request: int, value: int) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            fcntl.ioctl(sock, request, _IFREQ_INT.pack(self.name.encode(), value))

    def set_mtu(self, mtu: int) -> None:
        self._ifreq(SIOCSIFMTU, mtu)

    def set_up(self, up: bool = True) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            answer = fcntl.ioctl(sock, SIOCGIFFLAGS, _IFREQ.pack(self.name.encode(), 0))
            flags = _IFREQ.unpack(answer)[1]
            flags = flags | IFF_UP if up else flags & ~IFF_UP
            fcntl.ioctl(sock, SIOCSIFFLAGS, _IFREQ.pack(self.name.encode(), flags))

    def add_address(self, cidr: str) -> None:
        """Give the device an address, e.g. ``"192.0.2.1/24"`` (IPv6 without DAD)."""
        run_ip("addr", "add", cidr, "dev", self.name, *(("nodad",) if ":" in cidr else ()))

    def add_routes(self, prefixes: Sequence[str]) -> None:
        """Route prefixes into the device, e.g. ``["203.0.113.0/24", "2001:db8:1::/48"]``."""
        for prefix in prefixes:
            run_ip(*(("-6",) if ":" in prefix else ()), "route", "add", prefix, "dev", self.name)
