"""The tutorial's Part 0/1 listings, run unchanged, asserting the physics."""
import io
import unittest
from contextlib import redirect_stdout

import mlsysim


def run_listing(code: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        exec(code, {"mlsysim": mlsysim})  # noqa: S102 - the listing is the test
    return out.getvalue()


class TutorialPart1(unittest.TestCase):
    def test_answer_in_a_tenth_of_a_second(self):
        out = run_listing('''
import mlsysim
profile = mlsysim.Engine.solve(
    mlsysim.Models.Language.Llama3_8B,
    mlsysim.Hardware.Cloud.H100,
    batch_size=1,
)
print(f"Bottleneck: {profile.bottleneck}") # Memory
print(f"MFU: {profile.mfu:.3f}") # 0.003
''')
        self.assertIn("Bottleneck: Memory", out)
        mfu = float(out.split("MFU: ")[1])
        # 2 FLOPs/param/token over (latency x 989 TFLOP/s): well under 1%.
        self.assertGreater(mfu, 0.001)
        self.assertLess(mfu, 0.01)

    def test_version_and_hello_world(self):
        self.assertEqual(mlsysim.__version__, "0.1.0")
        out = run_listing('''
import mlsysim
model = mlsysim.Models.Language.Llama3_8B
hw = mlsysim.Hardware.Cloud.H100
prof = mlsysim.Engine.solve(model, hw, batch_size=1)
print(prof.bottleneck) # -> "Memory"
''')
        self.assertEqual(out.strip(), "Memory")

    def test_three_vendors_one_api(self):
        out = run_listing('''
import mlsysim
model = mlsysim.Models.Language.Llama3_8B
for hw_name in ["H100", "MI300X", "Gaudi3"]:
    hw = getattr(mlsysim.Hardware.Cloud, hw_name)
    p = mlsysim.Engine.solve(model, hw, batch_size=1)
    print(f"{hw.name}: {p.bottleneck}, "
          f"{p.latency:.2f}")
''')
        lines = out.strip().splitlines()
        self.assertEqual(len(lines), 3)
        latencies = []
        for line in lines:
            self.assertIn(": Memory, ", line)
            value, unit = line.rsplit(", ", 1)[1].split()
            self.assertEqual(unit, "ms")
            latencies.append(float(value))
        h100, mi300x, gaudi3 = latencies
        # Ranking follows bandwidth (MI300X 5.3 > Gaudi 3 3.7 > H100 3.35 TB/s), not FLOPs.
        self.assertLess(mi300x, gaudi3)
        self.assertLess(gaudi3, h100)

    def test_batch_sweep(self):
        out = run_listing('''
llama = mlsysim.Models.Language.Llama3_8B
hw = mlsysim.Hardware.Cloud.H100
for bs in [1, 4, 16, 64, 128, 256]:
    p = mlsysim.Engine.solve(llama, hw, batch_size=bs)
    print(f"bs={bs:>3d} {p.bottleneck:<8s} "
          f"MFU={p.mfu:.3f}")
''')
        mfus = [float(line.split("MFU=")[1]) for line in out.strip().splitlines()]
        self.assertEqual(len(mfus), 6)
        self.assertEqual(mfus, sorted(mfus))  # MFU climbs with batch size
        self.assertGreater(mfus[-1], 20 * mfus[0])

    def test_find_the_crossover(self):
        llama = mlsysim.Models.Language.Llama3_8B
        hw = mlsysim.Hardware.Cloud.H100
        out = run_listing('''
llama = mlsysim.Models.Language.Llama3_8B
hw = mlsysim.Hardware.Cloud.H100
for bs in range(1, 129):
    p = mlsysim.Engine.solve(llama, hw, batch_size=bs)
    if p.bottleneck == "Compute":
        print(f"Crossover at batch size {bs}")
        break
''')
        # With a 1K-token KV cache, decode never turns compute-bound below 128 (docs/PHYSICS.md).
        self.assertEqual(out, "")
        # With an empty cache the weight GEMMs flip near the achieved ridge (~258 FLOP/B).
        flips = [b for b in (64, 128, 256, 512)
                 if mlsysim.Engine.solve(llama, hw, batch_size=b, context=0).bottleneck == "Compute"]
        self.assertTrue(flips and 128 <= flips[0] <= 512, flips)

    def test_weight_load_time_and_ridge(self):
        p = mlsysim.Engine.solve(mlsysim.Models.Language.Llama3_8B, mlsysim.Hardware.Cloud.H100)
        # 8.03e9 x 2 B / 3.35 TB/s = 4.79 ms
        self.assertAlmostEqual(p.weight_load_time.m_as("ms"), 8.030261248e9 * 2 / 3.35e12 * 1e3, 9)
        self.assertAlmostEqual(mlsysim.Hardware.Cloud.H100.ridge_point().magnitude, 989.4 / 3.35, 6)
        self.assertAlmostEqual(mlsysim.Hardware.Cloud.MI300X.ridge_point().magnitude, 1307.4 / 5.3, 6)

    def test_resnet_vs_llama_regimes(self):
        resnet = mlsysim.Engine.solve(mlsysim.Models.Vision.ResNet50, mlsysim.Hardware.Cloud.H100,
                                      batch_size=256)
        llama = mlsysim.Engine.solve(mlsysim.Models.Language.Llama3_8B, mlsysim.Hardware.Cloud.H100,
                                     batch_size=1)
        self.assertGreater(resnet.arithmetic_intensity.magnitude,
                           100 * llama.arithmetic_intensity.magnitude)
        self.assertGreater(resnet.mfu, 50 * llama.mfu)


class ResultObjects(unittest.TestCase):
    def test_repr_summary_and_dict(self):
        p = mlsysim.Engine.solve(mlsysim.Models.Language.Llama3_8B, mlsysim.Hardware.Cloud.H100)
        self.assertIn("bottleneck=Memory", repr(p))
        self.assertIn("why:", p.summary())
        d = p.to_dict()
        import json
        json.dumps(d)  # plain JSON-ready values
        self.assertEqual(d["bottleneck"], "Memory")
        self.assertAlmostEqual(d["latency_s"] * 1e3, p.latency.magnitude, 12)
        self.assertTrue(d["feasible"])

    def test_registries(self):
        self.assertEqual(mlsysim.Models.Language.Llama3_70B.id, "llama3-70b")
        self.assertEqual(mlsysim.Hardware.Cloud.A100.id, "a100-80gb")
        self.assertEqual(mlsysim.Hardware.Cloud.B200.id, "b200")
        self.assertIn("Llama3_8B", dir(mlsysim.Models.Language))
        self.assertIn("H100", dir(mlsysim.Hardware.Cloud))
        with self.assertRaises(AttributeError) as ctx:
            _ = mlsysim.Models.Language.Llama3_8
        self.assertIn("did you mean", str(ctx.exception))
        # Every catalog entry is reachable.
        self.assertGreaterEqual(len(mlsysim.Models.list()), 30)
        self.assertGreaterEqual(len(mlsysim.Hardware.list()), 35)


if __name__ == "__main__":
    unittest.main()
