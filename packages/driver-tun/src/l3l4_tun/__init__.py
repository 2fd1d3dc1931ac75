"""l3l4-tun: serve any IP address on Linux TUN devices with the l3l4 stack."""

from .device import TunDevice, TunError
from .loop import Handler, Loop, Recorder, default_stack, serve
from .workers import Workers, serve_workers

__all__ = ["Handler", "Loop", "Recorder", "TunDevice", "TunError", "Workers", "default_stack", "serve", "serve_workers"]
