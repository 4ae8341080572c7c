# The PyTorch CPU reference for tests/bench/cnn.ts: the same steps as ours,
# timed the same way (median of a few runs after a warm-up), with 1 and with 2
# threads (on a busy 2-core machine OpenMP's 2 threads can be much slower than
# 1). Prints one JSON object per thread count.
# Run with Debian's interpreter: /usr/bin/python3 (python3-torch).
import json
import sys

import torch
import torch.nn as nn

from torch_steps import median_ms, mlp

thread_counts = [int(t) for t in (sys.argv[1] if len(sys.argv) > 1 else "1,2").split(",")]
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
torch.manual_seed(0)


def vgg():
    layers, c = [], 3
    for out, n in [(64, 1), (128, 1), (256, 2), (512, 2), (512, 2)]:
        for _ in range(n):
            layers += [nn.Conv2d(c, out, 3, 1, 1), nn.BatchNorm2d(out), nn.ReLU()]
            c = out
        layers.append(nn.MaxPool2d(3, 2, 1))
    layers += [nn.AvgPool2d(1, 1, 0), nn.Flatten(), nn.Linear(512, 10)]
    return nn.Sequential(*layers)


def cnn(batch=32, eval_batch=200):
    model = vgg()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, 32, 32) * 60
    y = torch.randint(0, 10, (batch,))
    lossf = nn.CrossEntropyLoss()

    def step():
        model.train()
        opt.zero_grad()
        loss = lossf(model(x), y)
        loss.backward()
        opt.step()

    xe = torch.randn(eval_batch, 3, 32, 32) * 60

    def evaluate():
        model.eval()
        with torch.no_grad():
            model(xe).argmax(1)

    return median_ms(step, reps), median_ms(evaluate, max(2, reps // 2))


def sgemm(n=1024):
    a, b = torch.randn(n, n), torch.randn(n, n)
    ms = median_ms(lambda: a @ b, reps)
    return 2 * n**3 / ms / 1e6


for threads in thread_counts:
    torch.set_num_threads(threads)
    cnn_step, cnn_eval = cnn()
    print(json.dumps({
        "torch": torch.__version__,
        "threads": threads,
        "mkldnn": torch.backends.mkldnn.is_available(),
        "sgemm_1024_gflops": sgemm(),
        "cnn_step_ms": cnn_step,
        "cnn_eval_images_per_s": 200 / (cnn_eval / 1000),
        "mlp_step_ms": mlp(200, (100,), reps * 20, lr=2e-3),
        "mlp_ga1_step_ms": mlp(1609, (1000, 500, 250, 100), reps),
    }), flush=True)
