"""The Linux kernel as the device under test, in a network namespace of its own.

The namespace's TUN device carries the bench's packets; every address is local in
the namespace (``local 0.0.0.0/0`` and ``local ::/0`` routes on loopback) except the
bench's prefixes, which lead back into the device, so the kernel answers for any
destination as l3l4 does. The application is ``kernel_app.py``, run inside.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from l3l4_tun.device import TunDevice, run_ip
from l3l4_tun.testing import Namespace, tun_namespace
from support.peer import Segment

from .dut import LISTEN_PORT, Delivery, EcnMode
from .wire import BENCH, BENCH_NETS, DUT, segment_to

__all__ = ["KernelDut"]

APP = Path(__file__).with_name("kernel_app.py")

SYSCTLS = (
    "net.ipv4.tcp_invalid_ratelimit=0",  # answer every out-of-window segment
    "net.ipv4.tcp_challenge_ack_limit=2147483647",  # and every challenge
    "net.ipv4.conf.all.rp_filter=0",
    "net.ipv4.tcp_reordering=3",  # DupThresh (the default, made explicit)
)
LOSS_DETECTION = {
    # RACK (RFC 8985 §6, Linux's default), which marks losses by time, or classic loss
    # detection (RFC 5681 §3.2, RFC 6675): a fast retransmission comes after DupThresh
    # duplicate ACKs or SACKed segments.
    "rack": ("net.ipv4.tcp_recovery=1", "net.ipv4.tcp_recovery=0"),
    # The tail loss probe (RFC 8985 §7, Linux's default) or none: it retransmits a few
    # ms after the last segment, inside a probe's 100 ms, where otherwise only loss
    # recovery triggered by the probe itself is compared (see docs/conformance.md).
    "tail_loss_probe": ("net.ipv4.tcp_early_retrans=3", "net.ipv4.tcp_early_retrans=0"),
}
"""The settings of each loss detection switch: on, off."""
ECN: dict[EcnMode, str] = {"off": "net.ipv4.tcp_ecn=0", "on": "net.ipv4.tcp_ecn=1", "passive": "net.ipv4.tcp_ecn=2"}
"""The setting of each ECN mode (RFC 3168; ``passive``, 2, is Linux's default: ECN when
the peer's SYN asks for it, never asked for)."""


class KernelDut:
    """The kernel behind ``device``, its application speaking on ``app``'s pipes."""

    name = "linux"

    def __init__(self, namespace: Namespace, device: TunDevice, app: subprocess.Popen[bytes]) -> None:
        self.namespace = namespace
        self.device = device
        self.app = app
        self.switches: dict[str, bool] = {}
        """The loss detection switches as last set (see :data:`LOSS_DETECTION`)."""
        self.ecn_mode: EcnMode | None = None
        """The ECN mode as last set (see :data:`ECN`)."""

    @classmethod
    @contextmanager
    def running(cls) -> Iterator[KernelDut]:
        """A fresh namespace and device, the application listening; all gone on exit."""
        with tun_namespace(offload=False) as (namespace, devices):
            device = devices[0]
            inside = ("-n", namespace.name)
            # In the main table, where the bench's prefixes below are more specific (the
            # local table is looked up first, and would take them too).
            run_ip(*inside, "route", "replace", "local", "0.0.0.0/0", "dev", "lo", "table", "main")
            run_ip(*inside, "-6", "route", "replace", "local", "::/0", "dev", "lo", "table", "main")
            for prefix in BENCH_NETS:
                run_ip(*inside, *(("-6",) if ":" in prefix else ()), "route", "add", prefix, "dev", device.name)
            for setting in SYSCTLS:
                namespace.check("sysctl", "-qw", setting)
            app = namespace.popen(sys.executable, str(APP), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            try:
                dut = cls(namespace, device, app)
                dut.loss_detection(rack=False, tail_loss_probe=False)
                dut.ecn("passive")
                dut.command("listen", LISTEN_PORT)
                yield dut
            finally:
                if app.stdin is not None:
                    app.stdin.close()
                try:
                    app.wait(5)
                except subprocess.TimeoutExpired:
                    app.kill()
                    app.wait()
                if app.stdout is not None:
                    app.stdout.close()

    def command(self, *words: object) -> object:
        """Send the application one command and return its answer."""
        assert self.app.stdin is not None and self.app.stdout is not None
        self.app.stdin.write(" ".join(map(str, words)).encode() + b"\n")
        self.app.stdin.flush()
        line = self.app.stdout.readline()
        if not line:
            raise RuntimeError("the kernel-side application exited")
        answer: object = json.loads(line)
        if isinstance(answer, str) and answer.startswith("error"):
            raise RuntimeError(f"{words}: {answer}")
        return answer

    def inject(self, packet: bytes) -> None:
        if not self.device.write(packet):
            raise RuntimeError("the TUN queue is full")

    def collect(self, port: int, wait: float, until: Callable[[Segment], bool] | None = None) -> list[Segment]:
        got: list[Segment] = []
        deadline = time.monotonic() + wait
        while True:
            packet = self.device.read()
            if packet is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return got
                select.select([self.device.fd], [], [], remaining)
                continue
            segment = segment_to(packet, port)
            if segment is not None:
                got.append(segment)
                if until is not None and until(segment):
                    return got

    def connect(self, version: int, port: int) -> None:
        self.command("connect", DUT[version], BENCH[version], port)

    def accepted(self, port: int) -> bool:
        return self.command("accept", port, 1.0) == "ok"

    def send(self, port: int, size: int) -> None:
        self.command("send", port, size)

    def loss_detection(self, rack: bool, tail_loss_probe: bool) -> None:
        for switch, on in (("rack", rack), ("tail_loss_probe", tail_loss_probe)):
            if self.switches.get(switch) != on:
                self.namespace.check("sysctl", "-qw", LOSS_DETECTION[switch][0 if on else 1])
                self.switches[switch] = on

    def ecn(self, mode: EcnMode) -> None:
        if self.ecn_mode != mode:
            self.namespace.check("sysctl", "-qw", ECN[mode])
            self.ecn_mode = mode

    def shutdown(self, port: int) -> None:
        self.command("shutdown", port)

    def read(self, port: int) -> Delivery:
        answer = self.command("read", port)
        assert isinstance(answer, list)
        data, end = answer
        return Delivery(bytes.fromhex(data), str(end))

    def abort(self, port: int) -> None:
        self.command("abort", port)
