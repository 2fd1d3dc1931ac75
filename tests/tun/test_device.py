"""Opening and configuring TUN devices: names, queues, errors a user can act on."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from l3l4_tun import TunDevice, TunError
from l3l4_tun.testing import new_namespace, require_root


def link(name: str) -> dict[str, object]:
    out = subprocess.run(["ip", "-j", "-d", "link", "show", name], capture_output=True, check=True).stdout
    return dict(json.loads(out)[0])


def test_a_kernel_named_device_is_created_and_removed_on_close() -> None:
    require_root()
    with TunDevice(offload=False) as device:
        assert device.name.startswith("tun")
        assert link(device.name)["ifname"] == device.name
        assert device.read() is None  # non-blocking, nothing yet
    assert subprocess.run(["ip", "link", "show", device.name], capture_output=True).returncode != 0


def test_mtu_and_up() -> None:
    require_root()
    with TunDevice("l3l4cfg0") as device:
        device.set_mtu(9000)
        device.set_up()
        info = link("l3l4cfg0")
        assert info["mtu"] == 9000
        assert "UP" in info["flags"]  # type: ignore[operator]
        device.set_up(False)
        assert "UP" not in link("l3l4cfg0")["flags"]  # type: ignore[operator]


def test_addresses_and_routes_inside_a_namespace() -> None:
    code = (
        "from l3l4_tun import TunDevice\n"
        "d = TunDevice('l3l4cfg1')\n"
        "d.add_address('192.0.2.1/24'); d.add_address('2001:db8::1/64'); d.set_up()\n"
        "d.add_routes(['203.0.113.0/24', '2001:db8:1::/48'])\n"
        "import subprocess\n"
        "print(subprocess.run(['ip', 'route', 'get', '203.0.113.9'], capture_output=True, text=True).stdout)\n"
        "print(subprocess.run(['ip', '-6', 'route', 'get', '2001:db8:1::9'], capture_output=True, text=True).stdout)\n"
    )
    with new_namespace() as namespace:
        result = namespace.run(sys.executable, "-c", code)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.decode().split("\n")
        assert "dev l3l4cfg1 src 192.0.2.1" in lines[0]
        assert "dev l3l4cfg1" in result.stdout.decode().split("\n\n")[1]


def test_multi_queue_devices_take_several_queues() -> None:
    require_root()
    with TunDevice("l3l4mq0", multi_queue=True) as first, TunDevice("l3l4mq0", multi_queue=True) as second:
        assert first.name == second.name == "l3l4mq0"
        assert link("l3l4mq0")["num_tx_queues"] >= 2  # type: ignore[operator]


def test_errors_say_what_to_do() -> None:
    require_root()
    with pytest.raises(TunError, match="longer than 15 bytes"):
        TunDevice("a-name-that-is-too-long")
    with TunDevice("l3l4busy0"):
        with pytest.raises(TunError, match="busy"):
            TunDevice("l3l4busy0")
        with pytest.raises(TunError, match="other flags"):
            TunDevice("l3l4busy0", multi_queue=True)
    subprocess.run(["ip", "tuntap", "add", "dev", "l3l4tap0", "mode", "tap"], check=True)
    try:
        with pytest.raises(TunError, match="other flags"):
            TunDevice("l3l4tap0")  # a TAP device of that name exists
    finally:
        subprocess.run(["ip", "link", "del", "l3l4tap0"], check=True)


def test_without_privileges_the_error_says_so() -> None:
    require_root()
    code = "from l3l4_tun import TunDevice\ntry:\n    TunDevice()\nexcept OSError as e:\n    print(type(e).__name__, e)\n"
    # root without CAP_NET_ADMIN, as an unprivileged user would be
    argv = ["setpriv", "--bounding-set=-net_admin", sys.executable, "-c", code]
    result = subprocess.run(argv, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"TunError"), result.stdout
    assert b"root or with CAP_NET_ADMIN" in result.stdout
