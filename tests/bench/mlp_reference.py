# The PyTorch CPU reference for tests/bench/mlp.ts: the train-torch-mlp steps (Adam,
# softmax cross-entropy) of the default MLP 3072-100-10 at batch 200 and of GA1
# 3072-1000-500-250-100-10 at batch 1609, and a large sgemm, timed like ours (median
# after a warm-up), with 1 and with 2 threads. Prints one JSON object per thread count.
# Run with Debian's interpreter: /usr/bin/python3 (python3-torch).
import json
import sys

import torch

from torch_steps import median_ms, mlp

thread_counts = [int(t) for t in (sys.argv[1] if len(sys.argv) > 1 else "1,2").split(",")]
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
torch.manual_seed(0)


def sgemm(m=1609, n=1000, k=3072):
    a, b = torch.randn(m, k), torch.randn(k, n)
    return 2 * m * n * k / median_ms(lambda: a @ b, reps) / 1e6


for threads in thread_counts:
    torch.set_num_threads(threads)
    print(json.dumps({
        "torch": torch.__version__,
        "threads": threads,
        "sgemm_gflops": sgemm(),
        "mlp_step_ms": mlp(200, (100,), reps * 10),
        "mlp_ga1_step_ms": mlp(1609, (1000, 500, 250, 100), reps),
    }), flush=True)
