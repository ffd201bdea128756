import time, numpy as np
import httpstan.models
from pystanmods.depmap import prepare
from pystanmods.depmap.release import read_release
from pystanmods.models.gene_effect import GeneEffect, pilot
from pystanmods.engines import get_engine
from pystanmods.engines.asyncio_compat import run_outside_loop
from pystanmods.sampling import compile_model
from pystanmods.data.stan_json import plain as _plain
rel = read_release("benchmarks/data/depmap-sample")
frame, report = prepare(rel, covariates=["copy_number"], multi_aligned="keep", verbose=False)
model = GeneEffect()
sd = model.prepare(frame, compute_log_lik=False, compute_y_rep=False)
scales, inits = pilot(sd.data); sd.data.update(scales)
engine = get_engine("pystan")
compiled = compile_model(model, "centered", engine, quiet=True)
posterior = engine._posterior(compiled.program, compiled.directory, sd.data, None)
module = run_outside_loop(httpstan.models.import_services_extension_module, posterior.model_name)
plain = _plain(sd.data)
print(module.get_param_names(plain)[:30])
print(module.get_dims(plain)[:30])
t=time.perf_counter(); x = module.transform_inits(plain, {k: (v.tolist() if hasattr(v,'tolist') else v) for k,v in inits.items()}); print("transform_inits", time.perf_counter()-t, len(x))
for f in ("log_prob", "log_prob_grad"):
    t=time.perf_counter()
    for _ in range(5): r = getattr(module, f)(plain, x, True)
    print(f, (time.perf_counter()-t)/5)
