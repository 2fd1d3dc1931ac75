"""SYN cookies (RFC 4987 §3.6): a SYN-ACK whose initial sequence number carries what
the stack must remember of the SYN, so that answering a SYN costs no memory.

The ISN of a cookie SYN-ACK is ``t mod 32`` (5 bits) · MSS index (3 bits) · a 24-bit
keyed BLAKE2s of the 4-tuple, the full time counter ``t``, the peer's ISN and the MSS
index. ``t`` counts minutes of the caller's clock: a cookie is good in the minute it was
made and the next, so it expires between one and two minutes after it was sent.

When the SYN offered timestamps (RFC 7323), the other options ride in the low bits of
the SYN-ACK's TSval, which the peer echoes in TSecr, as Linux does: the peer's window
scale (4 bits, 15 for none) and SACK-permitted (1 bit). Without timestamps a cookie
connection has no window scaling and no SACK, and the SYN-ACK offers neither.
"""

from __future__ import annotations

import hashlib
import struct

from ..config import Config
from ..wire.tcp import TcpOptions, TcpSegment, encode_options
from .connection import syn_window, window_shift
from .seq import MASK, seq_sub

__all__ = ["CookieOptions", "SynCookies"]

# RFC 4987 §3.6: MSS values a 3-bit index can name; a peer's MSS is rounded down to
# one of them (below the smallest, the smallest is used).
_MSS_TABLE = (64, 536, 1220, 1300, 1400, 1440, 1460, 8960)
# RFC 9293 §3.7.1: the MSS assumed when the SYN names none (RFC 8200 §5 for IPv6).
_DEFAULT_MSS = {4: 536, 6: 1220}
_COUNTER_SECONDS = 60
_LIFETIME = 2 * _COUNTER_SECONDS
_TS_BITS = 5
_TS_MASK = (1 << _TS_BITS) - 1
_NO_WSCALE = 0xF
_SACK_BIT = 0x10
_MAX_WINDOW_SHIFT = 14  # RFC 7323 §2.3
_HASH_INPUT = struct.Struct("!QI")


class CookieOptions:
    """What a valid cookie ACK tells about the SYN it answers."""

    __slots__ = ("iss", "mss", "wscale", "sack", "timestamps")

    def __init__(self, iss: int, mss: int, wscale: int | None, sack: bool, timestamps: bool) -> None:
        self.iss = iss
        self.mss = mss
        """The peer's MSS, as the table rounded it."""
        self.wscale = wscale
        """The peer's window scale, or None if it offered none."""
        self.sack = sack
        self.timestamps = timestamps


class SynCookies:
    """Makes cookie SYN-ACKs and checks the ACKs that come back."""

    __slots__ = ("_key", "_config", "_last_sent")

    def __init__(self, key: bytes, config: Config) -> None:
        self._key = key
        self._config = config
        self._last_sent: float | None = None

    def _check_bits(self, flow_key: bytes, counter: int, irs: int, mss_index: int) -> int:
        data = flow_key + _HASH_INPUT.pack(counter, irs) + bytes((mss_index,))
        digest = hashlib.blake2s(data, key=self._key, digest_size=3, person=b"l3l4syn").digest()
        return int.from_bytes(digest, "big")

    def _isn(self, flow_key: bytes, counter: int, irs: int, mss_index: int) -> int:
        return ((counter & 0x1F) << 27) | (mss_index << 24) | self._check_bits(flow_key, counter, irs, mss_index)

    def syn_ack(
        self, flow_key: bytes, syn: TcpSegment, version: int, our_mss: int, ts_now: int, now: float
    ) -> tuple[int, int, bytes]:
        """The ISN, window and encoded options of a SYN-ACK answering ``syn`` with a
        cookie. ``ts_now`` is the flow's timestamp clock (offset included) at ``now``."""
        config = self._config
        offered = syn.options
        peer_mss = offered.mss if offered.mss is not None else _DEFAULT_MSS[version]
        mss_index = max(0, sum(1 for value in _MSS_TABLE if value <= peer_mss) - 1)
        isn = self._isn(flow_key, int(now // _COUNTER_SECONDS), syn.seq, mss_index)
        options = TcpOptions(mss=our_mss)
        if offered.ts_val is not None and config.tcp_timestamps:
            # RFC 7323 §2.2 / RFC 2018 §2: offer back what the SYN offered, and remember it
            # in the TSval's low bits (kept no later than the clock, so TSvals never run
            # backwards once the connection exists).
            peer_wscale = offered.wscale if config.tcp_window_scaling else None
            options.sack_permitted = offered.sack_permitted and config.tcp_sack
            bits = _SACK_BIT if options.sack_permitted else 0
            if peer_wscale is None:
                bits |= _NO_WSCALE
            else:
                options.wscale = window_shift(config.tcp_receive_buffer)
                bits |= peer_wscale
            ts_val = (ts_now & ~_TS_MASK) | bits
            if seq_sub(ts_val, ts_now) > 0:
                ts_val -= _TS_MASK + 1
            options.ts_val = ts_val & MASK
            options.ts_ecr = offered.ts_val
        self._last_sent = now
        return isn, syn_window(config), encode_options(options)

    def in_use(self, now: float) -> bool:
        """Whether a cookie sent recently may still come back. ACKs for no connection
        are checked only then (as Linux does), so that at other times a blind attacker
        has no cookie to guess."""
        return self._last_sent is not None and now - self._last_sent <= _LIFETIME

    def check(self, flow_key: bytes, ack: TcpSegment, ts_now: int, now: float) -> CookieOptions | None:
        """The options a cookie ACK (RST and SYN clear, ACK set) stands for, or None if
        its cookie is not one we made in the last two minutes."""
        iss = (ack.ack - 1) & MASK
        irs = (ack.seq - 1) & MASK
        mss_index = (iss >> 24) & 0x7
        counter = int(now // _COUNTER_SECONDS)
        for made in (counter, counter - 1):
            if made >= 0 and (made & 0x1F) == iss >> 27 and self._isn(flow_key, made, irs, mss_index) == iss:
                break
        else:
            return None
        config = self._config
        ts_ecr = ack.options.ts_ecr
        if ack.options.ts_val is None or not config.tcp_timestamps:
            return CookieOptions(iss, _MSS_TABLE[mss_index], None, False, False)
        # The echo must be a TSval we could have sent within the cookie's lifetime.
        if not 0 <= seq_sub(ts_now, ts_ecr) <= _LIFETIME * 1000 + _TS_MASK:
            return None
        wscale_bits = ts_ecr & 0xF
        sack = bool(ts_ecr & _SACK_BIT)
        if (wscale_bits != _NO_WSCALE and (wscale_bits > _MAX_WINDOW_SHIFT or not config.tcp_window_scaling)) or (
            sack and not config.tcp_sack
        ):
            return None
        wscale = None if wscale_bits == _NO_WSCALE else wscale_bits
        return CookieOptions(iss, _MSS_TABLE[mss_index], wscale, sack, True)
