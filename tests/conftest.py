"""Test-session settings shared by every test file.

The tests run tiny models and tensors. With several intra-op threads, the OpenMP barriers of such
small operations dominate (on a busy 2-core machine the same test ran 5-30x slower with two
threads than with one), and one thread also makes every sum run in one fixed order. So the whole
session runs torch on one thread; benchmarks, not tests, measure multi-threaded speed.
"""

import torch

torch.set_num_threads(1)
