"""Python API speed (a benchmark, not a test): microseconds per Engine.solve call.

    PYTHONPATH=build/python python3 bench/bench_python.py
"""
import time

import mlsysim


def per_call(fn, n=20000):
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


if __name__ == "__main__":
    llama, h100 = mlsysim.Models.Language.Llama3_8B, mlsysim.Hardware.Cloud.H100
    t = per_call(lambda: mlsysim.Engine.solve(llama, h100, batch_size=1))
    print(f"Engine.solve (Llama-3 8B decode on H100): {t * 1e6:.2f} us per call")
    t = per_call(lambda: mlsysim.Engine.solve(llama, h100, batch_size=1).latency.to("ms"))
    print(f"  + reading .latency as a Quantity:        {t * 1e6:.2f} us per call")
    serving = mlsysim.ServingModel()
    t = per_call(lambda: serving.solve(llama, h100, seq_len=4096), n=2000)
    print(f"ServingModel.solve (via the in-process CLI):   {t * 1e6:.1f} us per call")
    dist = mlsysim.DistributedModel()
    fleet = mlsysim.Systems.Clusters.Research_256
    t = per_call(lambda: dist.solve(llama, fleet, batch_size=512, tp_size=8, seq_len=4096), n=500)
    print(f"DistributedModel.solve:                       {t * 1e6:.1f} us per call")
