"""Closed-form formulas of the tutorial, computed by the C++ engine (physics/collectives.hpp,
physics/operations.hpp)."""
from __future__ import annotations

from .. import _core
from ..units import Quantity, as_si, positive_si

__all__ = ["calc_ring_allreduce_time", "calc_mtbf_cluster", "calc_failure_probability",
           "calc_young_daly_interval", "calc_daly_interval", "calc_expected_wall_time"]


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


def calc_mtbf_cluster(component_mtbf, n_components) -> Quantity:
    """The Fragility Wall: a synchronous job stops when any component fails, so its MTBF is the
    component MTBF / N (independent exponential failures). Plain numbers are hours."""
    if isinstance(n_components, bool) or not isinstance(n_components, int) or n_components < 1:
        raise ValueError(f"n_components must be an integer >= 1, got {n_components!r}")
    seconds = _core.cluster_mtbf_s(positive_si(component_mtbf, "h", "component_mtbf"), n_components)
    return Quantity(seconds / 3600.0, "h")


def calc_failure_probability(mtbf, duration) -> float:
    """P(at least one failure in `duration`) = 1 - exp(-T / MTBF). Plain numbers are hours."""
    t = as_si(duration, "h", "duration")
    if t < 0:
        raise ValueError(f"duration must be >= 0, got {duration!r}")
    return _core.failure_probability(t, positive_si(mtbf, "h", "mtbf"))


def calc_young_daly_interval(checkpoint_time, mtbf) -> Quantity:
    """Young's (1974) first-order optimum checkpoint interval sqrt(2 delta M). Plain numbers:
    checkpoint_time in seconds, mtbf in hours."""
    return Quantity(_core.young_interval_s(positive_si(checkpoint_time, "s", "checkpoint_time"),
                                           positive_si(mtbf, "h", "mtbf")), "s")


def calc_daly_interval(checkpoint_time, mtbf) -> Quantity:
    """Daly's (2006) higher-order optimum: sqrt(2 delta M)[1 + sqrt(delta/2M)/3 + (delta/2M)/9] - delta
    (M when delta >= 2M). Plain numbers: checkpoint_time in seconds, mtbf in hours."""
    return Quantity(_core.daly_interval_s(positive_si(checkpoint_time, "s", "checkpoint_time"),
                                          positive_si(mtbf, "h", "mtbf")), "s")


def calc_expected_wall_time(work, interval, checkpoint_time, restart_time, mtbf) -> Quantity:
    """Daly's (2006) expected wall-clock time of `work` checkpointed every `interval` of work:
    M e^(R/M) (e^((tau + delta)/M) - 1) work / tau. Plain numbers: work, interval and mtbf in
    hours; checkpoint_time and restart_time in seconds."""
    restart = as_si(restart_time, "s", "restart_time")
    if restart < 0:
        raise ValueError(f"restart_time must be >= 0, got {restart_time!r}")
    seconds = _core.daly_wall_time_s(positive_si(work, "h", "work"), positive_si(interval, "h", "interval"),
                                     positive_si(checkpoint_time, "s", "checkpoint_time"), restart,
                                     positive_si(mtbf, "h", "mtbf"))
    return Quantity(seconds / 3600.0, "h")
