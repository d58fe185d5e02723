"""`prunelora bench`'s engine: a configuration (`config`), its runner (`runner`) and the terminal
summary (`summary`); where the cells run (`executor_config`, `executors`), the parallel pass
(`schedule`) and one cell in a worker (`cellwork`). The command itself is `prunelora.cli.bench`; the report files are written by
`prunelora.evaluation.report`."""

from prunelora.bench.config import METHOD_LABEL, BenchConfig, Scenario, split_method_key
from prunelora.bench.runner import (
           NOISE_FLOOR,
           bench,
           noise_floor_rows,
           original_checkpoint,
           run_bench,
)
from prunelora.bench.summary import print_summary

__all__ = ["METHOD_LABEL", "NOISE_FLOOR", "BenchConfig", "Scenario", "bench", "noise_floor_rows",
           "original_checkpoint", "print_summary", "run_bench", "split_method_key"]
