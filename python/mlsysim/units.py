"""Quantities with units for the Python API (no numpy, no pint needed).

A Quantity is a magnitude in a named unit. Dimensions are exponents of the engine's base
dimensions (time, data, work, energy, money, carbon), the same as the C++ `units::Quantity`.
Mixing incompatible dimensions raises DimensionalityError.
"""
from __future__ import annotations

import math
from numbers import Real

__all__ = ["Quantity", "DimensionalityError", "Q_"]

# (time, data, work, energy, money, carbon)
_NONE = (0, 0, 0, 0, 0, 0)
_T, _D, _W, _E, _M, _C = ((1, 0, 0, 0, 0, 0), (0, 1, 0, 0, 0, 0), (0, 0, 1, 0, 0, 0),
                          (0, 0, 0, 1, 0, 0), (0, 0, 0, 0, 1, 0), (0, 0, 0, 0, 0, 1))


def _mul(a, b):
    return tuple(x + y for x, y in zip(a, b))


def _div(a, b):
    return tuple(x - y for x, y in zip(a, b))


_DIM_NAMES = ("[time]", "[data]", "[work]", "[energy]", "[currency]", "[carbon]")

# unit -> (factor to SI, dimension). Decimal and binary byte prefixes are distinct.
_UNITS: dict[str, tuple[float, tuple]] = {"": (1.0, _NONE), "dimensionless": (1.0, _NONE)}


def _add(names, factor, dim):
    for n in names:
        _UNITS[n] = (factor, dim)


_add(["s", "second", "seconds", "sec"], 1.0, _T)
_add(["ms", "millisecond", "milliseconds"], 1e-3, _T)
_add(["us", "µs", "microsecond", "microseconds"], 1e-6, _T)
_add(["ns", "nanosecond", "nanoseconds"], 1e-9, _T)
_add(["min", "minute", "minutes"], 60.0, _T)
_add(["h", "hr", "hour", "hours"], 3600.0, _T)
_add(["day", "days", "d"], 86400.0, _T)
_add(["year", "years"], 365.25 * 86400.0, _T)
for prefix, f in (("", 1.0), ("k", 1e3), ("K", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12), ("P", 1e15)):
    _add([prefix + "B"] + (["byte", "bytes"] if not prefix else []), f, _D)
    _add([prefix + "FLOP", prefix + "FLOPs", prefix + "flop"], f, _W)
    _add([prefix + "FLOP/s", prefix + "FLOPS", prefix + "flop/s"], f, _div(_W, _T))
    _add([prefix + "B/s"], f, _div(_D, _T))
    _add([prefix + "W"], f, _div(_E, _T))
    _add([prefix + "J"], f, _E)
for prefix, f in (("Ki", 2.0**10), ("Mi", 2.0**20), ("Gi", 2.0**30), ("Ti", 2.0**40)):
    _add([prefix + "B"], f, _D)
    _add([prefix + "B/s"], f, _div(_D, _T))
_add(["Wh"], 3600.0, _E)
_add(["kWh"], 3.6e6, _E)
_add(["MWh"], 3.6e9, _E)
_add(["GWh"], 3.6e12, _E)
_add(["USD", "usd", "dollar", "dollars", "$"], 1.0, _M)
_add(["kgCO2e", "kg_co2e"], 1.0, _C)
_add(["tCO2e", "t_co2e"], 1e3, _C)
_add(["FLOP/B", "flop/byte", "FLOP/byte"], 1.0, _div(_W, _D))
_add(["1/s", "Hz", "tokens/s", "samples/s", "requests/s", "QPS"], 1.0, _div(_NONE, _T))
_add(["USD/h", "$/h"], 1.0 / 3600.0, _div(_M, _T))

# Preferred SI spelling of a derived dimension (for results of * and /).
_SI_NAME = {_T: "s", _D: "B", _W: "FLOP", _E: "J", _M: "USD", _C: "kgCO2e",
            _div(_W, _T): "FLOP/s", _div(_D, _T): "B/s", _div(_E, _T): "W", _div(_W, _D): "FLOP/B",
            _div(_NONE, _T): "1/s", _NONE: ""}


class DimensionalityError(TypeError):
    """Raised when quantities of incompatible dimensions are combined or converted."""


def _lookup(unit: str):
    try:
        return _UNITS[unit]
    except KeyError:
        raise ValueError(f"unknown unit '{unit}'; known units include s, ms, us, B, GB, GiB, "
                         f"FLOP, TFLOP/s, GB/s, W, J, kWh, USD, kgCO2e") from None


def _dim_text(dim) -> str:
    parts = [f"{n}" if e == 1 else f"{n}^{e}" for n, e in zip(_DIM_NAMES, dim) if e]
    return " * ".join(parts) or "dimensionless"


class Quantity:
    """A magnitude with a unit: ``Quantity(4.8, "ms")``."""

    __slots__ = ("_magnitude", "_unit", "_factor", "_dim")

    def __init__(self, magnitude: Real, unit: str = ""):
        factor, dim = _lookup(unit)
        self._magnitude = float(magnitude)
        self._unit = unit
        self._factor = factor
        self._dim = dim

    # -- pint-like accessors ----------------------------------------------------------------------
    @property
    def magnitude(self) -> float:
        return self._magnitude

    m = magnitude

    @property
    def units(self) -> str:
        return self._unit

    @property
    def dimensionality(self) -> str:
        return _dim_text(self._dim)

    def to_si(self) -> float:
        return self._magnitude * self._factor

    def to(self, unit: str) -> "Quantity":
        factor, dim = _lookup(unit)
        if dim != self._dim:
            raise DimensionalityError(
                f"cannot convert {self} ({_dim_text(self._dim)}) to '{unit}' ({_dim_text(dim)})")
        return Quantity(self.to_si() / factor, unit)

    def m_as(self, unit: str) -> float:
        return self.to(unit).magnitude

    # -- formatting -------------------------------------------------------------------------------
    def __format__(self, spec: str) -> str:
        pretty = "~" in spec or "P" in spec
        spec = spec.replace("~", "").replace("P", "")
        magnitude = format(self._magnitude, spec) if spec else (
            f"{self._magnitude:.4g}" if pretty else repr(self._magnitude))
        unit = self._unit.replace("us", "µs") if pretty and self._unit == "us" else self._unit
        return f"{magnitude} {unit}".rstrip()

    def __str__(self) -> str:
        return format(self, "~P")

    def __repr__(self) -> str:
        return f"<Quantity({self._magnitude!r}, '{self._unit}')>"

    # -- arithmetic -------------------------------------------------------------------------------
    def _same(self, other, op: str) -> "Quantity":
        if not isinstance(other, Quantity):
            if self._dim == _NONE and isinstance(other, Real):
                return Quantity(float(other), "")
            raise DimensionalityError(f"cannot {op} {self} and the plain number {other!r}: "
                                      f"give it units, e.g. Quantity({other!r}, '{self._unit}')")
        if other._dim != self._dim:
            raise DimensionalityError(f"cannot {op} {self} ({_dim_text(self._dim)}) and {other} "
                                      f"({_dim_text(other._dim)}): incompatible dimensions")
        return other

    def __add__(self, other):
        o = self._same(other, "add")
        return Quantity(self._magnitude + o.to_si() / self._factor, self._unit)

    __radd__ = __add__

    def __sub__(self, other):
        o = self._same(other, "subtract")
        return Quantity(self._magnitude - o.to_si() / self._factor, self._unit)

    def __rsub__(self, other):
        o = self._same(other, "subtract")
        return Quantity(o.to_si() / self._factor - self._magnitude, self._unit)

    def __neg__(self):
        return Quantity(-self._magnitude, self._unit)

    def __abs__(self):
        return Quantity(abs(self._magnitude), self._unit)

    def _combine(self, other, sign: int):
        if isinstance(other, Quantity):
            dim = _mul(self._dim, other._dim) if sign > 0 else _div(self._dim, other._dim)
            si = self.to_si() * other.to_si() if sign > 0 else self.to_si() / other.to_si()
            name = _SI_NAME.get(dim)
            if name is None:
                raise DimensionalityError(f"the result has dimension {_dim_text(dim)}, which has no "
                                          f"unit name here")
            return Quantity(si, name) if name else si
        if isinstance(other, Real):
            k = float(other)
            return Quantity(self._magnitude * k if sign > 0 else self._magnitude / k, self._unit)
        return NotImplemented

    def __mul__(self, other):
        return self._combine(other, +1)

    __rmul__ = __mul__

    def __truediv__(self, other):
        return self._combine(other, -1)

    def __rtruediv__(self, other):
        if isinstance(other, Real):
            dim = _div(_NONE, self._dim)
            name = _SI_NAME.get(dim)
            if name is None:
                raise DimensionalityError(f"1/({_dim_text(self._dim)}) has no unit name here")
            return Quantity(float(other) / self.to_si(), name)
        return NotImplemented

    def __float__(self):
        if self._dim != _NONE:
            raise DimensionalityError(f"{self} is not dimensionless; use .to('<unit>').magnitude")
        return self.to_si()

    # -- comparison -------------------------------------------------------------------------------
    def _cmp(self, other):
        o = self._same(other, "compare")
        return self.to_si(), o.to_si()

    def __eq__(self, other):
        if not isinstance(other, Quantity) or other._dim != self._dim:
            return False
        return math.isclose(self.to_si(), other.to_si(), rel_tol=1e-12, abs_tol=0.0)

    def __hash__(self):
        return hash((round(self.to_si(), 12), self._dim))

    def __lt__(self, other):
        a, b = self._cmp(other)
        return a < b

    def __le__(self, other):
        a, b = self._cmp(other)
        return a <= b

    def __gt__(self, other):
        a, b = self._cmp(other)
        return a > b

    def __ge__(self, other):
        a, b = self._cmp(other)
        return a >= b


def Q_(magnitude, unit=""):  # noqa: N802 - pint-style shorthand
    return Quantity(magnitude, unit)


def as_si(value, unit: str, name: str) -> float:
    """A float in SI units from a Quantity (any compatible unit) or a plain number (taken as `unit`)."""
    if isinstance(value, Quantity):
        return value.to(unit).magnitude * _UNITS[unit][0]
    if isinstance(value, Real) and not isinstance(value, bool):
        v = float(value)
        if math.isnan(v):
            raise ValueError(f"{name} must be a number, got NaN")
        return v * _UNITS[unit][0]
    raise TypeError(f"{name} must be a number (in {unit}) or a Quantity, got {type(value).__name__}")


def positive_si(value, unit: str, name: str) -> float:
    """as_si, for a quantity that must be positive and finite (ValueError naming it otherwise)."""
    v = as_si(value, unit, name)
    if not v > 0 or math.isinf(v):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def best_time(seconds: float) -> Quantity:
    return Quantity(seconds * 1e3, "ms")


def best_bytes(b: float) -> Quantity:
    return Quantity(b / 1e9, "GB")
