"""L-BFGS-B toward the joint mode of the centered program on the first 25 genes (all 41 lines)."""

import time

import numpy as np
import scipy.optimize as so

from common import density

module, data, x0, layout, _ = density(25)
print("unconstrained parameters", len(x0))


def negative(x: np.ndarray) -> tuple[float, np.ndarray]:
    values = list(x)
    return -module.log_prob(data, values, True), -np.asarray(module.log_prob_grad(data, values, True))


start = time.perf_counter()
result = so.minimize(negative, x0, jac=True, method="L-BFGS-B",
                     options={"maxiter": 5000, "maxcor": 20, "gtol": 1e-7, "ftol": 1e-13})
print("iterations", result.nit, "calls", result.nfev, "seconds", time.perf_counter() - start, result.message)
