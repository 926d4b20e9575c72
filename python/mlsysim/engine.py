"""`Engine.solve`: the single-node engine (C++), with results that carry units."""
from __future__ import annotations

import re

from . import _core
from .registry import Hardware, HardwareNode, Model, Models
from .units import Quantity

__all__ = ["Engine", "PerformanceProfile", "OOMError", "resolve_model", "resolve_hardware"]

OOMError = _core.OOMError


def resolve_model(model):
    if isinstance(model, Model):
        return model._spec
    if isinstance(model, str):
        return (Models.from_hf_config(model) if model.endswith(".json") else Models.get(model))._spec
    raise TypeError(f"model must be a catalog model (e.g. mlsysim.Models.Language.Llama3_8B) or a "
                    f"name, got {type(model).__name__}")


def resolve_hardware(hardware):
    if isinstance(hardware, HardwareNode):
        return hardware._spec
    if isinstance(hardware, str):
        return Hardware.get(hardware)._spec
    raise TypeError(f"hardware must be a catalog device (e.g. mlsysim.Hardware.Cloud.H100) or a "
                    f"name, got {type(hardware).__name__}")


class PerformanceProfile:
    """Result of `Engine.solve`. Times are Quantities (ms); sizes in GB; `bottleneck` is
    "Compute", "Memory" or "Overhead"."""

    __slots__ = ("_p",)

    def __init__(self, profile):
        self._p = profile

    # -- the binding wall and times ---------------------------------------------------------------
    bottleneck = property(lambda self: self._p.bottleneck)
    latency = property(lambda self: Quantity(self._p.latency_s * 1e3, "ms"))
    latency_compute = property(lambda self: Quantity(self._p.compute_time_s * 1e3, "ms"))
    latency_memory = property(lambda self: Quantity(self._p.memory_time_s * 1e3, "ms"))
    latency_overhead = property(lambda self: Quantity(self._p.overhead_time_s * 1e3, "ms"))
    weight_load_time = property(lambda self: Quantity(self._p.weight_stream_time_s * 1e3, "ms"))
    mfu = property(lambda self: self._p.mfu)
    hfu = property(lambda self: self._p.hfu)
    feasible = property(lambda self: self._p.feasible)
    phase = property(lambda self: self._p.phase)
    precision = property(lambda self: self._p.precision)
    compute_precision = property(lambda self: self._p.compute_precision)
    activation_scaling = property(lambda self: self._p.activation_scaling)
    kv_precision = property(lambda self: self._p.kv_precision)
    head_precision = property(lambda self: self._p.head_precision)
    embedding_precision = property(lambda self: self._p.embedding_precision)
    batch_size = property(lambda self: self._p.batch_size)
    runtime = property(lambda self: self._p.runtime)
    fusion = property(lambda self: self._p.fusion)
    attention = property(lambda self: self._p.attention)

    @property
    def throughput(self) -> Quantity:
        return Quantity(self._p.throughput, self._p.throughput_unit)

    @property
    def arithmetic_intensity(self) -> Quantity:
        return Quantity(self._p.arithmetic_intensity, "FLOP/B")

    @property
    def ridge_point(self) -> Quantity:
        return Quantity(self._p.ridge_point, "FLOP/B")

    @property
    def memory_footprint(self) -> Quantity:
        return Quantity(self._p.memory_footprint_bytes / 1e9, "GB")

    @property
    def memory_capacity(self) -> Quantity:
        """What the footprint is compared against: the device's usable (CUDA-visible) memory."""
        return Quantity(self._p.memory_capacity_bytes / 1e9, "GB")

    @property
    def memory_breakdown(self) -> dict:
        return {k: Quantity(v / 1e9, "GB") for k, v in self._p.memory_ledger.items()}

    @property
    def trainable_parameters(self) -> float:
        """Training: the parameters the optimizer updates (all of them; with LoRA, the adapters')."""
        return self._p.trainable_parameters

    @property
    def energy(self) -> Quantity:
        return Quantity(self._p.energy_j, "J")

    @property
    def constraint_trace(self) -> list:
        return list(self._p.trace())

    @property
    def operators(self) -> list:
        return [{"name": o.name, "pass": o.pass_, "count": o.count, "flops": o.flops,
                 "bytes": o.bytes, "time_s": o.time_s, "bottleneck": o.bottleneck}
                for o in self._p.operators]

    def summary(self) -> str:
        lines = [f"{self._p.model_id} on {self._p.hardware_id} ({self.phase}, batch {self.batch_size},"
                 f" {self.precision})",
                 f"  latency      {self.latency:.3f~P}  [{self.bottleneck}-bound]",
                 f"  compute      {self.latency_compute:.3f~P}",
                 f"  memory       {self.latency_memory:.3f~P}",
                 f"  overhead     {self.latency_overhead:.3f~P}",
                 f"  throughput   {self.throughput:.4g~P}",
                 f"  MFU / HFU    {self.mfu:.2%} / {self.hfu:.2%}",
                 f"  memory       {self.memory_footprint:.2f~P} of {self.memory_capacity:.1f~P} usable"
                 f" ({'fits' if self.feasible else 'DOES NOT FIT'})",
                 "  why:"]
        lines += [f"    - {t}" for t in self.constraint_trace]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        p = self._p
        return {"model": p.model_id, "hardware": p.hardware_id, "phase": p.phase,
                "batch_size": p.batch_size, "seq_len": p.seq_len, "context": p.context,
                "precision": p.precision, "compute_precision": p.compute_precision,
                "kv_precision": p.kv_precision, "head_precision": p.head_precision,
                "embedding_precision": p.embedding_precision, "precision_fallback": p.precision_fallback,
                "runtime": p.runtime, "fusion": p.fusion, "attention": p.attention,
                "activation_scaling": p.activation_scaling, "model_type": p.model_type,
                "latency_s": p.latency_s, "bottleneck": p.bottleneck,
                "compute_time_s": p.compute_time_s, "memory_time_s": p.memory_time_s,
                "overhead_time_s": p.overhead_time_s, "mfu": p.mfu, "hfu": p.hfu,
                "throughput_per_s": p.throughput, "throughput_unit": p.throughput_unit,
                "arithmetic_intensity_flop_per_byte": p.arithmetic_intensity,
                "ridge_point_flop_per_byte": p.ridge_point,
                "memory_footprint_bytes": p.memory_footprint_bytes,
                "memory_capacity_bytes": p.memory_capacity_bytes,
                "memory": {f"{k}_bytes": v for k, v in p.memory_ledger.items()},
                "feasible": p.feasible, "energy_j": p.energy_j,
                "weight_stream_time_s": p.weight_stream_time_s,
                "trainable_parameters": p.trainable_parameters, "lora_rank": p.lora_rank,
                "trace": list(p.trace())}

    def __repr__(self):
        return (f"PerformanceProfile({self._p.model_id} on {self._p.hardware_id}: "
                f"latency={self.latency:.3f~P}, bottleneck={self.bottleneck}, mfu={self.mfu:.4f}, "
                f"feasible={self.feasible})")


# The engine's messages name CLI flags; Engine.solve's arguments are these (longest first, so
# --kv-precision is not read as --precision).
_SOLVE_ARGUMENTS = [("--kv-precision", "kv_precision"), ("--compute-precision", "compute_precision"),
                    ("--quantize-head", "quantize_head"), ("--activation-scaling", "activation_scaling"),
                    ("--batch-size", "batch_size"), ("--efficiency", "efficiency"), ("--precision", "precision"),
                    ("--seq-len", "seq_len"), ("--context", "context"), ("--recompute", "activation_recomputation"),
                    ("--runtime", "runtime"), ("--fusion", "fusion"), ("--attention", "attention"),
                    ("--phase", "phase"), ("--lora-rank", "lora_rank"), ("--lora-targets", "lora_targets")]


_TYPE_NAMES = {int: "an integer", str: "a string", (int, float): "a number"}


def _check_types(**arguments) -> None:
    """ValueError naming the argument and the type it takes, instead of the binding's signature dump.

    Each keyword is (value, type or tuple of types, whether None is allowed); bool is not a number.
    """
    for name, (value, kind, optional) in arguments.items():
        if value is None and optional:
            continue
        if isinstance(value, bool) or not isinstance(value, kind):
            allowed = _TYPE_NAMES[kind] + (" or None" if optional else "")
            raise ValueError(f"{name} must be {allowed}, got {value!r}")


_HELP_POINTER = re.compile(r"; `mlsysim [a-z ]+--help` lists (its flags|the commands)$")


def in_argument_names(message: str, flags, renames: dict) -> str:
    """An engine or CLI error in a Python caller's terms: each of `flags` becomes its argument name
    (`renames` where they differ, else --seq-len -> seq_len), and a pointer to a command's --help goes."""
    message = _HELP_POINTER.sub("", message)
    for flag in sorted(set(flags), key=len, reverse=True):  # --kv-precision before --precision
        name = renames.get(flag, flag[2:].replace("-", "_"))
        message = re.sub(re.escape(flag) + r"(?![a-z0-9-])", name, message)
    return message


def _with_argument_names(message: str) -> str:
    return in_argument_names(message, [flag for flag, _ in _SOLVE_ARGUMENTS], dict(_SOLVE_ARGUMENTS))


class Engine:
    """The tutorial's entry point: ``Engine.solve(model, hardware, batch_size=1)``."""

    @staticmethod
    def solve(model, hardware, batch_size: int = 1, precision: str | None = None,
              efficiency: float | None = None, phase: str | None = None, seq_len: int | None = None,
              context: int | None = None, is_training: bool = False,
              activation_recomputation=False, runtime: str = "graph",
              kv_precision: str | None = None, raise_errors: bool = True,
              fusion: str = "auto", attention: str = "flash",
              quantize_head: bool = False, lora_rank: int = 0,
              lora_targets: str = "attention", compute_precision: str | None = None,
              activation_scaling: str = "static") -> PerformanceProfile:
        """Time one step of `model` on `hardware`.

        phase: "decode" (default for LLMs), "prefill", "inference" or "train" (`is_training=True`).
        efficiency: the textbook's single efficiency factor in [0.01, 1] (teaching mode).
        runtime: "graph" (CUDA graphs / compiled, default) or "eager" (per-op host dispatch).
        fusion: "auto" (fused under graph, unfused under eager), "fused", "unfused" or "hf"
            (Hugging Face transformers modules in eager mode).
        attention: "flash" (one fused kernel at the device's calibrated rate, default),
            "fa2" (FlashAttention-2: its softmax exponentials do not overlap its matmuls; needs a
            FlashAttention-2 calibration, built in for H100) or "materialized" (scores written to
            memory between QK^T and PV, as before FlashAttention).
        compute_precision: the math precision under weight-only quantization, e.g.
            precision="int4", compute_precision="bf16" as AWQ/GPTQ kernels run (weights read at
            4 bits, multiplied in bf16); default: the weights' own precision where the device has it.
        activation_scaling: 8-bit inference (precision "fp8"/"int8"): "static" (calibrated scales,
            the producing kernel writes 8 bits; default) or "dynamic" (each GEMM input's scale taken
            at run time: one reduce-and-cast kernel per quantized input, as SGLang and torchao run).
        quantize_head: quantize a language model's output head with the other weights (gpt-fast
            does); by default it stays in 16 bits below 16-bit precision, like the embedding table.
        lora_rank: training only: LoRA fine-tuning with rank-`lora_rank` adapters (Hu et al. 2021) on
            a frozen base; 0 (default) trains every weight. lora_targets: "attention" (Q, K, V and
            output projections, default) or "all" (the MLP's linears too).
        raise_errors: raise OOMError when the workload does not fit (default), else return the
        profile with ``feasible == False``.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int):
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        _check_types(seq_len=(seq_len, int, True), context=(context, int, True),
                     efficiency=(efficiency, (int, float), True), precision=(precision, str, True),
                     kv_precision=(kv_precision, str, True), phase=(phase, str, True),
                     compute_precision=(compute_precision, str, True),
                     activation_scaling=(activation_scaling, str, False),
                     runtime=(runtime, str, False), fusion=(fusion, str, False),
                     attention=(attention, str, False), lora_rank=(lora_rank, int, False),
                     lora_targets=(lora_targets, str, False))
        for name, value in (("batch_size", batch_size), ("seq_len", seq_len), ("context", context)):
            # The engine takes 32-bit counts: anything wider is out of every valid range, and is
            # answered with the engine's own range message rather than a binding type error.
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**31 - 1:
                valid = "[1, 1048576]" if name == "batch_size" else "the model's context window"
                raise ValueError(f"{name} must be within {valid}, got {value}")
        if efficiency is not None and efficiency == 0:  # the engine reads 0 as "not given"
            raise ValueError("efficiency must be in [0.01, 1], got 0 (leave it out for the calibrated model)")
        if is_training:
            if phase not in (None, "train"):
                raise ValueError(f"is_training=True is phase='train', not phase={phase!r}: give one of them")
            phase = "train"
        recompute = {False: "none", None: "none", True: "full"}.get(activation_recomputation,
                                                                    activation_recomputation)
        try:
            profile = _core.solve(resolve_model(model), resolve_hardware(hardware), batch_size, phase,
                                  seq_len, context, precision, kv_precision, recompute, runtime,
                                  0.0 if efficiency is None else float(efficiency), fusion, attention,
                                  bool(quantize_head), lora_rank, lora_targets, compute_precision,
                                  activation_scaling)
        except ValueError as e:  # the engine names its CLI flags; say the arguments called here
            raise ValueError(_with_argument_names(str(e))) from None
        if raise_errors and not profile.feasible:
            try:
                _core.raise_does_not_fit(profile)
            except OOMError as e:  # its remedies name CLI flags (--precision fp8): say the arguments
                renamed = OOMError(_with_argument_names(str(e)))
                renamed.required_bytes, renamed.available_bytes = e.required_bytes, e.available_bytes
                raise renamed from None
        return PerformanceProfile(profile)

    @staticmethod
    def sweep(models, hardware, batch_sizes=(1,), precisions=None, phases=None, contexts=None,
              seq_lens=None) -> list:
        """Every combination, solved on all cores (``mlsysim sweep``); one dict per configuration.

        Combinations a model or device cannot run (a phase it lacks, a precision it has no path
        for) are left out.
        """
        from .solvers import cli  # local: solvers imports this module

        def names(xs, resolve):
            xs = xs if isinstance(xs, (list, tuple)) else [xs]
            return ",".join(resolve(x).id for x in xs)

        def join(xs):
            return None if xs is None else ",".join(str(x) for x in (xs if isinstance(xs, (list, tuple, range)) else [xs]))

        args = ["sweep", "--model", names(models, lambda m: Model(resolve_model(m))),
                "--hardware", names(hardware, lambda h: HardwareNode(resolve_hardware(h))),
                "--batch-size", join(batch_sizes)]
        for flag, value in (("--precision", join(precisions)), ("--phase", join(phases)),
                            ("--context", join(contexts)), ("--seq-len", join(seq_lens))):
            if value is not None:
                args += [flag, value]
        return cli(*args)["points"]
