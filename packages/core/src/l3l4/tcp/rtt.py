"""RTT estimation and the retransmission timeout (RFC 6298)."""

from __future__ import annotations

__all__ = ["RttEstimator"]

# RFC 6298 §2: alpha = 1/8, beta = 1/4, K = 4, initial RTO of one second.
_ALPHA = 0.125
_BETA = 0.25
_K = 4
INITIAL_RTO = 1.0
# RFC 6298 §5.7: after a handshake timeout, data transfer starts from 3 seconds.
_RTO_AFTER_SYN_TIMEOUT = 3.0
# The clock granularity G of RFC 6298 §2.2: our clock is the caller's float seconds;
# 1 ms keeps the variance term from vanishing on very smooth paths.
_GRANULARITY = 0.001


class RttEstimator:
    """SRTT, RTTVAR and RTO, with the exponential backoff of RFC 6298 §5.5."""

    __slots__ = ("srtt", "rttvar", "rto", "min_rto", "max_rto", "_base")

    def __init__(self, min_rto: float, max_rto: float) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.min_rto = min_rto
        self.max_rto = max_rto
        self._base = INITIAL_RTO
        self.rto = min(max(INITIAL_RTO, min_rto), max_rto)

    def sample(self, rtt: float) -> None:
        """Take one RTT measurement (never from a retransmitted segment: Karn's rule,
        RFC 6298 §3). Also ends any backoff (§5.7)."""
        rtt = max(rtt, 0.0)
        if self.srtt is None:
            # RFC 6298 §2.2: the first measurement.
            self.srtt = rtt
            self.rttvar = rtt / 2
        else:
            # RFC 6298 §2.3: RTTVAR first, with the old SRTT.
            self.rttvar = (1 - _BETA) * self.rttvar + _BETA * abs(self.srtt - rtt)
            self.srtt = (1 - _ALPHA) * self.srtt + _ALPHA * rtt
        self._base = self.srtt + max(_GRANULARITY, _K * self.rttvar)
        self.rto = min(max(self._base, self.min_rto), self.max_rto)

    def back_off(self) -> None:
        """RFC 6298 §5.5: double the RTO after a retransmission timeout."""
        self.rto = min(self.rto * 2, self.max_rto)

    def reset_backoff(self) -> None:
        """Undo backoff once new data is acknowledged (RFC 6298 §5.7 allows keeping the
        doubled value until a fresh sample; we return to the estimate at once)."""
        self.rto = min(max(self._base, self.min_rto), self.max_rto)

    def restart_after_handshake_timeout(self) -> None:
        """RFC 6298 §5.7: the SYN (or SYN-ACK) timer expired and no RTT sample exists:
        data transfer begins with an RTO of 3 seconds."""
        self._base = _RTO_AFTER_SYN_TIMEOUT
        self.rto = min(max(self._base, self.min_rto), self.max_rto)
