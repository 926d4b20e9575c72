"""The tutorial's Parts 2-4 listings, run unchanged, asserting the physics."""
import io
import math
import unittest
from contextlib import redirect_stdout

import mlsysim

ENV = {"mlsysim": mlsysim, "llama": mlsysim.Models.Language.Llama3_8B,
       "model": mlsysim.Models.Language.Llama3_8B, "hw": mlsysim.Hardware.Cloud.H100}


def run_listing(code: str, **extra) -> str:
    out = io.StringIO()
    env = dict(ENV, **extra)
    with redirect_stdout(out):
        exec(code, env)  # noqa: S102 - the listing is the test
    return out.getvalue()


def value(line: str) -> float:
    return float(line.split(":", 1)[1].split()[0].rstrip("x"))


class Part2Serving(unittest.TestCase):
    def test_two_phase_serving(self):
        out = run_listing('''
serving = mlsysim.ServingModel()
result = serving.solve(llama, hw,
    seq_len=4096, batch_size=1)
print(f"TTFT: {result.ttft:~P}")
print(f"ITL: {result.itl:~P}")
print(f"KV cache/req: {result.kv_cache_per_request:~P}")
''').splitlines()
        ttft, itl, kv = value(out[0]), value(out[1]), value(out[2])
        self.assertTrue(out[0].endswith("ms") and out[1].endswith("ms") and out[2].endswith("GB"))
        # Slide: TTFT 20-50 ms (compute-bound), ITL ~5 ms (memory-bound). A 4K prompt is 2*8e9*4096
        # = 66 TFLOP of linear work alone: >= 66e12 / 989.4e12 = 67 ms even at 100% of peak.
        self.assertGreater(ttft, 2 * 8.03e9 * 4096 / 989.4e12 * 1e3)
        self.assertLess(ttft, 150)
        self.assertGreater(itl, 16.06 / 3350 * 1e3)  # at least the weight stream
        self.assertLess(itl, 10)
        # KV for 4096 + 128 generated tokens with GQA (8 KV heads): 131,072 B/token.
        self.assertAlmostEqual(kv, (4096 + 128) * 131072 / 1e9, places=3)

    def test_power_and_energy_are_quantities(self):
        # Watts and joules come back as Quantities like times and bytes do, equal to the JSON's
        # SI values; a busy GPU draws between its idle floor and its TDP (700 W on an H100).
        r = mlsysim.ServingModel().solve(mlsysim.Models.Language.Llama3_8B, mlsysim.Hardware.Cloud.H100,
                                         seq_len=1024, batch_size=16)
        self.assertAlmostEqual(r.average_power_per_gpu.m_as("W"), r.average_power_per_gpu_w)
        self.assertAlmostEqual(r.energy_per_token.m_as("J"), r.energy_per_token_j)
        self.assertTrue(0.18 * 700 < r.average_power_per_gpu_w <= 700)
        self.assertIn("average_power_per_gpu", dir(r))
        with self.assertRaises(Exception):
            r.average_power_per_gpu.m_as("s")  # power is not a time

    def test_paged_attention_capacity(self):
        out = run_listing('''
cb = mlsysim.ContinuousBatchingModel()
result = cb.solve(model, hw, seq_len=4096,
    max_batch_size=32, page_size=16)
print(f"Max concurrent: {result.max_concurrent_requests}")
''')
        # GQA makes a 4K request 0.54 GB, so memory allows ~100: the 32-slot cap binds.
        self.assertEqual(out.strip(), "Max concurrent: 32")

    def test_capacity_exercise(self):
        out = run_listing('''
cb = mlsysim.ContinuousBatchingModel()
result = cb.solve(llama, hw, seq_len=4096,
    max_batch_size=64, page_size=16)
print(f"Max concurrent: {result.max_concurrent_requests}")
''')
        self.assertEqual(out.strip(), "Max concurrent: 64")
        # Memory binds below vLLM's 1024-sequence cap: (0.9 x 79.19 GiB usable - 16.06 GB weights
        # - the sampler's profile peak 1024 x 128256 x 16 B - 0.25 GiB) / 0.537 GB per request.
        r = mlsysim.ContinuousBatchingModel().solve(llama := mlsysim.Models.Language.Llama3_8B,
                                                    mlsysim.Hardware.Cloud.H100, seq_len=4096,
                                                    max_batch_size=1024)
        gib = 2.0 ** 30
        pool = 0.9 * 79.19 * gib - 16.06e9 - 1024 * 128256 * 16 - 0.25 * gib
        self.assertGreater(r.max_concurrent_requests, 100)
        self.assertLessEqual(r.max_concurrent_requests, pool / (4096 * 131072))

    def test_speculative_decoding(self):
        out = run_listing('''
draft = mlsysim.Models.Language.Llama3_8B # smaller
result = serving.solve(model, hw, seq_len=4096,
    draft_model=draft, draft_acceptance_rate=0.7)
print(f"Speedup: {result.speculative_speedup:.2f}x")
''', serving=mlsysim.ServingModel())
        # A draft as large as the target cannot pay: K draft steps cost as much as K target steps.
        self.assertLess(value(out), 1.0)
        big = mlsysim.ServingModel().solve(mlsysim.Models.Language.Llama3_70B, mlsysim.Hardware.Cloud.H200,
                                           seq_len=1024, draft_model=llama_8b(),
                                           draft_acceptance_rate=0.8)
        # E[tokens per verify] = (1 - 0.8^5) / (1 - 0.8) = 3.36 (Leviathan et al. 2023).
        self.assertAlmostEqual(big.speculative.expected_tokens_per_step, (1 - 0.8 ** 5) / 0.2, 9)
        self.assertGreater(big.speculative_speedup, 1.0)

    def test_disaggregated_serving(self):
        out = run_listing('''
result = serving.solve(model, hw, seq_len=4096,
    decode_hardware=mlsysim.Hardware.Cloud.A100)
print(f"TTFT: {result.ttft:~P} ITL: {result.itl:~P}")
''', serving=mlsysim.ServingModel())
        colocated = mlsysim.ServingModel().solve(llama_8b(), mlsysim.Hardware.Cloud.H100, seq_len=4096)
        itl = float(out.split("ITL: ")[1].split()[0])
        # Decode on A100 (2.04 TB/s) is slower than on H100 (3.35 TB/s).
        self.assertGreater(itl, colocated.itl.magnitude)


def llama_8b():
    return mlsysim.Models.Language.Llama3_8B


class Part3Compression(unittest.TestCase):
    def test_quantization_impact(self):
        out = run_listing('''
comp = mlsysim.CompressionModel()
for bits in [16, 8, 4]:
    r = comp.solve(llama, hw, method="quantization",
        target_bitwidth=bits)
    print(f"INT{bits}: size={r.compressed_size:~P} "
          f"speedup={r.inference_speedup:.1f}x")
''').splitlines()
        sizes = [float(line.split("size=")[1].split()[0]) for line in out]
        speedups = [float(line.split("speedup=")[1].rstrip("x")) for line in out]
        # The stored checkpoint: 8.03e9 params, of which the token embedding and the LM head
        # (2 x 128256 x 4096 = 1.05e9) stay 16-bit as the quantization toolkits keep them; the rest
        # at 2 / 1 / 0.5 bytes. Storage shrinks with the bits, less than linearly.
        tables = 2 * 128256 * 4096
        for size, width in zip(sizes, (2, 1, 0.5)):
            self.assertAlmostEqual(size, ((8.03e9 - tables) * width + tables * 2) / 1e9, delta=0.05)
        self.assertTrue(sizes[0] > sizes[1] > sizes[2])
        self.assertAlmostEqual(speedups[0], 1.0, places=1)
        self.assertTrue(speedups[0] < speedups[1] < speedups[2] < 4.0)

    def test_structure_matters(self):
        out = run_listing('''
comp = mlsysim.CompressionModel()
for stype in ["unstructured", "structured", "n_m"]:
    r = comp.solve(llama, hw, method="pruning",
        sparsity=0.5, sparsity_type=stype)
    print(f"{stype:>14}: {r.inference_speedup:.1f}x")
''').splitlines()
        speed = {line.split(":")[0].strip(): float(line.split(":")[1].strip().rstrip("x")) for line in out}
        self.assertEqual(speed["unstructured"], 1.0)  # same dense matrices: no speedup
        self.assertGreater(speed["structured"], 1.3)  # physically smaller matrices

    def test_compression_tradeoffs(self):
        out = run_listing('''
comp = mlsysim.CompressionModel()
r1 = comp.solve(llama, hw, method="quantization",
    target_bitwidth=8)
r2 = comp.solve(llama, hw, method="pruning",
    sparsity=0.5, sparsity_type="structured")
print(f"Quant: {r1.inference_speedup:.1f}x / "
      f"{abs(r1.accuracy_delta):.1%} loss")
print(f"Prune: {r2.inference_speedup:.1f}x / "
      f"{abs(r2.accuracy_delta):.1%} loss")
''').splitlines()
        quant_loss = float(out[0].split("/ ")[1].split("%")[0])
        prune_loss = float(out[1].split("/ ")[1].split("%")[0])
        self.assertLess(quant_loss, prune_loss)  # INT8 is the better deal per accuracy point

    def test_seventy_b_fleet_table(self):
        r = mlsysim.CompressionModel().solve(mlsysim.Models.Language.Llama3_70B, mlsysim.Hardware.Cloud.H100,
                                             method="quantization", target_bitwidth=4)
        gpus = [row["gpus_per_replica"] for row in r.fleet]
        self.assertEqual(gpus, [4, 2, 1])
        # gpt-fast-style: the LM head quantized too leaves only the embedding table (128256 x 8192) in bf16.
        q = mlsysim.CompressionModel().solve(mlsysim.Models.Language.Llama3_70B, mlsysim.Hardware.Cloud.H100,
                                             method="quantization", target_bitwidth=4, quantize_head=True)
        vh = 128256 * 8192
        self.assertAlmostEqual(q.runtime_weight_bytes, (70553706496 - vh) * 0.5 + vh * 2, delta=1)


class Part4Distributed(unittest.TestCase):
    def test_allreduce_example(self):
        out = run_listing('''
t = mlsysim.core.formulas.calc_ring_allreduce_time(
    message_bytes=16e9,
    n_gpus=8,
    bandwidth_bytes_s=900e9,
    latency_s=500e-9,
)
print(f"AllReduce time: {t.to('ms'):.1f}")
''')
        self.assertEqual(out.strip(), "AllReduce time: 31.1 ms")

    def test_distributed_demo(self):
        out = run_listing('''
fleet = mlsysim.Systems.Clusters.Frontier_8K
dist = mlsysim.DistributedModel()
result = dist.solve(llama, fleet, batch_size=4096,
    tp_size=8, pp_size=1, microbatch_count=32,
    seq_len=4096)
print(f"Scaling eff: {result.scaling_efficiency:.1%}")
print(f"Comm overhead: {result.communication_overhead:.1%}")
print(f"Effective MFU: {result.effective_mfu:.1%}")
''').splitlines()
        eff, comm, mfu = (float(line.split(": ")[1].rstrip("%")) / 100 for line in out)
        for v in (eff, comm, mfu):
            self.assertGreater(v, 0)
            self.assertLess(v, 1)
        self.assertLess(mfu, eff)  # effective MFU = single-GPU MFU x scaling efficiency

    def test_parallelism_exercise(self):
        out = run_listing('''
llama70 = mlsysim.Models.Language.Llama3_70B
fleet = mlsysim.Systems.Clusters.Research_256
for tp in [1, 2, 4, 8]:
    for pp in [1, 2, 4, 8]:
        if tp * pp > 64: continue
        r = dist.solve(llama70, fleet, batch_size=512,
            tp_size=tp, pp_size=pp, seq_len=4096,
            microbatch_count=max(4, 64//(tp*pp)))
        print(f"TP={tp} PP={pp} eff={r.scaling_efficiency:.1%}")
''', dist=mlsysim.DistributedModel()).splitlines()
        self.assertEqual(len(out), 16)
        # More pipeline stages at the same TP add bubble: efficiency does not rise with PP here.
        eff = {tuple(int(x.split("=")[1]) for x in line.split()[:2]): float(line.split("eff=")[1].rstrip("%"))
               for line in out}
        self.assertGreaterEqual(eff[(8, 1)], eff[(8, 8)])

    def test_straggler_factor_slows_the_step(self):
        fleet = mlsysim.Systems.Clusters.Research_256
        base = mlsysim.DistributedModel().solve(llama_8b(), fleet, batch_size=512, tp_size=8, seq_len=4096)
        slow = mlsysim.DistributedModel(straggler_factor=1.05).solve(llama_8b(), fleet, batch_size=512,
                                                                      tp_size=8, seq_len=4096)
        self.assertGreater(slow.step_time_s, base.step_time_s)
        with self.assertRaises(ValueError):
            mlsysim.DistributedModel(straggler_factor=0.9)


    def test_run_outlook_answers_the_fragility_wall(self):
        # The whole run: cluster MTBF = per-GPU MTBF / N (slide 4.10), a Daly checkpoint interval,
        # goodput below 1, and energy, emissions and cost that follow the flags.
        fleet = mlsysim.Systems.Clusters.Research_256
        args = dict(batch_size=512, tp_size=8, seq_len=4096)
        r = mlsysim.DistributedModel().solve(llama_8b(), fleet, gpu_mtbf_hours=50000, **args)
        self.assertAlmostEqual(r.run.cluster_mtbf_hours, 50000 / r.gpus, places=9)
        self.assertLess(r.run.goodput, 1.0)
        self.assertGreater(r.run.wall_time_s, r.time_to_train_s)
        greener = mlsysim.DistributedModel().solve(llama_8b(), fleet, gpu_mtbf_hours=50000, pue=1.1, **args)
        self.assertAlmostEqual(greener.run.emissions_kg_co2 / r.run.emissions_kg_co2, 1.1 / 1.58, places=9)

    def test_fragility_wall_formulas(self):
        f = mlsysim.core.formulas
        # Slide 4.10: 50,000-hour GPUs; 8 GPUs -> 260 days, 8,192 -> 6 hours, 100K -> 30 minutes.
        self.assertEqual(round(f.calc_mtbf_cluster(50000, 8).to("day").magnitude), 260)
        self.assertEqual(round(f.calc_mtbf_cluster(mlsysim.Q_(50000, "h"), 8192).to("h").magnitude), 6)
        self.assertEqual(round(f.calc_mtbf_cluster(50000, 100000).to("min").magnitude), 30)
        self.assertAlmostEqual(f.calc_failure_probability(5, 5), 1 - math.exp(-1), places=12)
        # delta 60 s, M 1 h: Young sqrt(2 x 60 x 3600) s; Daly's correction with x = 60 / 7200.
        young, x = math.sqrt(2 * 60 * 3600), 60 / 7200
        self.assertAlmostEqual(f.calc_young_daly_interval(60, 1).to("s").magnitude, young, places=9)
        self.assertAlmostEqual(f.calc_daly_interval(mlsysim.Q_(1, "min"), 1).to("s").magnitude,
                               young * (1 + math.sqrt(x) / 3 + x / 9) - 60, places=9)
        # No failures: only the checkpoint writes add (1000 h of work, 0.5 h intervals, 120 s writes).
        wall = f.calc_expected_wall_time(1000, 0.5, 120, 600, 1e12).to("h").magnitude
        self.assertAlmostEqual(wall, 1000 * (1 + 120 / 1800), places=3)
        with self.assertRaises(ValueError):
            f.calc_mtbf_cluster(50000, 0)
        with self.assertRaises(ValueError):
            f.calc_young_daly_interval(-1, 1)

    def test_reliability_model(self):
        # Slide 4.10's speaker note: 10,000 GPUs of 50,000 hours fail every 5 hours.
        r = mlsysim.ReliabilityModel().solve(10000, job_duration_hours=24 * 30, checkpoint_time_s=60,
                                             avg_recovery_time_s=300, gpu_mtbf_hours=50000)
        self.assertAlmostEqual(r.fleet_mtbf.to("h").magnitude, 5.0, places=9)
        self.assertAlmostEqual(r.failure_probability, 1 - math.exp(-720 / 5), places=12)
        f = mlsysim.core.formulas
        self.assertAlmostEqual(r.optimal_checkpoint_interval.to("s").magnitude,
                               f.calc_daly_interval(60, 5).to("s").magnitude, places=6)
        self.assertAlmostEqual(r.goodput_ratio, 720 / r.wall_time.to("h").magnitude, places=12)
        self.assertLess(r.goodput_ratio, 1.0)
        # A named cluster counts its GPUs; the default MTBF is Llama 3's.
        fleet = mlsysim.Systems.Clusters.Research_256
        c = mlsysim.ReliabilityModel().solve(fleet, job_duration_hours=100)
        self.assertAlmostEqual(c.fleet_mtbf_hours, 16384 * 54 * 24 / 419 / fleet.total_gpus, places=6)
        # Restarts far longer than the fleet's MTBF: the job never finishes, and says so.
        never = mlsysim.ReliabilityModel().solve(100000, job_duration_hours=100, avg_recovery_time_s=36000,
                                                 gpu_mtbf_hours=1000)
        self.assertFalse(never.finishes)
        self.assertIsNone(never.wall_time)
        # Nor failures counted over an infinite wall time (it read inf).
        self.assertIsNone(never.expected_failures)
        self.assertNotIn("inf", repr(never.to_dict()).lower())
        self.assertTrue(r.finishes)
        with self.assertRaises(ValueError):
            mlsysim.ReliabilityModel().solve(0, job_duration_hours=1)
        with self.assertRaises(ValueError):
            mlsysim.ReliabilityModel().solve(8, job_duration_hours=-1)

    def test_runtime_flags_reach_train(self):
        # Further `mlsysim train` flags pass by their Python names: the runtime's overlap of TP
        # collectives and pipeline sends only hides communication, so the step gets shorter.
        fleet = mlsysim.Systems.Clusters.Research_256
        args = dict(batch_size=512, tp_size=8, pp_size=4, gpus=64, seq_len=4096, vpp=2)
        plain = mlsysim.DistributedModel().solve(llama_8b(), fleet, **args)
        hidden = mlsysim.DistributedModel().solve(llama_8b(), fleet, tp_comm_overlap=True,
                                                  overlap_p2p_comm=True, **args)
        self.assertTrue(hidden.tp_comm_overlap and hidden.pp_comm_overlap)
        self.assertEqual(hidden.vpp, 2)
        self.assertLess(hidden.step_time_s, plain.step_time_s)
        self.assertAlmostEqual(hidden.tp_comm_total_s, plain.tp_comm_total_s, places=12)

    def test_lora_fine_tuning(self):
        # LoRA (Hu et al. 2021): rank-16 adapters on Llama-3 8B's attention linears are
        # 32 layers x 16 x ((4096 + 6144) + (4096 + 4096)) weights; the frozen base trains faster
        # and keeps no gradients or Adam states of its own, in Engine.solve and DistributedModel.
        llama = mlsysim.Models.Language.Llama3_8B
        lora = mlsysim.Engine.solve(llama, mlsysim.Hardware.Cloud.H100, phase="train", seq_len=2048,
                                    lora_rank=16)
        full = mlsysim.Engine.solve(llama, mlsysim.Hardware.Cloud.H100, phase="train", seq_len=2048,
                                    raise_errors=False)
        self.assertEqual(lora.trainable_parameters, 32 * 16 * ((4096 + 6144) + (4096 + 4096)))
        self.assertEqual(lora.to_dict()["lora_rank"], 16)
        self.assertLess(lora.latency.magnitude, full.latency.magnitude)
        self.assertLess(lora.memory_breakdown["gradients"].magnitude, 0.01 * full.memory_breakdown["gradients"].magnitude)
        with self.assertRaisesRegex(ValueError, "lora_rank"):
            mlsysim.Engine.solve(llama, mlsysim.Hardware.Cloud.H100, lora_rank=16)  # a decode step
        fleet = mlsysim.Systems.Clusters.Research_256
        args = dict(batch_size=64, tp_size=2, gpus=16, seq_len=2048)
        tuned = mlsysim.DistributedModel().solve(llama_8b(), fleet, lora_rank=16, **args)
        trained = mlsysim.DistributedModel().solve(llama_8b(), fleet, **args)
        self.assertEqual(tuned.lora_rank, 16)
        self.assertLess(tuned.step_time_s, trained.step_time_s)


class OtherSolvers(unittest.TestCase):
    def test_every_cli_solver_is_reachable(self):
        sim = mlsysim.ServingSimulator().solve(llama_8b(), mlsysim.Hardware.Cloud.H100, rate=5, requests=200, seed=1)
        self.assertEqual(sim.completed + sim.in_flight + sim.rejected, sim.arrived)
        # MLPerf Server's question from Python: the highest rate within p99 TTFT and p99 TPOT bounds.
        cap = mlsysim.ServingSimulator().solve(llama_8b(), mlsysim.Hardware.Cloud.H100, find_max_rate=True,
                                               requests=300, ttft_slo_ms=1000, itl_slo_ms=60)
        self.assertGreater(cap.failing_rate_rps, cap.max_rate_rps)
        self.assertLessEqual(cap["ttft_s"]["p99"], 1.0)
        self.assertLessEqual(cap["tpot_s"]["p99"], 0.060)
        am = mlsysim.AmdahlModel().solve(fraction=0.12, speedup=3)
        self.assertAlmostEqual(am.speedup, 1 / (0.88 + 0.04), places=9)
        col = mlsysim.CollectiveModel().solve(message_bytes=8e9, gpus=8, hardware="h100")
        self.assertGreater(col.busbw_bytes_per_s, 0)
        with self.assertRaises(ValueError):
            mlsysim.ServingModel().solve(llama_8b(), mlsysim.Hardware.Cloud.H100, seq_len=0)
        with self.assertRaises(mlsysim.OOMError):
            mlsysim.ServingModel().solve(mlsysim.Models.Language.Llama3_70B, mlsysim.Hardware.Cloud.H100,
                                         seq_len=1024, tp_size=1)
        # Every other CLI command through mlsysim.cli(): same JSON as `mlsysim <command> --format json`.
        k = mlsysim.cli("kernel", "--op", "gemm", "--hardware", "h100", "--m", "8192", "--n", "8192", "--k", "8192")
        self.assertLess(k["flops_per_s"], 989.4e12)
        v = mlsysim.cli("validate", "--category", "decode")
        # The summary scores held-out points of high or medium confidence (low ones are listed only).
        self.assertEqual(v["summary"]["by_category"]["decode"]["mlsysim"]["count"],
                         sum(1 for p in v["points"] if p["status"] == "ok" and not p["used_for_calibration"]
                             and p["confidence"] != "low"))
        opt = mlsysim.ParallelismOptimizer().solve("llama3-70b", "h100", batch_size=512, seq_len=4096, gpus=64)
        self.assertGreaterEqual(opt.searched, 10000)


if __name__ == "__main__":
    unittest.main()
