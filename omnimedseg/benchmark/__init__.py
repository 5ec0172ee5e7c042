"""Interactive benchmarks: model x datasets x robot users x metrics (docs/benchmark.md)."""

from omnimedseg.benchmark.models import InteractiveModel, available_models, get_model
from omnimedseg.benchmark.runner import run_benchmark
from omnimedseg.benchmark.suite import Suite

__all__ = ["InteractiveModel", "available_models", "get_model", "run_benchmark", "Suite"]
