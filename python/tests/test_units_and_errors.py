"""Quantities carry units; errors become Python exceptions with the CLI's messages."""
import unittest

import mlsysim
from mlsysim import Quantity


class Quantities(unittest.TestCase):
    def test_conversion_and_formatting(self):
        t = mlsysim.core.formulas.calc_ring_allreduce_time(
            message_bytes=16e9, n_gpus=8, bandwidth_bytes_s=900e9, latency_s=500e-9)
        # 2 x 7/8 x 16e9 / 900e9 + 14 x 500 ns
        self.assertAlmostEqual(t.to("ms").magnitude, (2 * 7 / 8 * 16e9 / 900e9 + 14 * 500e-9) * 1e3, 9)
        self.assertEqual(f"{t.to('ms'):.1f}", "31.1 ms")
        self.assertEqual(f"{Quantity(4.8, 'ms'):~P}", "4.8 ms")
        self.assertEqual(f"{Quantity(2.5, 'GB'):.2f}", "2.50 GB")
        self.assertEqual(Quantity(1, "GiB").to("B").magnitude, 2**30)
        self.assertNotEqual(Quantity(80, "GB"), Quantity(80, "GiB"))

    def test_device_prices_are_dollar_quantities(self):
        # The H100's rental is AWS p5.48xlarge on-demand, $55.04/h over its 8 GPUs (catalog).
        h100 = mlsysim.Hardware.Cloud.H100
        self.assertAlmostEqual(h100.rental_cost.to("USD/h").magnitude, 55.04 / 8)
        self.assertIsNone(mlsysim.Hardware.get("rtx-4090").rental_cost)

    def test_arithmetic(self):
        self.assertEqual(Quantity(1, "s") + Quantity(500, "ms"), Quantity(1.5, "s"))
        self.assertTrue(Quantity(1, "ms") < Quantity(1, "s"))
        rate = Quantity(16, "GB") / Quantity(4, "s")
        self.assertEqual(rate.units, "B/s")
        self.assertAlmostEqual(rate.to("GB/s").magnitude, 4.0)
        t = Quantity(16, "GB") / Quantity(3.35, "TB/s")
        self.assertAlmostEqual(t.to("ms").magnitude, 16 / 3350 * 1e3)
        self.assertAlmostEqual((Quantity(2, "ms") * 3).magnitude, 6)

    def test_incompatible_units_fail_clearly(self):
        with self.assertRaises(mlsysim.DimensionalityError) as ctx:
            Quantity(1, "ms") + Quantity(1, "GB")
        self.assertIn("incompatible dimensions", str(ctx.exception))
        with self.assertRaises(mlsysim.DimensionalityError):
            Quantity(1, "ms").to("GB")
        with self.assertRaises(mlsysim.DimensionalityError):
            Quantity(1, "ms") < Quantity(1, "W")


class Errors(unittest.TestCase):
    def solve_error(self, model=None, **arguments) -> str:
        """The ValueError message of Engine.solve on `model` (Llama-3 8B) and H100."""
        model = model or mlsysim.Models.Language.Llama3_8B
        with self.assertRaises(ValueError) as ctx:
            mlsysim.Engine.solve(model, mlsysim.Hardware.Cloud.H100, **arguments)
        return str(ctx.exception)

    def test_bad_input_is_value_error(self):
        msg = self.solve_error(batch_size=0)
        self.assertIn("must be in [1,", msg)
        # Named as the Python argument, not as the CLI flag the engine's message uses.
        self.assertIn("batch_size must be", msg)
        self.assertNotIn("--", msg)
        self.assertIn("lower seq_len/context", self.solve_error(phase="prefill", seq_len=100000))
        self.solve_error(precision="fp6")
        self.solve_error(efficiency=1.5)
        self.solve_error(mlsysim.Models.Vision.ResNet50, phase="decode")
        with self.assertRaises(ValueError):
            mlsysim.core.formulas.calc_ring_allreduce_time(1e9, 0, 100e9)
        # Counts wider than the engine's 32-bit ones still get a range message, not a TypeError.
        self.assertIn("batch_size must be within [1, 1048576]", self.solve_error(batch_size=10**12))
        self.assertIn("seq_len must be within", self.solve_error(phase="prefill", seq_len=-(10**12)))

    def test_wrong_types_name_the_argument(self):
        # They used to reach the binding and come back as its signature dump (a TypeError).
        self.assertEqual(self.solve_error(attention=None), "attention must be a string, got None")
        self.assertEqual(self.solve_error(kv_precision=8), "kv_precision must be a string or None, got 8")
        self.assertEqual(self.solve_error(context=1.5), "context must be an integer or None, got 1.5")
        self.assertEqual(self.solve_error(seq_len="8"), "seq_len must be an integer or None, got '8'")
        self.assertEqual(self.solve_error(efficiency=True), "efficiency must be a number or None, got True")
        # The right types still solve; an int efficiency is a number.
        self.assertTrue(mlsysim.Engine.solve(mlsysim.Models.Language.Llama3_8B, mlsysim.Hardware.Cloud.H100,
                                             efficiency=1).feasible)

    def test_arguments_the_step_does_not_use_are_refused(self):
        llama, h100 = mlsysim.Models.Language.Llama3_8B, mlsysim.Hardware.Cloud.H100
        # Decode is an LLM's default step: one new token per sequence; the history is `context`.
        msg = self.solve_error(seq_len=4096)
        self.assertIn("seq_len does not apply to a decode step", msg)
        self.assertIn("context 4096", msg)
        self.assertNotIn("--", msg)
        self.assertIn("context (tokens already in the KV cache) does not apply",
                      self.solve_error(is_training=True, seq_len=1024, context=1024))
        with self.assertRaises(ValueError):
            mlsysim.Engine.solve(mlsysim.Models.Vision.ResNet50, h100, seq_len=128)
        # Where they apply, both are taken: a longer history makes a decode step slower.
        short = mlsysim.Engine.solve(llama, h100, batch_size=8, context=512).latency
        long = mlsysim.Engine.solve(llama, h100, batch_size=8, context=8000).latency
        self.assertGreater(long, short)

    def test_contradictory_or_unset_looking_arguments_are_refused(self):
        llama, h100 = mlsysim.Models.Language.Llama3_8B, mlsysim.Hardware.Cloud.H100
        with self.assertRaises(ValueError):  # 0 would read as "no textbook efficiency"
            mlsysim.Engine.solve(llama, h100, efficiency=0)
        with self.assertRaises(ValueError):
            mlsysim.Engine.solve(llama, h100, phase="decode", is_training=True)
        # to_dict carries what the CLI's JSON does, fallbacks included.
        d = mlsysim.Engine.solve(llama, h100, precision="int4").to_dict()
        self.assertTrue(d["precision_fallback"])
        self.assertEqual(d["compute_precision"], "bf16")
        for key in ("kv_precision", "runtime", "fusion", "attention", "model_type"):
            self.assertIn(key, d)

    def test_vendor_and_hugging_face_names_resolve(self):
        self.assertEqual(mlsysim.Models.get("meta-llama/Llama-3.1-8B-Instruct").id, "llama3.1-8b")
        self.assertEqual(mlsysim.Hardware.get("NVIDIA H100 SXM5 80GB").id, "h100")
        with self.assertRaises(AttributeError) as ctx:
            mlsysim.Models.get("meta-llama/Llama-3.1-405B-FP8-Instruct")
        self.assertIn("did you mean", str(ctx.exception))
        # An unknown name is a ValueError too, like every other bad argument to a solver.
        with self.assertRaises(ValueError):
            mlsysim.Engine.solve("no-such-model", mlsysim.Hardware.Cloud.H100)
        with self.assertRaises(ValueError):
            mlsysim.Models.get(None)
        # Attribute names keep size suffixes upper case, an MoE's active-parameter one included.
        self.assertEqual(mlsysim.Models.Language.Qwen3_30B_A3B.id, "qwen3-30b-a3b")
        self.assertEqual(mlsysim.Models.get("Qwen/Qwen3-8B").id, "qwen3-8b")

    def test_solver_class_errors_name_their_python_arguments(self):
        # The solver classes run CLI commands; their errors used to name the flags (--gpus, --max-batch)
        # and point at `mlsysim train --help`.
        with self.assertRaises(ValueError) as ctx:
            mlsysim.DistributedModel().solve("llama3-8b", "research-256", batch_size=256, gpus=2.0)
        self.assertEqual(str(ctx.exception), "gpus takes a whole number, at most 2147483647, got '2.0'")
        with self.assertRaises(ValueError) as ctx:
            mlsysim.ContinuousBatchingModel().solve("llama3-8b", "h100", seq_len=4096, max_batch_size=0)
        self.assertIn("max_batch_size must be in [1,", str(ctx.exception))
        self.assertNotIn("--", str(ctx.exception))
        # mlsysim.cli() itself stays in CLI terms: its caller wrote the flags.
        with self.assertRaises(ValueError) as ctx:
            mlsysim.cli("serve", "--model", "llama3-8b", "--hardware", "h100", "--seq-len", "4096", "--max-batch", "0")
        self.assertIn("--max-batch must be in [1,", str(ctx.exception))

    def test_model_size_uses_every_precision_the_engine_knows(self):
        llama = mlsysim.Models.get("llama3-8b")
        params = llama.parameters
        # 0.5 B per fp4 weight: fp4 was refused by a copy of the widths that lacked it.
        self.assertAlmostEqual(llama.size_in_bytes("fp4").magnitude, params * 0.5 / 1e9, places=6)
        self.assertAlmostEqual(llama.size_in_bytes("bf16").magnitude, params * 2 / 1e9, places=6)
        with self.assertRaises(ValueError) as ctx:
            llama.size_in_bytes("fp6")
        self.assertIn("is not one of", str(ctx.exception))

    def test_does_not_fit_is_oom_error(self):
        with self.assertRaises(mlsysim.OOMError) as ctx:
            mlsysim.Engine.solve(mlsysim.Models.Language.Llama3_70B, mlsysim.Hardware.Cloud.H100)
        msg = str(ctx.exception)
        self.assertIn("h100 has 85.0 GB usable (80.0 GB on the datasheet)", msg)
        self.assertIn("tp_size >= 2", msg)
        self.assertIn("or use precision fp8", msg)  # the remedy as an argument, not as --precision
        self.assertNotIn("--", msg)
        self.assertAlmostEqual(ctx.exception.required_bytes / 1e9, 141.4, delta=0.5)
        p = mlsysim.Engine.solve(mlsysim.Models.Language.Llama3_70B, mlsysim.Hardware.Cloud.H100,
                                 raise_errors=False)
        self.assertFalse(p.feasible)


class Sweep(unittest.TestCase):
    def test_sweep_matches_single_solves(self):
        llama = mlsysim.Models.Language.Llama3_8B
        rows = mlsysim.Engine.sweep(llama, [mlsysim.Hardware.Cloud.H100, mlsysim.Hardware.Cloud.MI300X],
                                    batch_sizes=[1, 16], contexts=[1024])
        self.assertEqual(len(rows), 4)
        for row in rows:
            single = mlsysim.Engine.solve(llama, row["hardware"], batch_size=row["batch_size"], context=1024)
            self.assertAlmostEqual(row["latency_s"] * 1e3, single.latency.magnitude, 9)


class QuantizedHead(unittest.TestCase):
    def test_quantized_models_keep_a_sixteen_bit_head_unless_told(self):
        m, h = mlsysim.Models.Language.Llama3_8B, mlsysim.Hardware.Cloud.H100
        kept = mlsysim.Engine.solve(m, h, batch_size=1, precision="fp8")
        quantized = mlsysim.Engine.solve(m, h, batch_size=1, precision="fp8", quantize_head=True)
        self.assertEqual((kept.head_precision, kept.embedding_precision), ("bf16", "bf16"))
        self.assertEqual((quantized.head_precision, quantized.embedding_precision), ("fp8", "bf16"))
        # The 128256 x 4096 head at 2 B instead of 1 B: exactly that many more bytes stored.
        extra = kept.memory_footprint.to("B").magnitude - quantized.memory_footprint.to("B").magnitude
        self.assertAlmostEqual(extra, 128256 * 4096, delta=1.0)
        self.assertGreater(kept.latency.to("ms").magnitude, quantized.latency.to("ms").magnitude)


class WeightOnlyQuantization(unittest.TestCase):
    def test_int4_weights_with_sixteen_bit_math_from_python(self):
        # AWQ/GPTQ-style: weights read at 4 bits, multiplied in bf16. On an A100 (INT4 tensor cores)
        # a compute-bound prefill is slower at 16-bit math than at int4 math, and stores the same
        # weights; the serving model passes the argument through to the same engine.
        m, h = mlsysim.Models.Language.Llama3_8B, mlsysim.Hardware.Cloud.A100
        int4_math = mlsysim.Engine.solve(m, h, batch_size=8, phase="prefill", seq_len=1024, precision="int4")
        weight_only = mlsysim.Engine.solve(m, h, batch_size=8, phase="prefill", seq_len=1024, precision="int4",
                                           compute_precision="bf16")
        self.assertEqual((weight_only.compute_precision, int4_math.compute_precision), ("bf16", "int4"))
        self.assertEqual(weight_only.to_dict()["memory"]["weights_bytes"],
                         int4_math.to_dict()["memory"]["weights_bytes"])
        self.assertGreater(weight_only.latency.to("ms").magnitude, int4_math.latency.to("ms").magnitude)
        served = mlsysim.ServingModel().solve(m, h, seq_len=1024, batch_size=8, precision="int4",
                                              compute_precision="bf16")
        served_int4 = mlsysim.ServingModel().solve(m, h, seq_len=1024, batch_size=8, precision="int4")
        self.assertGreater(served.ttft.to("s").magnitude, served_int4.ttft.to("s").magnitude)
        with self.assertRaisesRegex(ValueError, "compute_precision"):
            mlsysim.Engine.solve(m, h, precision="int4", compute_precision="int3")


class ActivationScaling(unittest.TestCase):
    def test_dynamic_scales_add_a_quantize_kernel_per_gemm_input(self):
        # Llama-3 8B FP8 decode: 4 inputs per layer x 32 layers = 128 more kernels, a slower step.
        m, h = mlsysim.Models.Language.Llama3_8B, mlsysim.Hardware.Cloud.H100
        fixed = mlsysim.Engine.solve(m, h, precision="fp8")
        dynamic = mlsysim.Engine.solve(m, h, precision="fp8", activation_scaling="dynamic")
        self.assertEqual((fixed.activation_scaling, dynamic.activation_scaling), ("static", "dynamic"))
        self.assertEqual(dynamic._p.kernels - fixed._p.kernels, 128)
        self.assertGreater(dynamic.latency.to("ms").magnitude, fixed.latency.to("ms").magnitude)
        with self.assertRaisesRegex(ValueError, "activation_scaling"):
            mlsysim.Engine.solve(m, h, activation_scaling="dynamic")  # bf16 math has no scales


class EngineIteration(unittest.TestCase):
    def test_serving_adds_the_runtimes_host_work_per_iteration(self):
        # 20 framework calls at the H100's calibrated eager dispatch (25.03 us) per decode step;
        # step_host_us=0 leaves the forward pass alone, which is what Engine.solve times.
        m, h = mlsysim.Models.Language.Llama3_8B, mlsysim.Hardware.Cloud.H100
        default = mlsysim.ServingModel().solve(m, h, seq_len=1024, batch_size=1, output_len=2)
        bare = mlsysim.ServingModel().solve(m, h, seq_len=1024, batch_size=1, output_len=2, step_host_us=0)
        self.assertAlmostEqual(default.itl.to("s").magnitude - bare.itl.to("s").magnitude, 20 * 25.03e-6, delta=1e-9)
        step = mlsysim.Engine.solve(m, h, batch_size=1, context=1024)
        self.assertAlmostEqual(bare.itl.to("ms").magnitude, step.latency.to("ms").magnitude, 9)
        with self.assertRaisesRegex(ValueError, "step_host_us"):
            mlsysim.ServingModel().solve(m, h, seq_len=1024, step_host_us=-1)


class RuntimeAndFusion(unittest.TestCase):
    def test_eager_defaults_to_unfused_and_costs_more(self):
        m, h = mlsysim.Models.Language.Llama3_8B, mlsysim.Hardware.Cloud.H100
        graph = mlsysim.Engine.solve(m, h, batch_size=1)
        eager = mlsysim.Engine.solve(m, h, batch_size=1, runtime="eager")
        self.assertEqual((graph.runtime, graph.fusion), ("graph", "fused"))
        self.assertEqual((eager.runtime, eager.fusion), ("eager", "unfused"))
        self.assertGreater(eager.latency.to("ms").magnitude, graph.latency.to("ms").magnitude)
        unfused_graph = mlsysim.Engine.solve(m, h, batch_size=1, fusion="unfused")
        self.assertGreater(unfused_graph.latency.to("ms").magnitude, graph.latency.to("ms").magnitude)
        hf = mlsysim.Engine.solve(m, h, batch_size=1, runtime="eager", fusion="hf")
        self.assertEqual(hf.fusion, "hf")
        # Attention with the scores in memory: more traffic, never faster; bad names say the choices.
        flash = mlsysim.Engine.solve(m, h, batch_size=1, phase="prefill", seq_len=4096)
        mat = mlsysim.Engine.solve(m, h, batch_size=1, phase="prefill", seq_len=4096,
                                   attention="materialized")
        self.assertEqual((flash.attention, mat.attention), ("flash", "materialized"))
        self.assertGreater(mat.latency.to("ms").magnitude, flash.latency.to("ms").magnitude)
        with self.assertRaisesRegex(ValueError, "flash|materialized|fa2"):
            mlsysim.Engine.solve(m, h, batch_size=1, attention="naive")
        # FlashAttention-2 on H100: its mma.sync matmuls and un-overlapped softmax are slower than the
        # calibrated fused kernel, so a long prefill takes longer.
        fa2 = mlsysim.Engine.solve(m, h, batch_size=1, phase="prefill", seq_len=4096, attention="fa2")
        self.assertEqual(fa2.attention, "fa2")
        self.assertGreater(fa2.latency.to("ms").magnitude, flash.latency.to("ms").magnitude)
        self.assertGreater(hf.latency.to("ms").magnitude, eager.latency.to("ms").magnitude)
        with self.assertRaises(ValueError):
            mlsysim.Engine.solve(m, h, batch_size=1, fusion="partly")


class Readme(unittest.TestCase):
    def test_python_example_prints_what_its_comments_say(self):
        # The README's Python block, run as written: each print's output is the comment beside it.
        import contextlib
        import io
        import pathlib
        text = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
        block = text.split("```python\n", 1)[1].split("```", 1)[0]
        expected = [line.split("#", 1)[1].strip() for line in block.splitlines()
                    if line.startswith("print(") and "#" in line]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, "README.md", "exec"), {})
        self.assertEqual(out.getvalue().splitlines(), expected)


if __name__ == "__main__":
    unittest.main()
