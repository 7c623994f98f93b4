"""Throughput of data parallel vs module parallel training with 1, 2, 4 processes.

    python benchmarks/bench_distributed.py --out benchmarks/results/distributed_cpu.csv
    python benchmarks/bench_distributed.py --backend nccl --device cuda --nprocs 1 2 4 8 --batch-size 1024

The measurement lives in mi_analysis.training.distributed.benchmark (its processes must import it by
name); see that module for what is timed.
"""
import sys

from mi_analysis.training.distributed.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
