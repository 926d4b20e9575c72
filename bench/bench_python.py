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
