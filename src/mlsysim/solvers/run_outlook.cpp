#include "mlsysim/solvers/run_outlook.hpp"

#include <cmath>
#include <fmt/format.h>

#include "mlsysim/errors.hpp"
#include "mlsysim/units/format.hpp"

namespace mlsysim {
namespace {

void check_positive(double v, const char* what, const char* hint) {
  if (!(v > 0) || !std::isfinite(v)) throw BadInput(fmt::format("{} must be > 0, got {} ({})", what, v, hint));
}

// `scale` converts the SI value back into the flag's unit (hours, GB/s) for the range and the
// message. The ranges hold every real cluster with room to spare; outside them the run's times
// stop being finite numbers.
void check_in_range(double v, const char* flag, double lo, double hi, const char* hint, double scale) {
  if (!(v / scale >= lo && v / scale <= hi))
    throw BadInput(fmt::format("{} must be in [{:g}, {:g}], got {:g} ({})", flag, lo, hi, v / scale, hint));
}

void check_options(const RunOptions& o) {
  check_in_range(o.gpu_mtbf.si(), "--gpu-mtbf-hours", 1, 1e9,
                 "hours between job-interrupting failures per GPU; Llama 3: 50677", 3600.0);
  check_in_range(o.checkpoint_bandwidth.si(), "--checkpoint-bandwidth", 1e-3, 1e6,
                 "GB/s the cluster's storage sustains; Llama 3: 2000", 1e9);
  if (!(o.restart.si() >= 0) || !std::isfinite(o.restart.si()))
    throw BadInput(fmt::format("--restart-minutes must be >= 0, got {}", o.restart.si() / 60.0));
  if (!(o.checkpoint_interval.si() >= 0) || !std::isfinite(o.checkpoint_interval.si()))
    throw BadInput(fmt::format("--checkpoint-interval-minutes must be >= 0 (0: the optimum), got {}",
                               o.checkpoint_interval.si() / 60.0));
  check_operating_costs(o.costs);
}

double in_hours(Seconds t) { return t.si() / 3600.0; }
double in_kwh(Joules e) { return e.si() / 3.6e6; }

// Below this goodput a job is reported as not finishing.
constexpr double kMinimumGoodput = 0.01;

}  // namespace

JobReliability job_reliability(double gpus, Seconds gpu_mtbf, Seconds work, Seconds checkpoint_cost,
                               Seconds restart, Seconds interval) {
  if (!(gpus >= 1) || !std::isfinite(gpus)) throw BadInput(fmt::format("the GPU count must be >= 1, got {}", gpus));
  check_positive(gpu_mtbf.si(), "the per-GPU MTBF", "hours between job-interrupting failures; Llama 3: 50677");
  check_positive(work.si(), "the job's failure-free time", "its steps x step time");
  check_positive(checkpoint_cost.si(), "the checkpoint time", "checkpoint bytes / write bandwidth");
  if (!(restart.si() >= 0) || !std::isfinite(restart.si()))
    throw BadInput(fmt::format("the restart time must be >= 0 s, got {}", restart.si()));
  JobReliability j;
  j.cluster_mtbf = cluster_mtbf(gpu_mtbf, gpus);
  j.failure_probability = failure_probability(work, j.cluster_mtbf);
  j.young_interval = young_interval(checkpoint_cost, j.cluster_mtbf);
  j.checkpoint_interval = interval.si() > 0 ? interval : daly_interval(checkpoint_cost, j.cluster_mtbf);
  j.wall_time = daly_wall_time(work, j.checkpoint_interval, checkpoint_cost, restart, j.cluster_mtbf);
  j.goodput = std::isfinite(j.wall_time.si()) ? (work / j.wall_time).si() : 0.0;
  j.expected_failures = (j.wall_time / j.cluster_mtbf).si();
  j.finishes = std::isfinite(j.wall_time.si()) && j.goodput >= kMinimumGoodput;
  return j;
}

RunOutlook run_outlook(const TrainingResult& t, const RunOptions& o) {
  check_options(o);
  RunOutlook r;
  r.failure_free_time = t.time_to_train;
  // Every data-parallel replica holds a copy; one copy is written (its shards in parallel). A LoRA
  // run writes its adapters' state only: the frozen base never changes (NeMo and PEFT save adapters).
  r.checkpoint_bytes = Bytes(t.trainable_parameters * kCheckpointBytesPerParam);
  r.checkpoint_cost = r.checkpoint_bytes / o.checkpoint_bandwidth;
  const JobReliability j =
      job_reliability(t.gpus, o.gpu_mtbf, r.failure_free_time, r.checkpoint_cost, o.restart, o.checkpoint_interval);
  r.cluster_mtbf = j.cluster_mtbf;
  r.failure_probability = j.failure_probability;
  r.young_interval = j.young_interval;
  r.interval_is_optimal = o.checkpoint_interval.si() <= 0;
  r.checkpoint_interval = j.checkpoint_interval;
  r.wall_time = j.wall_time;
  r.goodput = j.goodput;
  r.expected_failures = j.expected_failures;
  r.finishes = j.finishes;
  if (!r.finishes) {
    r.why_not = fmt::format(
        "the job fails every {:.3g} h on average (per-{} MTBF {:.0f} h / {}), but each failure costs a "
        "{:.1f}-min restart plus up to {:.1f} min of work since the last checkpoint: failures outpace progress "
        "(goodput {:.2g}%). Use fewer {}s, more reliable ones (--gpu-mtbf-hours), a faster restart "
        "(--restart-minutes) or the optimal checkpoint interval (--checkpoint-interval-minutes 0: {:.1f} min)",
        in_hours(r.cluster_mtbf), t.unit, in_hours(o.gpu_mtbf), units::format_counted(t.gpus, t.unit),
        o.restart.si() / 60.0, r.checkpoint_interval.si() / 60.0, 100 * r.goodput, t.unit,
        daly_interval(r.checkpoint_cost, r.cluster_mtbf).si() / 60.0);
  }
  r.gpu_hours = t.gpus * in_hours(r.wall_time);
  r.unit = t.unit;

  // Energy: the GPUs draw their training power for the whole run (checkpoints and restarts
  // included: an upper bound on what idles then); the facility adds its PUE.
  r.gpu_power = t.gpu_power;
  r.it_energy = t.gpu_power * r.wall_time * static_cast<double>(t.gpus);
  r.facility_energy = facility_energy(r.it_energy, o.costs.pue);
  r.emissions = operational_emissions(r.facility_energy, o.costs.grid_intensity);
  r.cost = o.costs.gpu_rate * units::hours(r.gpu_hours);
  r.gpu_rate = o.costs.gpu_rate;

  r.trace = {
      fmt::format("failures: per-{} MTBF {:.0f} h / {} = cluster MTBF {:.2f} h (a synchronous job stops when any "
                  "{} does); P(at least one failure in the {:.1f} failure-free days) = 1 - exp(-T/M) = {:.1f}%{}",
                  t.unit, in_hours(o.gpu_mtbf), units::format_counted(t.gpus, t.unit), in_hours(r.cluster_mtbf),
                  t.unit, r.failure_free_time.si() / 86400.0,
                  100 * r.failure_probability,
                  o.gpu_mtbf == kLlama3GpuMtbf  // the default, untouched
                      ? "; the MTBF is Llama 3's, and published clusters range 13,600-82,000 GPU-hours per "
                        "failure (mlsysim validate --category reliability): --gpu-mtbf-hours for your fleet's"
                      : ""),
      fmt::format("checkpoint: {:.0f} B/param (16-bit weights + fp32 master and Adam moments) x {:.3g} {}params = "
                  "{:.3g} TB at {:.0f} GB/s = {:.1f} s per write",
                  kCheckpointBytesPerParam, t.trainable_parameters,
                  t.lora.enabled() ? "LoRA adapter (the frozen base is not rewritten) " : "",
                  r.checkpoint_bytes.si() / 1e12,
                  o.checkpoint_bandwidth.si() / 1e9, r.checkpoint_cost.si()),
      r.interval_is_optimal
          ? fmt::format("interval: Daly (2006) optimum {:.1f} min of work between checkpoints (Young's first order "
                        "sqrt(2 delta M) = {:.1f} min)",
                        r.checkpoint_interval.si() / 60.0, r.young_interval.si() / 60.0)
          : fmt::format("interval: {:.1f} min of work between checkpoints, as given (Daly's optimum would be {:.1f} "
                        "min)",
                        r.checkpoint_interval.si() / 60.0, daly_interval(r.checkpoint_cost, r.cluster_mtbf).si() / 60.0),
  };
  if (!r.finishes) {
    // No wall time, energy or cost to derive: why_not says what to change.
    r.trace.push_back(fmt::format("wall time, energy and cost: none, the job does not finish (goodput {:.2g}%)",
                                  100 * r.goodput));
    return r;
  }
  r.trace.push_back(
      fmt::format("wall time: Daly (2006) M e^(R/M) (e^((tau+delta)/M) - 1) T/tau with restart R = {:.1f} min = "
                  "{:.2f} days; goodput {:.1f}%, {:.0f} expected failures",
                  o.restart.si() / 60.0, r.wall_time.si() / 86400.0, 100 * r.goodput, r.expected_failures));
  r.trace.push_back(
      fmt::format("energy: {:.0f} W per {} x {} x {:.2f} days = {:.3g} MWh IT x PUE {:.2f} = {:.3g} MWh; "
                  "emissions at {:.3f} kg CO2/kWh = {:.3g} t",
                  r.gpu_power.si(), t.unit, units::format_counted(t.gpus, t.unit), r.wall_time.si() / 86400.0, in_kwh(r.it_energy) / 1e3, o.costs.pue,
                  in_kwh(r.facility_energy) / 1e3, o.costs.grid_intensity.si() * 3.6e6, r.emissions.si() / 1e3));
  r.trace.push_back(
      fmt::format("cost: {:.3g} {}-hours x ${:.2f} ({}) = ${:.3g}", r.gpu_hours, t.unit,
                  units::in_usd_per_hour(o.costs.gpu_rate), o.costs.gpu_rate_source, r.cost.si()));
  return r;
}

ServingOutlook serving_outlook(const ServingResult& s, const OperatingCosts& c, const OperatingCosts* decode_costs) {
  check_operating_costs(c);
  ServingOutlook o;
  o.energy_per_token = s.energy_per_token;
  o.facility_energy_per_token = facility_energy(s.energy_per_token, c.pue);
  // The replica's GPU-hours per hour: tp prefill GPUs and, disaggregated, decode_tp decode GPUs,
  // each pool at its own device's price.
  const bool two_pools = s.disaggregated && decode_costs;
  if (two_pools) check_operating_costs(*decode_costs);
  const UsdPerSecond replica_rate = two_pools ? c.gpu_rate * s.tp + decode_costs->gpu_rate * s.decode_tp
                                             : c.gpu_rate * s.gpus;
  // The replica's GPUs for as long as a million tokens take at its request throughput.
  const Seconds time_per_million(1e6 / s.request_tokens_per_s);
  o.cost_per_million_tokens = replica_rate * time_per_million;
  o.gpu_rate = replica_rate / s.gpus;
  o.emissions_per_million_tokens = operational_emissions(o.facility_energy_per_token * 1e6, c.grid_intensity);
  o.trace = {
      fmt::format("per token: {:.3g} J on the {}s (engine power x TTFT and decode time / tokens; {:.0f} W per busy "
                  "{}) x PUE {:.2f} = {:.3g} J; {:.3g} g CO2 per 1k tokens at {:.3f} kg/kWh",
                  o.energy_per_token.si(), s.unit, s.average_power_per_gpu.si(), s.unit, c.pue, o.facility_energy_per_token.si(),
                  o.emissions_per_million_tokens.si(), c.grid_intensity.si() * 3.6e6),
      fmt::format("cost: {} / ({:.4g} tokens/s x 3600) = ${:.3g} per 1M tokens",
                  two_pools ? fmt::format("({} x ${:.2f}/h ({}) + {} x ${:.2f}/h ({}))",
                                          units::format_counted(s.tp, "prefill " + s.unit), units::in_usd_per_hour(c.gpu_rate),
                                          c.gpu_rate_source, units::format_counted(s.decode_tp, "decode " + s.decode_unit),
                                          units::in_usd_per_hour(decode_costs->gpu_rate), decode_costs->gpu_rate_source)
                            : fmt::format("{} x ${:.2f}/h ({})", units::format_counted(s.gpus, s.unit),
                                          units::in_usd_per_hour(c.gpu_rate), c.gpu_rate_source),
                  s.request_tokens_per_s, o.cost_per_million_tokens.si()),
  };
  return o;
}

}  // namespace mlsysim
