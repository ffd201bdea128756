"""Seconds per call of the compiled module's log_prob and log_prob_grad on the whole sample."""

import time

from common import density

module, data, x0, layout, _ = density()
x = list(x0)
print("unconstrained parameters", len(x))
for name in ("log_prob", "log_prob_grad"):
    start = time.perf_counter()
    for _ in range(5):
        getattr(module, name)(data, x, True)
    print(name, (time.perf_counter() - start) / 5)
