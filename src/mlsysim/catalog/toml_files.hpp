// Shared TOML plumbing for every catalog reader: parse with errors that name file and line, read a
// directory of *.toml files in a stable order, and read a table's fields strictly (toml_input).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#define TOML_HEADER_ONLY 1
#define TOML_EXCEPTIONS 1
#include <toml++/toml.h>

namespace mlsysim {

// Parses `text`; a syntax error becomes BadInput "origin:line: description".
toml::table parse_toml(std::string_view text, const std::string& origin);

// (path, contents) of every *.toml directly under `dir`, sorted by path. BadInput if `dir` is not
// a directory (`flag` names the option that gave it, for the message).
std::vector<std::pair<std::string, std::string>> read_toml_dir(const std::string& dir,
                                                               const std::string& flag);

// ---- Strict fields ---------------------------------------------------------------------------
// Every catalog table (devices, models, calibrations, fleet entries) is read through these: a key
// the reader does not know, a value of the wrong type or outside its range is BadInput naming the
// place (`where`: "file [id]"), the field and what was written, never a silent default.
namespace toml_input {

using Keys = std::vector<std::string_view>;

// A key as messages show it: 'bandwidth_gbs'.
std::string quoted(std::string_view key);
// A value as the user wrote it, for messages: 1e-30, nan, "fast", an array.
std::string describe(const toml::node* n);

bool contains(const Keys& keys, std::string_view key);
// Refuses the first key of `t` not in `known`, with the closest known key ("did you mean") or the
// list of known keys. `table` names the table ("[device.memory]"); `elsewhere` may explain where a
// misplaced key belongs ("" when it knows nothing).
void reject_unknown_keys(const toml::table& t, const Keys& known, const std::string& table, const std::string& where,
                         const std::function<std::string(std::string_view)>& elsewhere = {});

// The tables a catalog file may hold at its top level: Catalog reads [[device]], [[model]] and
// [[calibration]], FleetCatalog [[fabric]], [[topology]], [[node]] and [[cluster]] (one --catalog
// directory feeds both). Anything else ([[fabrc]], [[devices]]) would be read by neither.
inline const Keys kCatalogFileTables = {"device", "model", "calibration", "fabric", "topology", "node", "cluster"};
void reject_unknown_tables(const toml::table& doc, const std::string& origin);

// The `[[key]]` entries of a document (or, with `parent`, the `[[parent.key]]` rows of one of its
// tables). A single `[key]` table (one bracket pair) or a stray value would otherwise define nothing
// without a word.
std::vector<const toml::table*> entries(const toml::table& doc, std::string_view key, const std::string& origin,
                                        std::string_view parent = "");

// The number at `n` (present), else BadInput naming `label` and what was there instead.
double number_of(const toml::node* n, const std::string& label, const std::string& where);
// Rates, sizes and times are finite and never negative; `label` names the field.
double finite_non_negative(double x, const std::string& label, const std::string& where);
// A fraction of a peak (an efficiency): the value in (0, 1] when `v` is given, else `fallback`.
double fraction_or(toml::node_view<const toml::node> v, double fallback, const std::string& label,
                   const std::string& where);
// A time or count that may be zero (a launch gap, a host cost): finite_non_negative when `v` is
// given, else `fallback`. Negative would subtract time from a step.
double non_negative_or(toml::node_view<const toml::node> v, double fallback, const std::string& label,
                       const std::string& where);
// A text field: absent -> `fallback`; present, it must be a string.
std::string string_or(const toml::table& t, std::string_view key, const std::string& where,
                      std::string fallback = {});
// A flag: absent -> `fallback`; present, true or false ("yes" or 1 would otherwise read as false).
bool bool_field(const toml::table& t, std::string_view key, bool fallback, const std::string& where);
// An array of strings; absent -> empty.
std::vector<std::string> string_list(const toml::table& t, std::string_view key, const std::string& where);
// A count or a shape: a whole number in [0, 2^31) (2.5 layers or -5 experts are not shapes,
// whatever a cast would make of them).
int whole_count(const toml::node* n, const std::string& label, const std::string& where);
// A count field: absent -> `fallback`; present -> whole_count.
int int_field(const toml::table& t, std::string_view key, int fallback, const std::string& where);
// A count or size that must be at least 1 (GPUs, NICs, hops, a GEMM tile edge): absent -> `fallback`,
// BadInput when there is none; 0 or 2.5 is refused. `what`, when given, says what it counts.
int positive_count(const toml::table& t, std::string_view key, std::optional<int> fallback, const std::string& where,
                   std::string_view what = "");
// An array of counts (a shape, MLP widths); absent -> empty.
std::vector<int> int_list(const toml::table& t, std::string_view key, const std::string& where);

// The message for an enumerated field `key` that holds `got`, not one of `names`: the list and the
// closest name as a suggestion.
std::string one_of_error(std::string_view key, const std::string& got, const std::vector<std::string>& names,
                         const std::string& where);

// Plausible bounds on a datasheet rate: wide enough for every real part from a microcontroller to a
// wafer-scale engine, narrow enough to catch a unit slip (B/s or MB/s written where GB/s belongs).
struct RateRange {
  double lo, hi;
  const char* unit;
  const char* span;  // what the bounds stand for, for the message
};
// The nRF52840 (Cortex-M4F, 64 MHz) peaks at 4.3e-5 TFLOP/s; Cerebras WSE-3 at 1.25e5 dense.
inline constexpr RateRange kPeakRange{1e-7, 1e7, "TFLOP/s",
                                      "0.1 MFLOP/s, below any microcontroller, to 10 EFLOP/s, 80x Cerebras WSE-3"};
// The nRF52840 streams 0.256 GB/s; Cerebras WSE-3's on-chip SRAM 21 PB/s (2.1e7 GB/s).
inline constexpr RateRange kBandwidthRange{
    1e-3, 1e8, "GB/s", "1 MB/s, a slow microcontroller bus, to 100 PB/s, 5x Cerebras WSE-3's SRAM"};
// A rate the engine divides by (a peak, a bandwidth): a number > 0 inside `range`. `if_zero` adds
// what to do instead of writing 0.
double plausible_rate(const toml::node* n, const RateRange& range, const std::string& label, const std::string& where,
                      std::string_view if_zero = "");

}  // namespace toml_input
}  // namespace mlsysim
