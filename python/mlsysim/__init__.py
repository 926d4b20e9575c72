"""mlsysim: first-principles ML systems modeling, on a C++ engine.

    import mlsysim
    p = mlsysim.Engine.solve(mlsysim.Models.Language.Llama3_8B, mlsysim.Hardware.Cloud.H100, batch_size=1)
    print(p.bottleneck, p.latency, p.mfu)
"""
from . import _core
from . import core  # noqa: F401  (mlsysim.core.formulas)
from .engine import Engine, OOMError, PerformanceProfile
from .registry import Hardware, HardwareNode, Model, Models
from .solvers import (AmdahlModel, CollectiveModel, CompressionModel, ContinuousBatchingModel,
                      DistributedModel, ParallelismOptimizer, ReliabilityModel, ServingModel,
                      ServingSimulator, SolverResult, cli)
from .systems import Cluster, Systems
from .units import DimensionalityError, Q_, Quantity

__version__ = "0.1.0"

__all__ = ["Engine", "PerformanceProfile", "OOMError", "Models", "Hardware", "Model",
           "HardwareNode", "Systems", "Cluster", "ServingModel", "ContinuousBatchingModel",
           "CompressionModel", "DistributedModel", "ServingSimulator", "ParallelismOptimizer",
           "AmdahlModel", "CollectiveModel", "ReliabilityModel", "SolverResult", "cli", "Quantity", "Q_",
           "DimensionalityError", "core", "__version__"]
