# The PyTorch CPU reference for tests/bench/mlp.ts: the train-torch-mlp steps (Adam,
# softmax cross-entropy) of the default MLP 3072-100-10 at batch 200 and of GA1
# 3072-1000-500-250-100-10 at batch 1609, and a large sgemm, timed like ours (median
# after a warm-up), with 1 and with 2 threads. Prints one JSON object per thread count.
# Run with Debian's interpreter: /usr/bin/python3 (python3-torch).
import json
import statistics
import sys
import time

import torch
import torch.nn as nn

thread_counts = [int(t) for t in (sys.argv[1] if len(sys.argv) > 1 else "1,2").split(",")]
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
torch.manual_seed(0)


def median_ms(fn, reps):
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def mlp(batch, hidden, reps):
    layers, n = [], 3072
    for h in hidden:
        layers += [nn.Linear(n, h), nn.ReLU()]
        n = h
    model = nn.Sequential(*layers, nn.Linear(n, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 3072) * 60
    y = torch.randint(0, 10, (batch,))
    lossf = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        lossf(model(x), y).backward()
        opt.step()

    return median_ms(step, reps)


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
