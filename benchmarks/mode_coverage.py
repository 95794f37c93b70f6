"""Mode coverage on PacGAN's 2-D mixtures: modes, high-quality samples and reverse KL over seeds.

python benchmarks/mode_coverage.py [--only ring8,grid25] [--seeds 10] [--methods GAN,PacGAN4]
       [--steps N] [--out benchmarks/results/mode_coverage]

For each mixture (configs/ring8.py, configs/grid25.py) and each method, trains --seeds runs AT ONCE
(`jax.vmap` of train.py's own step over the seed: run s is exactly `python train.py --config
configs/NAME.py --config.seed=s` plus the method's keys), then draws 2,500 samples from each run's
EMA generator (what `sample.py --num 2500 --out x.npy` writes) and scores them with the PacGAN
protocol (jaxgan.mixtures.evaluate). Prints a markdown table, mean ± standard error over seeds,
beside the published rows, and writes to --out: table.md, results.json (every seed's numbers) and
NAME_METHOD.png (seed 0's samples over the modes).
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from configs import grid25, ring8  # noqa: E402
from jaxgan import mixtures, sampling, train  # noqa: E402

CONFIGS = {"ring8": ring8, "grid25": grid25}
# Method -> config keys over configs/NAME.py. PacGAN packs m samples per D input and keeps the number
# of packs per batch (100), so its batch holds m times as many samples (Lin et al. 2018, their code).
METHODS = {
    "GAN": {},
    "PacGAN2": {"model.d_pack": 2, "batch_size": 200},
    "PacGAN4": {"model.d_pack": 4, "batch_size": 400},
    "GAN + mbstd": {"model.d_mbstd_group": 4},
}
# PacGAN (Lin et al. 2018) Table 1: modes mean ± SE, high-quality %, reverse KL; 10 trials.
PUBLISHED = {
    "ring8": [("GAN", 6.3, 0.5, 98.2, 0.45), ("ALI", 6.6, 0.3, 97.6, 0.36), ("PacGAN2", 7.9, 0.1, 95.6, 0.07),
              ("PacGAN3", 7.8, 0.1, 97.7, 0.10), ("PacGAN4", 7.8, 0.1, 95.9, 0.07)],
    "grid25": [("GAN", 17.3, 0.8, 94.8, 0.70), ("ALI", 24.1, 0.4, 95.7, 0.14), ("PacGAN2", 23.8, 0.7, 91.3, 0.13),
               ("PacGAN3", 24.6, 0.4, 94.2, 0.06), ("PacGAN4", 24.8, 0.2, 93.6, 0.04)],
}
EVAL_SAMPLES = 2500


def method_config(mixture: str, method: str, steps: int | None):
    config = CONFIGS[mixture].get_config()
    for key, value in METHODS[method].items():
        *parents, leaf = key.split(".")
        node = config
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    if steps:
        config.steps = steps
    train.validate(config)
    return config


def train_seeds(config, seeds: list[int]) -> np.ndarray:
    """Trains one run per seed, all at once; returns each run's EMA samples float32 [S, 2500, 2]."""
    generator, discriminator = train.build_models(config, (2,), 0)
    seed_array = jnp.asarray(seeds, jnp.int32)
    states = jax.jit(jax.vmap(lambda seed: train.init_state(config, generator, discriminator, (2,), seed)))(
        seed_array)
    step = jax.jit(jax.vmap(train.make_step(config, generator, discriminator)), donate_argnums=0)
    rows = config.batch_size * config.optim.n_dis
    for s in range(config.steps):
        # The batch each run's pipeline (jaxgan.data.MixturePipeline) gives it at step s.
        batch = np.stack([mixtures.draw(config.data.name, rows, seed, s) for seed in seeds])
        states, _ = step(states, {"image": batch, "label": np.zeros((len(seeds), rows), np.int32)}, seed_array)
    generate = jax.vmap(train.make_generate(generator), in_axes=(0, 0, None, None))
    z = sampling.latents(0, EVAL_SAMPLES, config.model.latent_dim)  # sample.py's --seed 0
    return np.asarray(generate(states.ema_params, states.g_batch_stats, z, None))


def mean_and_standard_error(values) -> tuple[float, float]:
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="ring8,grid25", help="comma-separated mixtures")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    parser.add_argument("--seeds", type=int, default=10, help="runs per method: seeds 0 .. N-1")
    parser.add_argument("--steps", type=int, default=None, help="default: the config's")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "mode_coverage"))
    args = parser.parse_args()
    mixture_names, method_names = args.only.split(","), args.methods.split(",")
    for name in mixture_names:
        if name not in CONFIGS:
            sys.exit(f"mode_coverage.py: error: --only {name}: choose from {', '.join(CONFIGS)}")
    for name in method_names:
        if name not in METHODS:
            sys.exit(f"mode_coverage.py: error: --methods {name}: choose from {', '.join(METHODS)}")
    os.makedirs(args.out, exist_ok=True)
    seeds = list(range(args.seeds))
    results, lines = [], []
    start = time.perf_counter()
    for mixture in mixture_names:
        num_modes = len(mixtures.MIXTURES[mixture].centres)
        lines += [f"### {mixture} ({num_modes} modes), {args.seeds} seeds, {EVAL_SAMPLES} samples each", "",
                  "| method | steps | modes (mean ± SE) | all modes in | high quality % | reverse KL | train s |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for method in method_names:
            config = method_config(mixture, method, args.steps)
            method_start = time.perf_counter()
            samples = train_seeds(config, seeds)
            seconds = time.perf_counter() - method_start
            scores = [mixtures.evaluate(s, mixture) for s in samples]
            modes, modes_se = mean_and_standard_error([s["modes"] for s in scores])
            quality, _ = mean_and_standard_error([100 * s["high_quality"] for s in scores])
            kl, _ = mean_and_standard_error([s["reverse_kl"] for s in scores])
            full = sum(s["modes"] == num_modes for s in scores)
            lines.append(f"| jaxgan {method} | {config.steps} | {modes:.1f} ± {modes_se:.1f} | {full}/{len(seeds)} "
                         f"| {quality:.1f} | {kl:.3f} | {seconds:.0f} |")
            print(lines[-1], flush=True)
            mixtures.plot(samples[0], mixture, os.path.join(args.out, f"{mixture}_{method.replace(' ', '')}.png"),
                          title=f"{mixture} {method} seed 0: {scores[0]['modes']} modes")
            results.append({"mixture": mixture, "method": method, "config": dict(METHODS[method], steps=config.steps),
                            "seeds": seeds, "scores": scores, "train_seconds": seconds})
        lines += [f"| PacGAN paper {name} | 400k | {m} ± {se} | | {q} | {kl} | |"
                  for name, m, se, q, kl in PUBLISHED[mixture]] + [""]
    total = time.perf_counter() - start
    lines.append(f"Whole benchmark: {total:.0f} s on {jax.device_count()} {jax.devices()[0].device_kind}.")
    table = "\n".join(lines)
    print("\n" + table)
    sampling.write_atomically(os.path.join(args.out, "table.md"), lambda f: f.write(table.encode() + b"\n"))
    sampling.write_atomically(os.path.join(args.out, "results.json"),
                              lambda f: f.write(json.dumps({"results": results, "total_seconds": total},
                                                           indent=1).encode()))


if __name__ == "__main__":
    main()
