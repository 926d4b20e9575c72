// Human-readable quantities for tables and traces ("4.79 ms", "16.06 GB", "989 TFLOP/s").
#pragma once

#include <string>

#include "mlsysim/units/quantity.hpp"

namespace mlsysim::units {

std::string format_time(Seconds t);
std::string format_bytes(Bytes b);  // decimal prefixes (GB), the datasheet convention
std::string format_flops(Flops f);
std::string format_rate(FlopsPerSecond f);
std::string format_bandwidth(BytesPerSecond b);
std::string format_energy(Joules e);
std::string format_power(Watts w);
std::string format_count(double n);  // 8.03 B, 25.6 M
std::string format_percent(double fraction);
// "1 GPU", "8 GPUs": a whole count and its noun, plural unless the count is one.
std::string format_counted(long long n, const std::string& noun);

}  // namespace mlsysim::units
