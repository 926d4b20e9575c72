// The walls of running a job for weeks (the tutorial's Fragility, Checkpoint, Capital and
// Sustainability walls): failures, checkpoint/restart, energy, emissions and money.
#pragma once

#include <string>

#include "mlsysim/catalog/hardware.hpp"
#include "mlsysim/units/quantity.hpp"

namespace mlsysim {

using units::Bytes;
using units::BytesPerSecond;
using units::Joules;
using units::KgCO2e;
using units::KgCO2ePerJoule;
using units::Seconds;
using units::Usd;
using units::UsdPerSecond;

// ---- sourced defaults ---------------------------------------------------------------------------
// Job-interrupting failures per GPU: Llama 3 405B pre-training saw 419 unexpected interruptions in a
// 54-day snapshot on 16,384 H100s (Dubey et al. 2024, "The Llama 3 Herd of Models", sec. 3.3.4 and
// Table 5: 78% hardware, GPU and HBM3 the largest causes), i.e. one per 16384 x 54 x 24 / 419 =
// 50,677 GPU-hours. It counts every cause (host, network, software) per GPU of a synchronous job.
// Other published clusters imply 13,600 (OPT-175B) to 82,000 (Meta RSC-2) GPU-hours, counting other
// causes on other GPUs (validation/points/reliability.toml): a fleet's own figure beats this one.
inline constexpr Seconds kLlama3GpuMtbf = units::hours(16384.0 * 54.0 * 24.0 / 419.0);
// Checkpoint write bandwidth: Meta's Tectonic file system behind the same run sustains 2 TB/s
// (7 TB/s peak) for 16K GPUs (Dubey et al. 2024, sec. 3.3.1). A cluster's own storage may differ.
inline constexpr BytesPerSecond kLlama3CheckpointBandwidth{2e12};
// Bytes a mixed-precision Adam checkpoint holds per parameter: 16-bit weights (2) plus the fp32
// master copy and two fp32 moments (12; ZeRO's K = 12, Rajbhandari et al. 2020).
inline constexpr double kCheckpointBytesPerParam = 14.0;
// Power usage effectiveness: the industry average of the Uptime Institute Global Data Center
// Survey 2023 (1.58; flat at 1.55-1.59 since 2020).
inline constexpr double kSurveyAveragePue = 1.58;
// Grid carbon intensity: the U.S. 2022 average, 1.65 billion t CO2 over 4.23 trillion kWh of
// utility-scale generation = 0.390 kg CO2/kWh (U.S. EIA, FAQ "How much carbon dioxide is produced
// per kilowatthour of U.S. electricity generation?"). CO2 only (not CO2e), operational only.
inline constexpr KgCO2ePerJoule kUsGridIntensity{1.65e12 / 4.23e12 / 3.6e6};

// Price of a GPU-hour where nothing better is known: AWS EC2 p5.48xlarge (8x H100 SXM 80 GB)
// on-demand, us-east-1, $55.04/hour = $6.88 per GPU-hour after AWS's June 2025 price cut (it launched
// in 2023 at $98.32/hour); the H100's [device.rental] in catalog/hardware/cloud.toml cites the row.
inline constexpr UsdPerSecond kDefaultGpuRate = units::usd_per_hour(55.04 / 8.0);

// What running GPUs costs: the facility's overhead, the grid's carbon, the price of a GPU-hour
// and where that price comes from (the traces quote it).
struct OperatingCosts {
  double pue = kSurveyAveragePue;
  KgCO2ePerJoule grid_intensity = kUsGridIntensity;
  UsdPerSecond gpu_rate = kDefaultGpuRate;  // one GPU's price per hour of use, as a rate
  std::string gpu_rate_source = "AWS p5.48xlarge on-demand, $55.04/h for 8 x H100";
};
// The costs with the price of one hour of `hw`: its on-demand cloud rate from the hardware catalog
// ([device.rental]); a device the catalog lists no rental for (a desktop or laptop GPU, a board, an
// accelerator rented only by reservation) keeps kDefaultGpuRate, and the source says whose price
// that is and how to give one's own (--gpu-hour-usd).
OperatingCosts priced_for(OperatingCosts costs, const HardwareSpec& hw);
// Throws BadInput naming the flag and its range: PUE in [1, 3], grid intensity in [0, 2] kg CO2 per
// kWh, a GPU-hour's price in (0, 1000] $.
void check_operating_costs(const OperatingCosts& c);

// ---- failures (the Fragility Wall) ---------------------------------------------------------------
// A synchronous job stops when any of its GPUs fails: with independent exponential failures the
// rates add, so the job's mean time between failures is the per-GPU MTBF over the GPU count.
Seconds cluster_mtbf(Seconds per_gpu_mtbf, double gpus);
// Probability of at least one failure in `duration` (exponential failures): 1 - exp(-T / M).
double failure_probability(Seconds duration, Seconds mtbf);

// ---- checkpoint / restart (the Checkpoint Wall) ---------------------------------------------------
// Young (1974), "A first order approximation to the optimum checkpoint interval", CACM 17(9):
// compute time between checkpoints sqrt(2 delta M) for a checkpoint that costs delta.
Seconds young_interval(Seconds checkpoint_cost, Seconds mtbf);
// Daly (2006), "A higher order estimate of the optimum checkpoint interval for restart dumps",
// FGCS 22(3): sqrt(2 delta M) [1 + sqrt(delta / 2M) / 3 + (delta / 2M) / 9] - delta while
// delta < 2M, else M. Within a few percent of the exact optimum of daly_wall_time.
Seconds daly_interval(Seconds checkpoint_cost, Seconds mtbf);
// Daly (2006): the expected wall-clock time of `work` seconds of failure-free computation
// checkpointed every `interval` seconds of work (each checkpoint costs `checkpoint_cost`, each
// failure `restart` to resume plus the work lost since the last checkpoint), under exponential
// failures with mean `mtbf`: M e^(R/M) (e^((tau + delta)/M) - 1) work / tau.
Seconds daly_wall_time(Seconds work, Seconds interval, Seconds checkpoint_cost, Seconds restart, Seconds mtbf);

// ---- energy, emissions, money (the Sustainability and Capital Walls) -------------------------------
// Facility energy: the IT energy times the power usage effectiveness (cooling, power delivery).
Joules facility_energy(Joules it_energy, double pue);
// Operational emissions of that energy on a grid of the given carbon intensity.
KgCO2e operational_emissions(Joules facility_energy, KgCO2ePerJoule grid_intensity);

}  // namespace mlsysim
