"""Closed-form formulas of the tutorial, computed by the C++ engine (physics/collectives.hpp)."""
from __future__ import annotations

from .. import _core
from ..units import Quantity, as_si

__all__ = ["calc_ring_allreduce_time"]


def calc_ring_allreduce_time(message_bytes, n_gpus, bandwidth_bytes_s, latency_s=0.0) -> Quantity:
    """Ring all-reduce: 2(N-1)/N x M / BW + 2(N-1) x latency (alpha-beta model, Thakur et al. 2005).

    Plain numbers are bytes, bytes/s and seconds; Quantities may use any compatible unit.
    """
    if isinstance(n_gpus, bool) or not isinstance(n_gpus, int):
        raise ValueError(f"n_gpus must be an integer >= 1, got {n_gpus!r}")
    seconds = _core.ring_allreduce_time_s(as_si(message_bytes, "B", "message_bytes"), n_gpus,
                                          as_si(bandwidth_bytes_s, "B/s", "bandwidth_bytes_s"),
                                          as_si(latency_s, "s", "latency_s"))
    return Quantity(seconds, "s")
