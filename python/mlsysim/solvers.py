"""The tutorial's solver classes (ServingModel, ContinuousBatchingModel, CompressionModel,
DistributedModel) and the other CLI solvers, on the C++ engine.

Each call runs the same command the CLI runs (in-process, no subprocess), so results and error
messages are identical to `mlsysim <command> --format json`. Results are `SolverResult` objects:
attribute access to every JSON field, plus unit-carrying Quantities for times (ms) and sizes (GB).
"""
from __future__ import annotations

import json

from . import _core
from .engine import in_argument_names
from .registry import HardwareNode, Model
from .systems import Cluster, Systems
from .units import Quantity, as_si, positive_si

__all__ = ["ServingModel", "ContinuousBatchingModel", "CompressionModel", "DistributedModel",
           "ServingSimulator", "ParallelismOptimizer", "AmdahlModel", "CollectiveModel", "SolverResult",
           "cli"]


def _name(obj, what: str) -> str:
    if isinstance(obj, (Model, HardwareNode, Cluster)):
        return obj.id
    if isinstance(obj, str):
        return obj
    raise TypeError(f"{what} must be a catalog entry or a name, got {type(obj).__name__}")


def cli(*args: str, raise_errors: bool = True, python_names: dict | None = None):
    """Runs any mlsysim command in-process with --format json and returns its JSON document.

    ``mlsysim.cli("solve", "--model", "llama3-8b", "--hardware", "h100")``

    `python_names` (for the solver classes) words errors in the caller's argument names: flag ->
    argument where they differ; the other flags passed read as --seq-len -> seq_len.
    """
    code, out, err = _core.cli([str(a) for a in args] + ["--format", "json"])
    message = err.strip().removeprefix("error: ")
    if python_names is not None:  # the flags this call passed, as the caller's arguments
        message = in_argument_names(message, [a for a in map(str, args) if a.startswith("--")], python_names)
    if code == 1:
        raise ValueError(message or out.strip())
    data = json.loads(out) if out.strip() else {}
    if code == 2 and raise_errors:
        exc = _core.OOMError(message)
        exc.required_bytes = data.get("required_bytes", data.get("memory_footprint_bytes"))
        exc.available_bytes = data.get("available_bytes", data.get("memory_capacity_bytes"))
        raise exc
    if code not in (0, 2):
        raise RuntimeError(message or f"mlsysim exited with {code}")
    return data


def _flags(**kwargs) -> list:
    out = []
    for flag, value in kwargs.items():
        if value is None or value is False:
            continue
        name = "--" + flag.replace("_", "-")
        if value is True:
            out.append(name)
        else:
            out += [name, str(value)]
    return out


class SolverResult:
    """A solver's JSON result with attribute access.

    ``r.ttft_s`` is the raw SI float; ``r.ttft`` is a Quantity in ms. Keys ending in ``_bytes``
    also appear without the suffix as Quantities in GB, ``_w`` in W and ``_j`` in J
    (``r.average_power_per_gpu``, ``r.energy_per_token``). ``r.to_dict()`` is the plain JSON.
    """

    def __init__(self, data: dict, kind: str, aliases: dict | None = None):
        self._data = data
        self._kind = kind
        self._aliases = aliases or {}

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._aliases:
            value = self._aliases[name](self._data)
            return value
        data = self._data
        if name in data:
            v = data[name]
            return SolverResult(v, self._kind) if isinstance(v, dict) else v
        if name + "_s" in data:
            return Quantity(data[name + "_s"] * 1e3, "ms")
        if name + "_bytes" in data:
            return Quantity(data[name + "_bytes"] / 1e9, "GB")
        if name + "_w" in data:
            return Quantity(data[name + "_w"], "W")
        if name + "_j" in data:
            return Quantity(data[name + "_j"], "J")
        raise AttributeError(f"{self._kind} result has no field '{name}' "
                             f"(fields: {', '.join(sorted(data))})")

    def __getitem__(self, key):
        return self._data[key]

    def __dir__(self):
        names = set(self._data) | set(self._aliases)
        names |= {k[:-2] for k in self._data if k.endswith("_s")}
        names |= {k[:-6] for k in self._data if k.endswith("_bytes")}
        names |= {k[:-2] for k in self._data if k.endswith(("_w", "_j"))}
        return sorted(names)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(self._data))

    @property
    def constraint_trace(self) -> list:
        return list(self._data.get("trace", []))

    def summary(self) -> str:
        lines = [f"{self._kind}:"]
        for k, v in self._data.items():
            if not isinstance(v, (dict, list)):
                lines.append(f"  {k:<32} {v}")
        lines += [f"  - {t}" for t in self.constraint_trace]
        return "\n".join(lines)

    def __repr__(self):
        shown = [f"{k}={v!r}" for k, v in self._data.items()
                 if not isinstance(v, (dict, list)) and (k.endswith("_s") or k in
                 ("feasible", "mfu", "bottleneck", "scaling_efficiency"))][:8]
        return f"{self._kind}Result({', '.join(shown)})"


class ServingModel:
    """Two-phase LLM serving: TTFT (prefill) and ITL (decode), KV cache, speculative and
    disaggregated serving (``mlsysim serve``)."""

    def solve(self, model, hardware, seq_len: int, batch_size: int = 1, output_len: int = 128,
              precision: str | None = None, kv_precision: str | None = None, tp_size: int | None = None,
              efficiency: float | None = None, draft_model=None, draft_acceptance_rate: float | None = None,
              draft_tokens: int | None = None, decode_hardware=None, network_bandwidth=None,
              prefill_chunk_tokens: int | None = None, runtime: str | None = None,
              quantize_head: bool = False, raise_errors: bool = True,
              compute_precision: str | None = None, step_host_us: float | None = None) -> SolverResult:
        """step_host_us: the serving runtime's host work per engine iteration, microseconds (default:
        20 framework calls at the device's calibrated eager dispatch cost; 0 for a runtime that
        overlaps its scheduling with the GPU). compute_precision: math precision under weight-only
        quantization (precision="int4", compute_precision="bf16")."""
        link = None
        if network_bandwidth is not None:
            link = (network_bandwidth.m_as("GB/s") if isinstance(network_bandwidth, Quantity)
                    else float(network_bandwidth) / 1e9)
        data = cli("serve", "--model", _name(model, "model"), "--hardware", _name(hardware, "hardware"),
                   *_flags(seq_len=seq_len, batch_size=batch_size, output_len=output_len,
                           precision=precision, kv_precision=kv_precision, tp=tp_size,
                           efficiency=efficiency,
                           draft_model=None if draft_model is None else _name(draft_model, "draft_model"),
                           acceptance_rate=draft_acceptance_rate, draft_tokens=draft_tokens,
                           decode_hardware=None if decode_hardware is None else _name(decode_hardware, "decode_hardware"),
                           kv_link_gbs=link, prefill_chunk=prefill_chunk_tokens, runtime=runtime,
                           quantize_head=quantize_head, compute_precision=compute_precision,
                           step_host_us=step_host_us),
                   raise_errors=raise_errors,
                   python_names={"--tp": "tp_size", "--acceptance-rate": "draft_acceptance_rate",
                                 "--kv-link-gbs": "network_bandwidth", "--prefill-chunk": "prefill_chunk_tokens"})
        return SolverResult(data, "Serving", {
            "kv_cache_per_request": lambda d: Quantity(d["kv_cache_bytes_per_request"] / 1e9, "GB"),
            "speculative_speedup": lambda d: d.get("speculative", {}).get("speculative_speedup", 1.0),
            "max_concurrent_requests": lambda d: d["max_concurrent_requests"]["paged"],
            "throughput": lambda d: Quantity(d["tokens_per_s"], "tokens/s"),
        })


class ContinuousBatchingModel:
    """KV-cache capacity with static vs paged allocation, under an optional ITL SLO."""

    def solve(self, model, hardware, seq_len: int, max_batch_size: int = 256, page_size: int = 16,
              output_len: int | None = None, mean_tokens: int | None = None, itl_slo=None,
              precision: str | None = None, kv_precision: str | None = None, tp_size: int | None = None,
              raise_errors: bool = True) -> SolverResult:
        slo_ms = None
        if itl_slo is not None:
            slo_ms = itl_slo.m_as("ms") if isinstance(itl_slo, Quantity) else float(itl_slo) * 1e3
        # `seq_len` is a request's whole length (prompt + output), what static allocation reserves.
        if output_len is None:
            output_len = 1
            seq_len = seq_len - 1 if isinstance(seq_len, int) and seq_len > 1 else seq_len
        data = cli("serve", "--model", _name(model, "model"), "--hardware", _name(hardware, "hardware"),
                   *_flags(seq_len=seq_len, output_len=output_len, max_batch=max_batch_size,
                           page_size=page_size, mean_tokens=mean_tokens, itl_slo_ms=slo_ms,
                           precision=precision, kv_precision=kv_precision, tp=tp_size),
                   raise_errors=raise_errors,
                   python_names={"--max-batch": "max_batch_size", "--itl-slo-ms": "itl_slo", "--tp": "tp_size"})
        cb = data["continuous_batching"]
        cb = dict(cb, max_concurrent_requests=data["max_concurrent_requests"]["paged"],
                  static_max_concurrent_requests=data["max_concurrent_requests"]["static"],
                  feasible=data["feasible"], trace=data.get("trace", []))
        return SolverResult(cb, "ContinuousBatching", {
            "throughput_tokens_per_sec": lambda d: d["paged"]["tokens_per_s"],
            "speedup_vs_static": lambda d: d.get("speedup_vs_static", 1.0),
        })


class CompressionModel:
    """Quantization and pruning: size, engine-computed speedup, literature accuracy range, fleet."""

    def solve(self, model, hardware, method: str = "quantization", target_bitwidth: int | None = None,
              target: str | None = None, sparsity: float | None = None, sparsity_type: str | None = None,
              baseline_precision: str | None = None, scheme: str | None = None, qps: float | None = None,
              quantize_head: bool = False, raise_errors: bool = True) -> SolverResult:
        if method == "quantization" and target_bitwidth is None and target is None:
            target_bitwidth = 8
        data = cli("compress", "--model", _name(model, "model"), "--hardware", _name(hardware, "hardware"),
                   *_flags(method=method, target_bitwidth=target_bitwidth, target=target,
                           sparsity=sparsity, sparsity_type=sparsity_type, baseline=baseline_precision,
                           scheme=scheme, qps=qps, quantize_head=quantize_head),
                   raise_errors=raise_errors, python_names={"--baseline": "baseline_precision"})
        return SolverResult(data, "Compression", {
            "compressed_size": lambda d: Quantity(d["compressed_size_bytes"] / 1e9, "GB"),
            "original_size": lambda d: Quantity(d["original_size_bytes"] / 1e9, "GB"),
        })


class DistributedModel:
    """Distributed training on a fleet: DP x TP x PP (x CP x EP), collectives on the cluster's
    topology, pipeline bubbles, stragglers, memory ledger, time-to-train (``mlsysim train``).

    Layout sweeps are its main use, so a layout that does not fit returns ``feasible == False``
    (with the remedies in ``constraint_trace``) instead of raising; pass ``raise_errors=True`` to
    raise ``OOMError``.
    """

    def __init__(self, straggler_factor: float = 1.0):
        if not straggler_factor >= 1.0:
            raise ValueError(f"straggler_factor must be >= 1, got {straggler_factor}")
        self.straggler_factor = straggler_factor

    def solve(self, model, fleet, batch_size: int, tp_size: int = 1, pp_size: int = 1, seq_len: int = 2048,
              microbatch_count: int | None = None, micro_batch_size: int | None = None,
              dp_size: int | None = None, cp_size: int | None = None, ep_size: int | None = None,
              zero_stage: int | None = None, activation_recomputation=None, precision: str | None = None,
              gpus: int | None = None, tokens: float | None = None, raise_errors: bool = False,
              **train_flags) -> SolverResult:
        """``train_flags`` are further ``mlsysim train`` flags by their Python names, e.g.
        ``vpp=5, tp_comm_overlap=True, overlap_p2p_comm=True, attention="fa2"``."""
        if isinstance(fleet, (HardwareNode,)) or (isinstance(fleet, str) and fleet not in Systems.Clusters):
            target = ["--hardware", _name(fleet, "fleet")]
        else:
            target = ["--cluster", _name(fleet, "fleet")]
        notes = []
        if micro_batch_size is None and microbatch_count:
            # Gradient accumulation over `microbatch_count` micro-batches per replica.
            total = gpus or (fleet.total_gpus if isinstance(fleet, Cluster) else None)
            if total:
                dp = dp_size or max(1, total // (tp_size * pp_size * (cp_size or 1) * (ep_size or 1)))
                per_replica = max(1, batch_size // dp)
                micro_batch_size = max(1, per_replica // microbatch_count)
                if per_replica < microbatch_count:
                    notes.append(f"microbatch_count={microbatch_count} needs >= {microbatch_count} "
                                 f"sequences per replica; each of the {dp} replicas gets {per_replica}, "
                                 f"so it runs {per_replica} micro-batches of 1")
        recompute = {True: "full", False: "none"}.get(activation_recomputation, activation_recomputation)
        straggler = (["--straggler", "factor", "--straggler-value", str(self.straggler_factor)]
                     if self.straggler_factor > 1.0 else [])
        data = cli("train", "--model", _name(model, "model"), *target,
                   *_flags(gpus=gpus, tp=tp_size, pp=pp_size, dp=dp_size, cp=cp_size, ep=ep_size,
                           zero=zero_stage, global_batch_size=batch_size, micro_batch_size=micro_batch_size,
                           seq_len=seq_len, recompute=recompute, precision=precision, tokens=tokens,
                           **train_flags),
                   *straggler, raise_errors=raise_errors,
                   python_names={"--tp": "tp_size", "--pp": "pp_size", "--dp": "dp_size", "--cp": "cp_size",
                                 "--ep": "ep_size", "--zero": "zero_stage", "--global-batch-size": "batch_size",
                                 "--recompute": "activation_recomputation", "--cluster": "fleet",
                                 "--hardware": "fleet", "--straggler-value": "straggler_factor"})
        if notes:
            data["trace"] = notes + list(data.get("trace", []))
        return SolverResult(data, "Distributed", {
            "communication_overhead": lambda d: d["communication_fraction"],
            "effective_mfu": lambda d: d["mfu"],
            "step_latency_total": lambda d: Quantity(d["step_time_s"] * 1e3, "ms"),
            "memory_per_gpu": lambda d: Quantity(d["memory_per_gpu_bytes"] / 1e9, "GB"),
        })


class ServingSimulator:
    """Request-level serving simulation (``mlsysim simulate``): p50/p90/p99 TTFT, ITL, per-request
    TPOT and E2E. ``find_max_rate=True`` (with ``ttft_slo_ms``, ``itl_slo_ms``) searches the highest
    Poisson rate whose p99 TTFT and p99 TPOT meet them, MLPerf Server's rule (``max_rate_rps``)."""

    def solve(self, model, hardware, rate: float | None = None, requests: int | None = None,
              prompt_len: int | None = None, output_len: int | None = None, seed: int | None = None,
              trace: str | None = None, sweep_rate=None, chunked_prefill: bool = False, **kwargs) -> SolverResult:
        sweep = ",".join(str(r) for r in sweep_rate) if sweep_rate is not None else None
        data = cli("simulate", "--model", _name(model, "model"), "--hardware", _name(hardware, "hardware"),
                   *_flags(rate=rate, requests=requests, prompt_len=prompt_len, output_len=output_len,
                           seed=seed, trace=trace, sweep_rate=sweep, chunked_prefill=chunked_prefill,
                           **kwargs))
        return SolverResult(data, "Simulation")


class ParallelismOptimizer:
    """Exhaustive TP x PP x DP x CP x EP x micro-batch x recompute x ZeRO search
    (``mlsysim optimize parallelism``)."""

    def solve(self, model, fleet, batch_size: int, seq_len: int | None = None, gpus: int | None = None,
              objective: str | None = None, top: int | None = None, **kwargs) -> SolverResult:
        target = (["--cluster", _name(fleet, "fleet")] if isinstance(fleet, Cluster)
                  or (isinstance(fleet, str) and fleet in Systems.Clusters)
                  else ["--hardware", _name(fleet, "fleet")])
        data = cli("optimize", "parallelism", "--model", _name(model, "model"), *target,
                   *_flags(global_batch_size=batch_size, seq_len=seq_len, gpus=gpus,
                           objective=objective, top=top, **kwargs))
        return SolverResult(data, "ParallelismOptimizer")


class AmdahlModel:
    """Amdahl / Gustafson and profile-guided ROI analysis (``mlsysim amdahl``)."""

    def solve(self, fraction: float | None = None, speedup: float | None = None, profile: dict | None = None,
              speedups: dict | None = None, costs: dict | None = None, mfu: float | None = None,
              budget_weeks: float | None = None, serial_fraction: float | None = None,
              processors: int | None = None) -> SolverResult:
        def pairs(d):
            return None if d is None else ",".join(f"{k}={v}" for k, v in d.items())
        data = cli("amdahl", *_flags(fraction=fraction, speedup=speedup, profile=pairs(profile),
                                     speedups=pairs(speedups), costs=pairs(costs), mfu=mfu,
                                     budget_weeks=budget_weeks, serial_fraction=serial_fraction,
                                     processors=processors), raise_errors=False)
        return SolverResult(data, "Amdahl")


class ReliabilityModel:
    """The Fragility and Checkpoint walls for a job of known length on a fleet: cluster MTBF,
    failure probability, Daly's optimal checkpoint interval and the goodput it leaves, all from the
    C++ physics (physics/operations.hpp). For a training layout's own run (its checkpoint size,
    energy and cost) use ``DistributedModel().solve(...).run``.
    """

    def solve(self, fleet, job_duration_hours, checkpoint_time_s=60.0, avg_recovery_time_s=300.0,
              gpu_mtbf_hours=None) -> SolverResult:
        """``fleet``: a Cluster or a GPU count. ``job_duration_hours``: failure-free work.
        ``gpu_mtbf_hours``: per GPU (default 50,677 h, from Llama 3's 419 interruptions in 54 days on
        16,384 H100s). Plain numbers are hours and seconds as named; Quantities may use any unit."""
        gpus = fleet if isinstance(fleet, int) and not isinstance(fleet, bool) else getattr(fleet, "total_gpus", None)
        if gpus is None or gpus < 1:
            raise ValueError(f"fleet must be a Cluster or a GPU count >= 1, got {fleet!r}")
        mtbf_s = (_core.llama3_gpu_mtbf_s() if gpu_mtbf_hours is None
                  else positive_si(gpu_mtbf_hours, "h", "gpu_mtbf_hours"))
        restart_s = as_si(avg_recovery_time_s, "s", "avg_recovery_time_s")
        if not restart_s >= 0:
            raise ValueError(f"avg_recovery_time_s must be >= 0, got {avg_recovery_time_s!r}")
        j = _core.job_reliability(gpus, mtbf_s, positive_si(job_duration_hours, "h", "job_duration_hours"),
                                  positive_si(checkpoint_time_s, "s", "checkpoint_time_s"), restart_s)
        data = {"gpus": gpus, "gpu_mtbf_hours": mtbf_s / 3600.0, "fleet_mtbf_hours": j["cluster_mtbf_s"] / 3600.0,
                "failure_probability": j["failure_probability"], "expected_failures": j["expected_failures"],
                "optimal_checkpoint_interval_s": j["checkpoint_interval_s"],
                "young_checkpoint_interval_s": j["young_interval_s"],
                "wall_time_hours": j["wall_time_s"] / 3600.0, "goodput_ratio": j["goodput"],
                "finishes": j["finishes"]}
        if not j["finishes"]:  # failures outpace progress: no wall time, nor failures over it, to plan with
            data["wall_time_hours"] = None
            data["expected_failures"] = None
        return SolverResult(data, "Reliability", {
            "fleet_mtbf": lambda d: Quantity(d["fleet_mtbf_hours"], "h"),
            "optimal_checkpoint_interval": lambda d: Quantity(d["optimal_checkpoint_interval_s"], "s"),
            "wall_time": lambda d: None if d["wall_time_hours"] is None else Quantity(d["wall_time_hours"], "h"),
        })


class CollectiveModel:
    """Collective communication on a cluster's topology (``mlsysim collective``)."""

    def solve(self, op: str = "allreduce", message_bytes: float = 1e9, gpus: int = 8, hardware=None,
              cluster=None, algorithm: str | None = None) -> SolverResult:
        data = cli("collective", *_flags(op=op, bytes=message_bytes, gpus=gpus,
                                         hardware=None if hardware is None else _name(hardware, "hardware"),
                                         cluster=None if cluster is None else _name(cluster, "cluster"),
                                         algorithm=algorithm))
        return SolverResult(data, "Collective")
