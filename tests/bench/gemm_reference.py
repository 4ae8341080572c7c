# The PyTorch CPU reference for tests/bench/gemm.ts: the same products (row-major
# C = op(A)·op(B), op = a transposed view where tA/tB), each timed like ours (median after a
# warm-up), with 1 and with 2 threads. argv: the thread counts ("1,2"), the repetitions, and
# the products as JSON ([{tA, tB, m, n, k}, …]). Prints one JSON object per thread count.
# Run with Debian's interpreter: /usr/bin/python3 (python3-torch).
import json
import sys

import torch

from torch_steps import median_ms

thread_counts = [int(t) for t in sys.argv[1].split(",")]
reps = int(sys.argv[2])
shapes = json.loads(sys.argv[3])
torch.manual_seed(0)

for threads in thread_counts:
    torch.set_num_threads(threads)
    ms = []
    for s in shapes:
        m, n, k = s["m"], s["n"], s["k"]
        a = torch.randn(k, m).t() if s["tA"] else torch.randn(m, k)
        b = torch.randn(n, k).t() if s["tB"] else torch.randn(k, n)
        c = torch.empty(m, n)
        ms.append(median_ms(lambda: torch.mm(a, b, out=c), reps))
    print(json.dumps({"torch": torch.__version__, "threads": threads, "ms": ms}), flush=True)
