"""Congestion control behind one small interface: NewReno (RFC 5681, RFC 6582) and
CUBIC (RFC 9438), with the initial window of RFC 6928.

Loss recovery itself (which segments to resend, how much is in flight) lives in the
connection; a controller only decides how large the window is.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["CongestionControl", "NewReno", "Cubic", "HyStart", "initial_window", "slow_start", "CONTROLLERS"]


def initial_window(mss: int) -> int:
    """RFC 6928 §2: min(10*MSS, max(2*MSS, 14600))."""
    return min(10 * mss, max(2 * mss, 14600))


class CongestionControl(Protocol):
    """What a congestion controller does for one connection. Windows are in bytes."""

    cwnd: float
    ssthresh: float
    growth_divisor: int

    def on_ack(self, acked: int, now: float, srtt: float | None) -> None:
        """``acked`` new bytes were acknowledged outside loss recovery."""

    def on_congestion(self, now: float, flight_size: int) -> None:
        """Loss detected by duplicate ACKs or SACK: entering fast recovery."""

    def on_timeout(self, flight_size: int) -> None:
        """The retransmission timer expired."""


def slow_start(cc: CongestionControl, acked: int) -> None:
    """Slow start by byte counting (RFC 3465 §2.2): the window grows by the bytes newly
    delivered, up to ssthresh. RFC 5681 eq. (2) and RFC 3465 §2.3 cap the growth at one
    or two SMSS per ACK; Linux does not (since 3.8), and a receiver behind GRO, or one
    answering TSO super-packets, acknowledges tens of segments per ACK: capped, slow
    start would grow by one segment where it sent forty."""
    cc.cwnd = min(cc.cwnd + acked / cc.growth_divisor, max(cc.ssthresh, cc.cwnd))


# RFC 9406 §4.3 constants.
_MIN_RTT_THRESH = 0.004
_MAX_RTT_THRESH = 0.016
_MIN_RTT_DIVISOR = 8
_N_RTT_SAMPLE = 8
_CSS_GROWTH_DIVISOR = 4
_CSS_ROUNDS = 5
_INITIAL_SSTHRESH = float(1 << 30)


class HyStart:
    """RFC 9406 HyStart++: leave the initial slow start when the round trip time grows
    (a queue is building), through a few rounds of Conservative Slow Start (CSS) in case
    the rise was jitter, instead of at the first loss of an overshoot of up to a window.

    ``L`` (the per-ACK growth limit of §4.3) is infinite, as for a paced sender: a
    receiver behind GRO acknowledges tens of segments per ACK (see ``slow_start``)."""

    __slots__ = ("window_end", "last_round_min", "round_min", "samples", "css_baseline", "css_rounds")

    def __init__(self) -> None:
        self.window_end: int | None = None
        self.last_round_min = float("inf")
        self.round_min = float("inf")
        self.samples = 0
        self.css_baseline: float | None = None
        self.css_rounds = 0

    def on_ack(self, cc: CongestionControl, ack: int, snd_nxt: int, rtt: float | None) -> None:
        """An ACK up to ``ack`` (stream offsets) with an RTT sample, before the window
        grows. Only in the initial slow start (RFC 9406 §4.2)."""
        if cc.ssthresh < _INITIAL_SSTHRESH or cc.cwnd >= cc.ssthresh:
            cc.growth_divisor = 1
            return
        if self.window_end is None or ack >= self.window_end:
            # §4.2: a round ends when the data sent at its start is acknowledged.
            self.window_end = snd_nxt
            self.last_round_min, self.round_min, self.samples = self.round_min, float("inf"), 0
            if self.css_baseline is not None:
                self.css_rounds += 1
                if self.css_rounds >= _CSS_ROUNDS:
                    # §4.2: CSS_ROUNDS rounds of CSS: enter congestion avoidance.
                    cc.ssthresh = cc.cwnd
                    cc.growth_divisor = 1
                    return
        if rtt is None:
            return
        self.round_min = min(self.round_min, rtt)
        self.samples += 1
        if self.samples < _N_RTT_SAMPLE:
            return
        if self.css_baseline is None:
            threshold = max(_MIN_RTT_THRESH, min(self.last_round_min / _MIN_RTT_DIVISOR, _MAX_RTT_THRESH))
            if self.round_min >= self.last_round_min + threshold:
                # §4.2: the delay grew: Conservative Slow Start.
                self.css_baseline, self.css_rounds = self.round_min, 0
                cc.growth_divisor = _CSS_GROWTH_DIVISOR
        elif self.round_min < self.css_baseline:
            # §4.2: the rise was spurious: back to slow start.
            self.css_baseline = None
            cc.growth_divisor = 1


class NewReno:
    """RFC 5681 §3.1 slow start and congestion avoidance (with byte counting), RFC 6582
    window reduction on loss."""

    __slots__ = ("mss", "cwnd", "ssthresh", "growth_divisor", "_counted")

    def __init__(self, mss: int) -> None:
        self.mss = mss
        self.cwnd: float = float(initial_window(mss))
        # RFC 5681 §3.1: the initial ssthresh may be arbitrarily high.
        self.ssthresh: float = _INITIAL_SSTHRESH
        self.growth_divisor = 1  # HyStart++'s CSS divides slow start's growth
        self._counted = 0

    def on_ack(self, acked: int, now: float, srtt: float | None) -> None:
        if self.cwnd < self.ssthresh:
            slow_start(self, acked)
            return
        # RFC 5681 §3.1, byte counting: one SMSS per window of acknowledged bytes.
        self._counted += acked
        if self._counted >= self.cwnd:
            self._counted -= int(self.cwnd)
            self.cwnd += self.mss

    def on_congestion(self, now: float, flight_size: int) -> None:
        # RFC 5681 eq. (4); the connection recovers with cwnd = ssthresh (RFC 6675 §5).
        self.ssthresh = max(flight_size / 2, 2 * self.mss)
        self.cwnd = self.ssthresh
        self._counted = 0

    def on_timeout(self, flight_size: int) -> None:
        # RFC 5681 eq. (4) and §3.1: the loss window is one segment.
        self.ssthresh = max(flight_size / 2, 2 * self.mss)
        self.cwnd = float(self.mss)
        self._counted = 0


# RFC 9438 §4.1, §4.6: C = 0.4, beta_cubic = 0.7, fast convergence on.
_C = 0.4
_BETA = 0.7
_ALPHA = 3 * (1 - _BETA) / (1 + _BETA)


class Cubic:
    """RFC 9438: the window grows as a cubic function of time since the last
    congestion event, never slower than Reno would (the Reno-friendly region, §4.3)."""

    __slots__ = ("mss", "cwnd", "ssthresh", "growth_divisor", "_w_max", "_k", "_epoch", "_w_est")

    def __init__(self, mss: int) -> None:
        self.mss = mss
        self.cwnd: float = float(initial_window(mss))
        self.ssthresh: float = _INITIAL_SSTHRESH
        self.growth_divisor = 1
        self._w_max = 0.0
        self._k = 0.0
        self._epoch: float | None = None
        self._w_est = 0.0

    def on_ack(self, acked: int, now: float, srtt: float | None) -> None:
        mss = self.mss
        if self.cwnd < self.ssthresh:
            slow_start(self, acked)
            return
        segments = self.cwnd / mss
        if self._epoch is None:
            # RFC 9438 §4.2: a new congestion-avoidance epoch.
            self._epoch = now
            self._w_est = segments
            if segments < self._w_max:
                self._k = ((self._w_max - segments) / _C) ** (1 / 3)
            else:
                self._k = 0.0
                self._w_max = segments
        rtt = srtt if srtt is not None else 0.0
        t = now - self._epoch
        # RFC 9438 §4.2: aim for W_cubic(t + RTT), within [cwnd, 1.5 cwnd].
        target = _C * (t + rtt - self._k) ** 3 + self._w_max
        target = min(max(target, segments), 1.5 * segments)
        # RFC 9438 §4.3: the Reno-friendly estimate.
        self._w_est += _ALPHA * acked / self.cwnd
        if _C * (t - self._k) ** 3 + self._w_max < self._w_est:
            self.cwnd = max(self.cwnd, self._w_est * mss)
        else:
            # RFC 9438 §4.4, §4.5: cwnd += (target - cwnd) / cwnd per acknowledged segment.
            self.cwnd += (target - segments) / segments * acked

    def _reduce(self) -> None:
        segments = self.cwnd / self.mss
        # RFC 9438 §4.6: fast convergence releases bandwidth to newer flows.
        self._w_max = segments * (1 + _BETA) / 2 if segments < self._w_max else segments
        self.ssthresh = max(self.cwnd * _BETA, 2 * self.mss)
        self._epoch = None

    def on_congestion(self, now: float, flight_size: int) -> None:
        self._reduce()
        self.cwnd = self.ssthresh

    def on_timeout(self, flight_size: int) -> None:
        # RFC 9438 §4.8: as for a congestion event, then restart from one segment.
        self._reduce()
        self.cwnd = float(self.mss)


CONTROLLERS: dict[str, type[NewReno] | type[Cubic]] = {"newreno": NewReno, "cubic": Cubic}
