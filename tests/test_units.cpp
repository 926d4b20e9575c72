// Units are types: dimension errors must not compile, conversions must be exact.
#include <gtest/gtest.h>

#include <type_traits>

#include "mlsysim/units/format.hpp"
#include "mlsysim/units/quantity.hpp"

using namespace mlsysim::units;

// Adding bytes to seconds (or FLOP/s to B/s) is a compile error: the expression is ill-formed.
template <class A, class B>
concept Addable = requires(A a, B b) { a + b; };
static_assert(!Addable<Bytes, Seconds>);
static_assert(!Addable<FlopsPerSecond, BytesPerSecond>);
static_assert(!Addable<Joules, Watts>);
static_assert(!Addable<Usd, KgCO2e>);
static_assert(Addable<Seconds, Seconds>);
// A bare double does not silently become a quantity.
static_assert(!std::is_convertible_v<double, Seconds>);
static_assert(!std::is_convertible_v<double, Bytes>);
// Division composes dimensions.
static_assert(std::is_same_v<decltype(Bytes{} / BytesPerSecond{}), Seconds>);
static_assert(std::is_same_v<decltype(Flops{} / FlopsPerSecond{}), Seconds>);
static_assert(std::is_same_v<decltype(Watts{} * Seconds{}), Joules>);
static_assert(std::is_same_v<decltype(Flops{} / Bytes{}), FlopsPerByte>);
// Zero cost: a quantity is exactly one double.
static_assert(sizeof(Seconds) == sizeof(double));
static_assert(std::is_trivially_copyable_v<Bytes>);

TEST(Units, DecimalAndBinaryPrefixesDiffer) {
  EXPECT_DOUBLE_EQ(gigabytes(80).si(), 80e9);
  EXPECT_DOUBLE_EQ(gibibytes(80).si(), 80.0 * 1024 * 1024 * 1024);
  EXPECT_NE(gigabytes(80), gibibytes(80));
  // 80 GiB is 85.9 GB: the gap the original mlsysim's H100 entry fell into.
  EXPECT_NEAR(in_gb(gibibytes(80)), 85.899, 1e-3);
}

TEST(Units, BytesOverBandwidthIsTime) {
  // 16 GB at 3.35 TB/s = 4.776 ms (the tutorial's memory-wall example).
  const Seconds t = gigabytes(16) / terabytes_per_second(3.35);
  EXPECT_NEAR(in_ms(t), 16.0 / 3350.0 * 1e3, 1e-9);
}

TEST(Units, PowerTimesTimeIsEnergy) {
  const Joules e = watts(700) * hours(1);
  EXPECT_DOUBLE_EQ(e.si(), 700.0 * 3600.0);
  EXPECT_DOUBLE_EQ(kilowatt_hours(1).si(), 3.6e6);
}

TEST(Units, RatiosAreNumbers) {
  const double ratio = gigabytes(8) / gigabytes(16);
  EXPECT_DOUBLE_EQ(ratio, 0.5);
}

TEST(Units, CountsAgreeWithTheirNoun) {
  EXPECT_EQ(mlsysim::units::format_counted(1, "GPU"), "1 GPU");
  EXPECT_EQ(mlsysim::units::format_counted(8, "GPU"), "8 GPUs");
  EXPECT_EQ(mlsysim::units::format_counted(0, "decode GPU"), "0 decode GPUs");
}
