// pybind11 bindings: the engine's catalog, solve() and formulas exposed to the `mlsysim` Python
// package (python/mlsysim/). Thin: no physics here, only conversions. Quantities cross as SI floats
// and are wrapped into unit-carrying Python objects by the package.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "command.hpp"
#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/catalog/fleet.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/physics/collectives.hpp"
#include "mlsysim/physics/memory.hpp"
#include "mlsysim/physics/operations.hpp"
#include "mlsysim/physics/transformer.hpp"
#include "mlsysim/solvers/engine.hpp"
#include "mlsysim/solvers/run_outlook.hpp"

namespace py = pybind11;
using namespace mlsysim;

namespace {

std::optional<Phase> phase_from(const std::optional<std::string>& s) {
  if (!s) return std::nullopt;
  if (*s == "inference") return Phase::Inference;
  if (*s == "prefill") return Phase::Prefill;
  if (*s == "decode") return Phase::Decode;
  if (*s == "train" || *s == "training") return Phase::Train;
  throw BadInput("phase must be inference|prefill|decode|train; got '" + *s + "'");
}

Precision precision_from(const std::string& flag, const std::string& s) {
  auto p = parse_precision(s);
  if (!p) throw BadInput(flag + " '" + s + "' is not one of " + precision_list());
  return *p;
}

// BadInput -> ValueError; DoesNotFit -> mlsysim OOMError carrying the bytes it needed and had.
void bind_errors(py::module_& m) {
  static py::exception<DoesNotFit> oom(m, "OOMError", PyExc_RuntimeError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const BadInput& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const DoesNotFit& e) {
      py::object type = py::reinterpret_borrow<py::object>(oom.ptr());
      py::object err = type(e.what());
      err.attr("required_bytes") = e.required_bytes;
      err.attr("available_bytes") = e.available_bytes;
      PyErr_SetObject(oom.ptr(), err.ptr());
    }
  });
}

// The catalog's records and the engine's Profile, read-only.
void bind_types(py::module_& m) {
  py::class_<HardwareSpec>(m, "HardwareSpec")
      .def_readonly("id", &HardwareSpec::id)
      .def_readonly("name", &HardwareSpec::name)
      .def_readonly("vendor", &HardwareSpec::vendor)
      .def_readonly("tier", &HardwareSpec::tier)
      .def_readonly("kind", &HardwareSpec::kind)
      .def_readonly("year", &HardwareSpec::year)
      .def_readonly("aliases", &HardwareSpec::aliases)
      .def_readonly("sources", &HardwareSpec::sources)
      .def_property_readonly("memory_capacity_bytes", [](const HardwareSpec& h) { return h.memory_capacity.si(); })
      .def_property_readonly("memory_usable_bytes", [](const HardwareSpec& h) { return h.memory_usable.si(); })
      .def_property_readonly("memory_bandwidth_bytes_per_s", [](const HardwareSpec& h) { return h.memory_bandwidth.si(); })
      .def_property_readonly("tdp_w", [](const HardwareSpec& h) { return h.tdp.si(); })
      .def_property_readonly("price_usd", [](const HardwareSpec& h) -> std::optional<double> {
        return h.price ? std::optional<double>(h.price->si()) : std::nullopt; })
      .def_property_readonly("rental_usd_per_hour", [](const HardwareSpec& h) -> std::optional<double> {
        return h.rental_rate ? std::optional<double>(units::in_usd_per_hour(*h.rental_rate)) : std::nullopt; })
      .def_property_readonly("interconnect_bytes_per_s", [](const HardwareSpec& h) -> std::optional<double> {
        return h.interconnect ? std::optional<double>(h.interconnect->per_direction.si()) : std::nullopt; })
      .def("peak_flops_per_s", [](const HardwareSpec& h, const std::string& p) {
        return h.peak(precision_from("precision", p)).si(); }, py::arg("precision") = "bf16")
      .def("supported_precisions", [](const HardwareSpec& h) {
        std::vector<std::string> out;
        for (Precision p : kAllPrecisions) if (h.supports(p)) out.emplace_back(to_string(p));
        return out; })
      .def("ridge_point", [](const HardwareSpec& h, const std::string& p) {
        return h.ridge_point(precision_from("precision", p)).si(); }, py::arg("precision") = "bf16")
      .def_property_readonly("efficiency_source", [](const HardwareSpec& h) { return h.efficiency.source; });

  py::class_<ModelSpec>(m, "ModelSpec")
      .def_readonly("id", &ModelSpec::id)
      .def_readonly("name", &ModelSpec::name)
      .def_readonly("family", &ModelSpec::family)
      .def_readonly("aliases", &ModelSpec::aliases)
      .def_readonly("source", &ModelSpec::source)
      .def_property_readonly("kind", [](const ModelSpec& s) { return std::string(to_string(s.kind)); })
      .def_property_readonly("parameters", [](const ModelSpec& s) { return parameter_count(s); })
      .def_property_readonly("published_parameters", [](const ModelSpec& s) { return s.published_params; })
      .def_property_readonly("layers", [](const ModelSpec& s) { return s.tf.layers; })
      .def_property_readonly("hidden", [](const ModelSpec& s) { return s.tf.hidden; })
      .def_property_readonly("heads", [](const ModelSpec& s) { return s.tf.heads; })
      .def_property_readonly("kv_heads", [](const ModelSpec& s) { return s.tf.kv_heads; })
      .def_property_readonly("max_seq", [](const ModelSpec& s) { return s.tf.max_seq; })
      .def("kv_cache_bytes_per_token", [](const ModelSpec& s, const std::string& p) {
        return kv_cache_bytes_per_token(s, precision_from("precision", p)).si(); }, py::arg("precision") = "bf16");

  py::class_<OperatorResult>(m, "OperatorResult")
      .def_property_readonly("name", [](const OperatorResult& o) { return std::string(o.name); })
      .def_property_readonly("pass_", [](const OperatorResult& o) { return std::string(to_string(o.pass)); })
      .def_readonly("count", &OperatorResult::count)
      .def_property_readonly("flops", [](const OperatorResult& o) { return o.flops.si(); })
      .def_property_readonly("bytes", [](const OperatorResult& o) { return o.bytes.si(); })
      .def_property_readonly("time_s", [](const OperatorResult& o) { return o.timing.total().si(); })
      .def_property_readonly("bottleneck", [](const OperatorResult& o) { return std::string(to_string(o.timing.wall())); });

  py::class_<Profile>(m, "Profile")
      .def_property_readonly("model_id", [](const Profile& p) { return p.model->id; })
      .def_property_readonly("hardware_id", [](const Profile& p) { return p.hardware->id; })
      .def_property_readonly("hardware_name", [](const Profile& p) { return p.hardware->name; })
      .def_property_readonly("phase", [](const Profile& p) { return std::string(to_string(p.phase)); })
      .def_property_readonly("runtime", [](const Profile& p) { return std::string(to_string(p.runtime)); })
      .def_property_readonly("fusion", [](const Profile& p) { return std::string(to_string(p.fusion)); })
      .def_property_readonly("attention", [](const Profile& p) { return std::string(to_string(p.attention)); })
      .def_property_readonly("activation_scaling",
                             [](const Profile& p) { return std::string(to_string(p.activation_scaling)); })
      .def_readonly("batch_size", &Profile::batch)
      .def_readonly("seq_len", &Profile::seq_len)
      .def_readonly("context", &Profile::context)
      .def_property_readonly("precision", [](const Profile& p) { return std::string(to_string(p.precision)); })
      .def_property_readonly("compute_precision", [](const Profile& p) { return std::string(to_string(p.compute_precision)); })
      .def_property_readonly("kv_precision", [](const Profile& p) { return std::string(to_string(p.kv_precision)); })
      .def_property_readonly("model_type", [](const Profile& p) { return p.teaching_efficiency > 0 ? "textbook" : "operator"; })
      .def_property_readonly("head_precision", [](const Profile& p) { return std::string(to_string(p.head_precision)); })
      .def_property_readonly("embedding_precision", [](const Profile& p) { return std::string(to_string(p.embedding_precision)); })
      .def_readonly("precision_fallback", &Profile::precision_fallback)
      .def_property_readonly("latency_s", [](const Profile& p) { return p.latency.si(); })
      .def_property_readonly("compute_time_s", [](const Profile& p) { return p.compute_time.si(); })
      .def_property_readonly("memory_time_s", [](const Profile& p) { return p.memory_time.si(); })
      .def_property_readonly("overhead_time_s", [](const Profile& p) { return p.overhead_time.si(); })
      .def_property_readonly("bottleneck", [](const Profile& p) { return std::string(to_string(p.bottleneck)); })
      .def_readonly("mfu", &Profile::mfu)
      .def_readonly("hfu", &Profile::hfu)
      .def_readonly("throughput", &Profile::throughput)
      .def_property_readonly("throughput_unit", [](const Profile& p) { return std::string(p.throughput_unit); })
      .def_property_readonly("model_flops", [](const Profile& p) { return p.model_flops.si(); })
      .def_property_readonly("bytes_moved", [](const Profile& p) { return p.bytes_moved.si(); })
      .def_property_readonly("arithmetic_intensity", [](const Profile& p) { return p.arithmetic_intensity.si(); })
      .def_property_readonly("ridge_point", [](const Profile& p) { return p.ridge_point.si(); })
      .def_readonly("parameters", &Profile::parameters)
      .def_readonly("trainable_parameters", &Profile::trainable_parameters)
      .def_property_readonly("lora_rank", [](const Profile& p) { return p.lora.rank; })
      .def_property_readonly("weight_bytes", [](const Profile& p) { return p.weight_bytes.si(); })
      .def_property_readonly("weight_stream_time_s", [](const Profile& p) { return p.weight_stream_time.si(); })
      .def_property_readonly("memory_footprint_bytes", [](const Profile& p) { return p.memory.total().si(); })
      .def_property_readonly("memory_capacity_bytes", [](const Profile& p) { return p.memory_capacity.si(); })
      .def_property_readonly("memory_ledger", [](const Profile& p) {
        return std::map<std::string, double>{{"weights", p.memory.weights.si()},
                                             {"kv_cache", p.memory.kv_cache.si()},
                                             {"activations", p.memory.activations.si()},
                                             {"gradients", p.memory.gradients.si()},
                                             {"optimizer_states", p.memory.optimizer_states.si()}}; })
      .def_readonly("feasible", &Profile::feasible)
      .def_property_readonly("energy_j", [](const Profile& p) { return p.energy.si(); })
      .def_readonly("kernels", &Profile::kernels)
      .def_readonly("operators", &Profile::operators)
      .def("trace", [](const Profile& p) { return explain(p); })
      .def("does_not_fit_message", [](const Profile& p) { return does_not_fit_message(p); });
}

SolveRequest solve_request(int batch_size, const std::optional<std::string>& phase, std::optional<int> seq_len,
                           std::optional<int> context, const std::optional<std::string>& precision,
                           const std::optional<std::string>& kv_precision, const std::string& recompute,
                           const std::string& runtime, double efficiency, const std::string& fusion,
                           const std::string& attention, bool quantize_head, int lora_rank,
                           const std::string& lora_targets, const std::optional<std::string>& compute_precision,
                           const std::string& activation_scaling) {
  SolveRequest r;
  r.lora.rank = lora_rank;
  if (lora_targets == "attention") r.lora.targets = LoraTargets::Attention;
  else if (lora_targets == "all") r.lora.targets = LoraTargets::All;
  else throw BadInput("lora_targets must be attention|all; got '" + lora_targets + "'");
  r.quantize_head = quantize_head;
  r.batch = batch_size;
  r.phase = phase_from(phase);
  r.seq_len = seq_len;
  r.context = context;
  if (precision) r.precision = precision_from("precision", *precision);
  if (kv_precision) r.kv_precision = precision_from("kv_precision", *kv_precision);
  if (compute_precision) r.compute_precision = precision_from("compute_precision", *compute_precision);
  if (recompute == "none") r.recompute = Recompute::None;
  else if (recompute == "selective") r.recompute = Recompute::Selective;
  else if (recompute == "full") r.recompute = Recompute::Full;
  else throw BadInput("activation_recomputation must be none|selective|full; got '" + recompute + "'");
  r.runtime = parse_runtime(runtime, "runtime");
  r.fusion = parse_fusion(fusion, "fusion");
  r.attention = parse_attention_kernel(attention, "attention");
  r.activation_scaling = parse_activation_scaling(activation_scaling, "activation_scaling");
  r.efficiency = efficiency;
  return r;
}

// Catalog lookups, solve(), and every CLI command in-process.
void bind_engine(py::module_& m) {
  m.def("hardware", [](const std::string& name) -> const HardwareSpec& {
    return Catalog::builtin().hardware(name); }, py::return_value_policy::reference);
  m.def("model", [](const std::string& name) -> const ModelSpec& {
    return Catalog::builtin().model(name); }, py::return_value_policy::reference);
  m.def("model_from_hf_config", &model_from_hf_config);
  m.def("bytes_per_element", [](const std::string& p) { return bytes_per_element(precision_from("precision", p)); },
        py::arg("precision"));
  m.def("all_hardware", [] {
    std::vector<const HardwareSpec*> out;
    for (const auto& h : Catalog::builtin().all_hardware()) out.push_back(&h);
    return out; }, py::return_value_policy::reference);
  m.def("all_models", [] {
    std::vector<const ModelSpec*> out;
    for (const auto& s : Catalog::builtin().all_models()) out.push_back(&s);
    return out; }, py::return_value_policy::reference);

  m.def("solve",
        [](const ModelSpec& model, const HardwareSpec& hw, int batch_size,
           std::optional<std::string> phase, std::optional<int> seq_len, std::optional<int> context,
           std::optional<std::string> precision, std::optional<std::string> kv_precision,
           const std::string& recompute, const std::string& runtime, double efficiency,
           const std::string& fusion, const std::string& attention, bool quantize_head, int lora_rank,
           const std::string& lora_targets, std::optional<std::string> compute_precision,
           const std::string& activation_scaling) {
          return solve(model, hw, solve_request(batch_size, phase, seq_len, context, precision, kv_precision,
                                                recompute, runtime, efficiency, fusion, attention,
                                                quantize_head, lora_rank, lora_targets, compute_precision,
                                                activation_scaling));
        },
        py::arg("model"), py::arg("hardware"), py::arg("batch_size") = 1, py::arg("phase") = py::none(),
        py::arg("seq_len") = py::none(), py::arg("context") = py::none(),
        py::arg("precision") = py::none(), py::arg("kv_precision") = py::none(),
        py::arg("recompute") = "none", py::arg("runtime") = "graph", py::arg("efficiency") = 0.0,
        py::arg("fusion") = "auto", py::arg("attention") = "flash", py::arg("quantize_head") = false,
        py::arg("lora_rank") = 0, py::arg("lora_targets") = "attention",
        py::arg("compute_precision") = py::none(), py::arg("activation_scaling") = "static",
        py::keep_alive<0, 1>(),
        py::keep_alive<0, 2>());

  m.def("raise_does_not_fit", [](const Profile& p) {
    throw DoesNotFit(does_not_fit_message(p), p.memory.total().si(), p.memory_capacity.si()); });

  // Every CLI command in-process (same code path, same messages): (exit code, stdout, stderr).
  m.def("cli", [](const std::vector<std::string>& args) {
    const auto r = cli::run_captured(args);
    return py::make_tuple(r.exit_code, r.out, r.err);
  });
}

// The fleet catalog and the formulas the course material calls directly, in SI units.
void bind_fleet_and_formulas(py::module_& m) {
  m.def("all_clusters", [] {
    std::vector<std::map<std::string, py::object>> out;
    const auto& fleet = FleetCatalog::builtin();
    for (const auto& spec : fleet.clusters()) {
      const Cluster c = fleet.resolve(spec);
      out.push_back({{"id", py::cast(c.id)}, {"name", py::cast(c.name)},
                     {"aliases", py::cast(spec.aliases)}, {"nodes", py::cast(c.nodes)},
                     {"gpus_per_node", py::cast(c.gpus_per_node())},
                     {"total_gpus", py::cast(c.total_gpus())},
                     {"accelerator", py::cast(c.node.accelerator)}, {"node", py::cast(c.node.name)},
                     {"scale_up", py::cast(c.scale_up.name)}, {"scale_out", py::cast(c.scale_out.name)},
                     {"topology", py::cast(c.topology.name)},
                     {"oversubscription", py::cast(c.oversubscription)}, {"source", py::cast(c.source)}});
    }
    return out;
  });

  m.def("ring_allreduce_time_s", [](double message_bytes, int n_gpus, double bandwidth, double latency) {
    return ring_allreduce_time(Bytes(message_bytes), n_gpus,
                               {BytesPerSecond(bandwidth), Seconds(latency)}).si(); });
  // The Fragility and Checkpoint walls (physics/operations.hpp), in SI seconds.
  m.def("cluster_mtbf_s", [](double per_gpu_mtbf, double n) { return cluster_mtbf(Seconds(per_gpu_mtbf), n).si(); });
  m.def("failure_probability", [](double duration, double mtbf) {
    return failure_probability(Seconds(duration), Seconds(mtbf)); });
  m.def("young_interval_s", [](double delta, double mtbf) { return young_interval(Seconds(delta), Seconds(mtbf)).si(); });
  m.def("daly_interval_s", [](double delta, double mtbf) { return daly_interval(Seconds(delta), Seconds(mtbf)).si(); });
  m.def("llama3_gpu_mtbf_s", [] { return kLlama3GpuMtbf.si(); });
  m.def("job_reliability", [](double gpus, double gpu_mtbf, double work, double delta, double restart) {
    const JobReliability j = job_reliability(gpus, Seconds(gpu_mtbf), Seconds(work), Seconds(delta), Seconds(restart));
    return py::dict(py::arg("cluster_mtbf_s") = j.cluster_mtbf.si(),
                    py::arg("failure_probability") = j.failure_probability,
                    py::arg("checkpoint_interval_s") = j.checkpoint_interval.si(),
                    py::arg("young_interval_s") = j.young_interval.si(), py::arg("wall_time_s") = j.wall_time.si(),
                    py::arg("goodput") = j.goodput, py::arg("expected_failures") = j.expected_failures,
                    py::arg("finishes") = j.finishes);
  });
  m.def("daly_wall_time_s", [](double work, double interval, double delta, double restart, double mtbf) {
    return daly_wall_time(Seconds(work), Seconds(interval), Seconds(delta), Seconds(restart), Seconds(mtbf)).si(); });
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "mlsysim C++ engine";
  bind_errors(m);
  bind_types(m);
  bind_engine(m);
  bind_fleet_and_formulas(m);
}
