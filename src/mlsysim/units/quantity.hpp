// Units are types: a Quantity carries its physical dimension in its C++ type, so adding bytes to
// seconds does not compile, while dividing bytes by bytes-per-second yields seconds. The wrapper is a
// single double with constexpr inline operators: zero cost at run time (checked by the benchmark).
#pragma once

#include <cmath>
#include <compare>

namespace mlsysim::units {

// Exponents of the base dimensions: time (s), data (byte), work (FLOP), energy (J), money (USD),
// carbon mass (kg CO2-equivalent). Power is energy/time; bandwidth is data/time; and so on.
template <int Time, int Data, int Work, int Energy, int Money, int Carbon>
struct Dim {
  static constexpr int time = Time, data = Data, work = Work, energy = Energy, money = Money,
                       carbon = Carbon;
};

template <class A, class B>
using DimMul = Dim<A::time + B::time, A::data + B::data, A::work + B::work, A::energy + B::energy,
                   A::money + B::money, A::carbon + B::carbon>;
template <class A, class B>
using DimDiv = Dim<A::time - B::time, A::data - B::data, A::work - B::work, A::energy - B::energy,
                   A::money - B::money, A::carbon - B::carbon>;

using NoDim = Dim<0, 0, 0, 0, 0, 0>;

template <class D>
class Quantity {
 public:
  using dim = D;
  constexpr Quantity() = default;
  // Explicit: a bare double never silently becomes a quantity.
  constexpr explicit Quantity(double value_in_si) : v_(value_in_si) {}
  // The value in SI base units (s, B, FLOP, J, USD, kgCO2e and their quotients).
  [[nodiscard]] constexpr double si() const { return v_; }

  constexpr Quantity operator+(Quantity o) const { return Quantity(v_ + o.v_); }
  constexpr Quantity operator-(Quantity o) const { return Quantity(v_ - o.v_); }
  constexpr Quantity operator-() const { return Quantity(-v_); }
  constexpr Quantity& operator+=(Quantity o) { v_ += o.v_; return *this; }
  constexpr Quantity& operator-=(Quantity o) { v_ -= o.v_; return *this; }
  constexpr Quantity operator*(double k) const { return Quantity(v_ * k); }
  constexpr Quantity operator/(double k) const { return Quantity(v_ / k); }
  constexpr Quantity& operator*=(double k) { v_ *= k; return *this; }
  constexpr auto operator<=>(const Quantity&) const = default;

 private:
  double v_ = 0.0;
};

// Dimensionless quantities are plain numbers.
template <>
class Quantity<NoDim> {
 public:
  using dim = NoDim;
  constexpr Quantity() = default;
  constexpr Quantity(double v) : v_(v) {}  // NOLINT: a ratio is a number
  constexpr operator double() const { return v_; }  // NOLINT
  [[nodiscard]] constexpr double si() const { return v_; }

 private:
  double v_ = 0.0;
};

template <class D>
constexpr Quantity<D> operator*(double k, Quantity<D> q) { return q * k; }

template <class A, class B>
constexpr Quantity<DimMul<A, B>> operator*(Quantity<A> a, Quantity<B> b) {
  return Quantity<DimMul<A, B>>(a.si() * b.si());
}
template <class A, class B>
constexpr Quantity<DimDiv<A, B>> operator/(Quantity<A> a, Quantity<B> b) {
  return Quantity<DimDiv<A, B>>(a.si() / b.si());
}
template <class D>
constexpr Quantity<DimDiv<NoDim, D>> operator/(double k, Quantity<D> q) {
  return Quantity<DimDiv<NoDim, D>>(k / q.si());
}

template <class D>
constexpr Quantity<D> max(Quantity<D> a, Quantity<D> b) { return a < b ? b : a; }
template <class D>
constexpr Quantity<D> min(Quantity<D> a, Quantity<D> b) { return b < a ? b : a; }
template <class D>
inline bool isfinite(Quantity<D> q) { return std::isfinite(q.si()); }

// ---- named quantities -------------------------------------------------------------------------
using Scalar = Quantity<NoDim>;
using Seconds = Quantity<Dim<1, 0, 0, 0, 0, 0>>;
using Bytes = Quantity<Dim<0, 1, 0, 0, 0, 0>>;
using Flops = Quantity<Dim<0, 0, 1, 0, 0, 0>>;
using Joules = Quantity<Dim<0, 0, 0, 1, 0, 0>>;
using Usd = Quantity<Dim<0, 0, 0, 0, 1, 0>>;
using KgCO2e = Quantity<Dim<0, 0, 0, 0, 0, 1>>;
using FlopsPerSecond = Quantity<Dim<-1, 0, 1, 0, 0, 0>>;
using BytesPerSecond = Quantity<Dim<-1, 1, 0, 0, 0, 0>>;
using Watts = Quantity<Dim<-1, 0, 0, 1, 0, 0>>;
using FlopsPerByte = Quantity<Dim<0, -1, 1, 0, 0, 0>>;
using KgCO2ePerJoule = Quantity<Dim<0, 0, 0, -1, 0, 1>>;
using UsdPerSecond = Quantity<Dim<-1, 0, 0, 0, 1, 0>>;

// ---- constructors with explicit decimal vs binary prefixes -------------------------------------
// Decimal (SI) prefixes are powers of 10; binary (IEC) prefixes are powers of 2: 80 GB != 80 GiB.
constexpr double kKilo = 1e3, kMega = 1e6, kGiga = 1e9, kTera = 1e12, kPeta = 1e15;
constexpr double kKibi = 1024.0, kMebi = kKibi * 1024.0, kGibi = kMebi * 1024.0,
                 kTebi = kGibi * 1024.0;

constexpr Seconds seconds(double v) { return Seconds(v); }
constexpr Seconds milliseconds(double v) { return Seconds(v * 1e-3); }
constexpr Seconds microseconds(double v) { return Seconds(v * 1e-6); }
constexpr Seconds nanoseconds(double v) { return Seconds(v * 1e-9); }
constexpr Seconds hours(double v) { return Seconds(v * 3600.0); }
constexpr Seconds days(double v) { return Seconds(v * 86400.0); }

constexpr Bytes bytes(double v) { return Bytes(v); }
constexpr Bytes kilobytes(double v) { return Bytes(v * kKilo); }
constexpr Bytes megabytes(double v) { return Bytes(v * kMega); }
constexpr Bytes gigabytes(double v) { return Bytes(v * kGiga); }
constexpr Bytes terabytes(double v) { return Bytes(v * kTera); }
constexpr Bytes kibibytes(double v) { return Bytes(v * kKibi); }
constexpr Bytes mebibytes(double v) { return Bytes(v * kMebi); }
constexpr Bytes gibibytes(double v) { return Bytes(v * kGibi); }
constexpr Bytes tebibytes(double v) { return Bytes(v * kTebi); }

constexpr Flops flops(double v) { return Flops(v); }
constexpr Flops gigaflops(double v) { return Flops(v * kGiga); }
constexpr Flops teraflops(double v) { return Flops(v * kTera); }

constexpr FlopsPerSecond flops_per_second(double v) { return FlopsPerSecond(v); }
constexpr FlopsPerSecond teraflops_per_second(double v) { return FlopsPerSecond(v * kTera); }
constexpr BytesPerSecond bytes_per_second(double v) { return BytesPerSecond(v); }
constexpr BytesPerSecond gigabytes_per_second(double v) { return BytesPerSecond(v * kGiga); }
constexpr BytesPerSecond terabytes_per_second(double v) { return BytesPerSecond(v * kTera); }

constexpr Watts watts(double v) { return Watts(v); }
constexpr Joules joules(double v) { return Joules(v); }
constexpr Joules kilowatt_hours(double v) { return Joules(v * 3.6e6); }
constexpr Usd usd(double v) { return Usd(v); }
// A price per hour of use (a GPU-hour's rental, as clouds quote it) as the rate it is.
constexpr UsdPerSecond usd_per_hour(double v) { return UsdPerSecond(v / 3600.0); }
constexpr KgCO2e kg_co2e(double v) { return KgCO2e(v); }

// ---- readouts in a named unit ------------------------------------------------------------------
constexpr double in_ms(Seconds t) { return t.si() * 1e3; }
constexpr double in_us(Seconds t) { return t.si() * 1e6; }
constexpr double in_gb(Bytes b) { return b.si() / kGiga; }
constexpr double in_gib(Bytes b) { return b.si() / kGibi; }
constexpr double in_tflops(FlopsPerSecond f) { return f.si() / kTera; }
constexpr double in_gbps(BytesPerSecond b) { return b.si() / kGiga; }
constexpr double in_usd_per_hour(UsdPerSecond r) { return r.si() * 3600.0; }

namespace literals {
constexpr Seconds operator""_s(long double v) { return Seconds(static_cast<double>(v)); }
constexpr Seconds operator""_ms(long double v) { return milliseconds(static_cast<double>(v)); }
constexpr Seconds operator""_us(long double v) { return microseconds(static_cast<double>(v)); }
constexpr Bytes operator""_GB(long double v) { return gigabytes(static_cast<double>(v)); }
constexpr Bytes operator""_GiB(long double v) { return gibibytes(static_cast<double>(v)); }
constexpr Bytes operator""_GB(unsigned long long v) { return gigabytes(static_cast<double>(v)); }
constexpr Bytes operator""_GiB(unsigned long long v) { return gibibytes(static_cast<double>(v)); }
}  // namespace literals

}  // namespace mlsysim::units
