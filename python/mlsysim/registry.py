"""Catalog registries in the tutorial's shape: ``Models.Language.Llama3_8B``,
``Hardware.Cloud.H100``. Attribute names are matched case-insensitively ignoring ``_``, ``-``, ``.``,
so ``Llama3_8B``, ``llama3_8b`` and ``LLAMA3_8B`` all resolve to the catalog entry ``llama3-8b``."""
from __future__ import annotations

import re

from . import _core
from .units import Quantity

__all__ = ["Models", "Hardware", "Model", "HardwareNode", "key"]


def key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def attribute_name(catalog_id: str) -> str:
    """`llama3-8b` -> `Llama3_8B`, `mixtral-8x7b` -> `Mixtral_8x7B`, `qwen3-30b-a3b` -> `Qwen3_30B_A3B`,
    `h100` -> `H100`."""
    special = {"resnet50": "ResNet50", "resnet18": "ResNet18", "mobilenetv2": "MobileNetV2",
               "efficientnet-b0": "EfficientNetB0", "mobilenetv1-025": "MobileNetV1_025",
               "ds-cnn": "DS_CNN", "dlrm": "DLRM", "gpt2": "GPT2", "gpt2-xl": "GPT2_XL",
               "gpt3-175b": "GPT3_175B", "bert-base": "BERT_Base", "bert-large": "BERT_Large",
               "vit-b16": "ViT_B16", "deepseek-v3": "DeepSeek_V3", "mi300x": "MI300X",
               "mi325x": "MI325X", "mi250x": "MI250X", "gaudi2": "Gaudi2", "gaudi3": "Gaudi3",
               "stable-diffusion-unet": "StableDiffusion_UNet"}
    if catalog_id in special:
        return special[catalog_id]
    parts = re.split(r"[-.]", catalog_id)
    out = []
    for p in parts:
        if re.fullmatch(r"\d+(\.\d+)?[bmk]", p) or re.fullmatch(r"\d+x\d+[bmk]", p):
            out.append(p[:-1] + p[-1].upper())
        elif re.fullmatch(r"a\d+[bmk]", p):  # an MoE's active parameters: qwen3-30b-a3b -> Qwen3_30B_A3B
            out.append(p.upper())
        else:
            out.append(p[:1].upper() + p[1:])
    return "_".join(out)


class Model:
    """A catalog model (wraps the C++ ModelSpec)."""

    __slots__ = ("_spec",)

    def __init__(self, spec):
        self._spec = spec

    id = property(lambda self: self._spec.id)
    name = property(lambda self: self._spec.name)
    kind = property(lambda self: self._spec.kind)
    family = property(lambda self: self._spec.family)
    layers = property(lambda self: self._spec.layers)
    hidden_dim = property(lambda self: self._spec.hidden)
    heads = property(lambda self: self._spec.heads)
    kv_heads = property(lambda self: self._spec.kv_heads)

    @property
    def parameters(self) -> float:
        return self._spec.parameters

    def size_in_bytes(self, precision: str = "bf16") -> Quantity:
        # The engine's element widths (every precision it knows, fp4 included), not a copy of them.
        return Quantity(self._spec.parameters * _core.bytes_per_element(precision) / 1e9, "GB")

    def kv_cache_per_token(self, precision: str = "bf16") -> Quantity:
        return Quantity(self._spec.kv_cache_bytes_per_token(precision), "B")

    def __repr__(self):
        return f"<Model {self.id}: {self.name}, {self.parameters / 1e9:.2f} B params>"

    def __eq__(self, other):
        return isinstance(other, Model) and other.id == self.id

    def __hash__(self):
        return hash(("model", self.id))


class _Memory:
    def __init__(self, spec):
        self.capacity = Quantity(spec.memory_capacity_bytes / 1e9, "GB")  # the datasheet's
        # What a process can allocate (CUDA-visible total), which fit checks compare against.
        self.usable = Quantity(spec.memory_usable_bytes / 1e9, "GB")
        self.bandwidth = Quantity(spec.memory_bandwidth_bytes_per_s / 1e12, "TB/s")


class _Compute:
    def __init__(self, spec):
        self._spec = spec
        self.peak_flops = Quantity(spec.peak_flops_per_s(self._default()) / 1e12, "TFLOP/s")

    def _default(self):
        supported = self._spec.supported_precisions()
        for p in ("bf16", "fp16", "fp32", "int8"):
            if p in supported:
                return p
        return supported[0]

    @property
    def precision_flops(self) -> dict:
        return {p: Quantity(self._spec.peak_flops_per_s(p) / 1e12, "TFLOP/s")
                for p in self._spec.supported_precisions()}


class HardwareNode:
    """A catalog device (wraps the C++ HardwareSpec)."""

    __slots__ = ("_spec", "memory", "compute")

    def __init__(self, spec):
        self._spec = spec
        self.memory = _Memory(spec)
        self.compute = _Compute(spec)

    id = property(lambda self: self._spec.id)
    name = property(lambda self: self._spec.name)
    vendor = property(lambda self: self._spec.vendor)
    tier = property(lambda self: self._spec.tier)
    sources = property(lambda self: dict(self._spec.sources))

    @property
    def tdp(self) -> Quantity:
        return Quantity(self._spec.tdp_w, "W")

    @property
    def unit_cost(self):
        price = self._spec.price_usd
        return None if price is None else Quantity(price, "USD")

    @property
    def rental_cost(self):
        """One device-hour's on-demand cloud price (catalog [device.rental]), or None where no cloud
        rents it; the default price of the cost figures of ``serve`` and ``train``."""
        rate = self._spec.rental_usd_per_hour
        return None if rate is None else Quantity(rate, "USD/h")

    def ridge_point(self, precision: str = "bf16") -> Quantity:
        return Quantity(self._spec.ridge_point(precision), "FLOP/B")

    def __repr__(self):
        return (f"<Hardware {self.id}: {self.name}, {self.compute.peak_flops:.0f~P}, "
                f"{self.memory.capacity:.0f~P}, {self.memory.bandwidth:.2f~P}>")

    def __eq__(self, other):
        return isinstance(other, HardwareNode) and other.id == self.id

    def __hash__(self):
        return hash(("hardware", self.id))


class UnknownName(AttributeError, ValueError):
    """A name the catalog does not hold: an AttributeError for `Models.Language.Foo`, and a
    ValueError like every other bad argument when a string is passed to a solver."""


class _Namespace:
    """Attribute access into a filtered slice of the catalog."""

    def __init__(self, title, entries, resolve_any):
        self._title = title
        self._entries = entries            # key -> wrapped object (this namespace's members)
        self._resolve_any = resolve_any    # fallback: any catalog entry by name

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        hit = self._entries.get(key(name))
        if hit is not None:
            return hit
        return self._resolve_any(name)

    def __dir__(self):
        return sorted({attribute_name(v.id) for v in self._entries.values()})

    def list(self):
        seen, out = set(), []
        for v in self._entries.values():
            if v.id not in seen:
                seen.add(v.id)
                out.append(v)
        return out

    def __iter__(self):
        return iter(self.list())

    def __repr__(self):
        return f"<{self._title}: {', '.join(dir(self))}>"


def _index(objects, aliases_of):
    out = {}
    for o in objects:
        for n in [o.id, attribute_name(o.id), *aliases_of(o)]:
            out.setdefault(key(n), o)
    return out


def _model_category(m: Model) -> str:
    if m.kind == "dlrm":
        return "Recommendation"
    if m.kind == "encoder-decoder":
        return "Audio"
    if m.kind == "opaque":
        return "Generative"
    if m.kind == "cnn":
        return "Tiny" if m.parameters < 1e6 else "Vision"
    if m.id.startswith("vit"):
        return "Vision"
    return "Language"


class _Registry:
    """Name lookup over the whole catalog plus category namespaces (set up by subclasses)."""

    _wrap = staticmethod(lambda spec: spec)
    _fetch = staticmethod(lambda name: None)

    def _setup(self, objects, groups: dict, prefix: str):
        self._all = _index(objects, lambda o: o._spec.aliases)
        for title, members in groups.items():
            setattr(self, title, _Namespace(f"{prefix}.{title}",
                                            _index(members, lambda o: o._spec.aliases), self.get))

    def get(self, name: str):
        if not isinstance(name, str):
            raise UnknownName(f"a catalog name is a string, got {name!r}")
        hit = self._all.get(key(name))
        if hit is not None:
            return hit
        try:
            return self._wrap(self._fetch(name))  # raises ValueError with "did you mean"
        except ValueError as e:
            raise UnknownName(str(e)) from None

    def __getattr__(self, name):
        if name.startswith("__") or name.startswith("_"):
            raise AttributeError(name)
        return self.get(name)

    def list(self):
        return list({o.id: o for o in self._all.values()}.values())


class _ModelRegistry(_Registry):
    _wrap = staticmethod(Model)
    _fetch = staticmethod(lambda name: _core.model(name))

    def __init__(self):
        models = [Model(s) for s in _core.all_models()]
        groups = {t: [] for t in ("Language", "Vision", "Audio", "Generative", "Recommendation", "Tiny")}
        for m in models:
            groups[_model_category(m)].append(m)
        self._setup(models, groups, "Models")

    def from_hf_config(self, path: str) -> Model:
        return Model(_core.model_from_hf_config(path))


class _HardwareRegistry(_Registry):
    _wrap = staticmethod(HardwareNode)
    _fetch = staticmethod(lambda name: _core.hardware(name))

    def __init__(self):
        devices = [HardwareNode(s) for s in _core.all_hardware()]
        groups = {tier.capitalize(): [d for d in devices if d.tier == tier]
                  for tier in ("cloud", "workstation", "edge", "mobile", "tiny")}
        self._setup(devices, groups, "Hardware")


Models = _ModelRegistry()
Hardware = _HardwareRegistry()
