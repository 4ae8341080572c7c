# What both PyTorch references time: a step of the autograd MLP (Adam, softmax cross-entropy),
# as the median of a few runs after a warm-up. Imported by cnn_reference.py and mlp_reference.py.
import statistics
import time

import torch
import torch.nn as nn


def median_ms(fn, reps):
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def mlp(batch, hidden, reps, lr=1e-4):
    layers, n = [], 3072
    for h in hidden:
        layers += [nn.Linear(n, h), nn.ReLU()]
        n = h
    model = nn.Sequential(*layers, nn.Linear(n, 10))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x = torch.randn(batch, 3072) * 60
    y = torch.randint(0, 10, (batch,))
    lossf = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        lossf(model(x), y).backward()
        opt.step()

    return median_ms(step, reps)
