"""Does training seeds at once pay? Seed-steps per second of one seed's step and of S seeds' at once.

python benchmarks/seeds_at_once.py [--only grid25,stacked_mnist] [--methods GAN,PacGAN2] [--seeds N]
       [--calls 20] [--chunk K] [--json out.json]

benchmarks/mode_coverage.py trains a method's S seeds at once, in one of two ways
(`mode_coverage.make_seeds_step`): `jax.vmap` of train.py's step over the seed, or the S seeds'
steps side by side in one program (conv nets on a CPU: `mode_coverage.seeds_side_by_side`); then
one call per step, else CHUNK_STEPS steps per call in one compiled `lax.scan`. For
each benchmark config and method this times, after compiling, on the seeds' own first batches
already on the device:

  1 seed                       train.py's step for one seed, one call per step
  S seeds vmapped              one call per step
  S seeds side by side         one call per step
  ..., K per call              K = --chunk steps in one `lax.scan` (default 10, 0: not timed; 0 for
                               conv nets on a CPU, which mode_coverage.py does not scan: XLA:CPU
                               runs the DCGAN many times slower inside a compiled loop)

each the median of --calls calls (--calls / K calls of K steps for the scans), each waited for, and the S seeds'
input pipelines alone: the host time of one step's S batches (mode_coverage.py's reads: stacked K steps at a
time where it scans), the mean over --calls x 5 steps. "seed-steps/s" counts S per step of S seeds;
"x 1 seed" above 1 is where training the seeds at once pays. --seeds: default 10 for 2-D, 5 for
Stacked MNIST, as mode_coverage.py.
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax
import jax.numpy as jnp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import mode_coverage  # noqa: E402  (puts ROOT on the path for jaxgan)
from jaxgan import data, train  # noqa: E402
from jaxgan.errors import UserError  # noqa: E402


def median_call_seconds(function, state, inputs, calls: int) -> float:
    """Median seconds of `calls` calls of `state = function(state, inputs)`, each waited for, after
    one call that compiles it."""
    state = jax.block_until_ready(function(state, inputs))
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        state = jax.block_until_ready(function(state, inputs))
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def pipelines_step_seconds(pipelines: list, steps: int, chunk: int) -> float:
    """Mean host seconds of one step's batches from every pipeline, read as mode_coverage.py reads them:
    `next_step`'s tuple per step (conv nets on a CPU, chunk 0), else `next_chunk`'s stacked array of `chunk` steps."""
    per_read = max(chunk, 1)
    reads = max(1, steps // per_read)
    batches = [p.batches(0, (reads + 2) * per_read) for p in pipelines]
    try:
        for b in batches:
            next(b), next(b)  # threads started, first batches out
        start = time.perf_counter()
        for _ in range(reads):
            if chunk:
                mode_coverage.next_chunk(batches, chunk)
            else:
                mode_coverage.next_step(batches)
        return (time.perf_counter() - start) / (reads * per_read)
    finally:
        for b in batches:
            b.close()


def time_method(config, benchmark: str, method: str, dataset, num_seeds: int, calls: int, chunk: int) -> list[dict]:
    """The rows of one benchmark config and method: ms per step and seed-steps/s of each way to train."""
    first_pipeline = data.make_pipeline(dataset, config)
    pipelines = [first_pipeline.with_seed(seed) for seed in range(num_seeds)]
    image_shape = first_pipeline.image_shape
    generator, discriminator = train.build_models(config, image_shape, 0)
    seed_array = jnp.arange(num_seeds, dtype=jnp.int32)
    # The seeds' batches of steps 0 .. K-1: float32 [K, S, batch, *image_shape] (K = 1 without the scan).
    images = jnp.asarray(mode_coverage.next_chunk([p.batches(0, max(chunk, 1)) for p in pipelines], max(chunk, 1)))

    step = train.make_step(config, generator, discriminator)
    labels = jnp.zeros((config.batch_size,), jnp.int32)
    one_seed = jax.jit(lambda state, x: step(state, {"image": x, "label": labels})[0], donate_argnums=0)
    state = jax.jit(lambda: train.init_state(config, generator, discriminator, image_shape))()
    seconds = {"1 seed": (median_call_seconds(one_seed, state, images[0, 0], calls), 1)}

    init = mode_coverage.init_seeds(config, generator, discriminator, image_shape)
    for side_by_side in (False, True):
        how = f"{num_seeds} seeds " + ("side by side" if side_by_side else "vmapped")
        one_step = mode_coverage.make_seeds_step(config, generator, discriminator, seed_array, config.batch_size,
                                                 side_by_side)
        seconds[how] = (median_call_seconds(jax.jit(one_step, donate_argnums=0), init(seed_array), images[0], calls),
                        num_seeds)
        if chunk:
            per_call = median_call_seconds(mode_coverage.steps_in_one_call(one_step), init(seed_array), images,
                                           max(1, calls // chunk))
            seconds[f"{how}, {chunk} per call"] = (per_call / chunk, num_seeds)
    seconds[f"{num_seeds} input pipelines (host)"] = (pipelines_step_seconds(pipelines, 5 * calls, chunk), num_seeds)

    one_seed_rate = 1 / seconds["1 seed"][0]
    rows = [{"benchmark": benchmark, "method": method, "batch_size": config.batch_size, "how": how,
             "ms_per_step": 1000 * s, "seed_steps_per_second": seeds / s, "vs_one_seed": seeds / s / one_seed_rate}
            for how, (s, seeds) in seconds.items()]
    rows[-1]["vs_one_seed"] = None  # the host's rate: what the pipelines could feed, not a way to train
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="grid25,stacked_mnist", help="comma-separated, of "
                        + ", ".join(mode_coverage.CONFIGS))
    parser.add_argument("--methods", default="GAN,PacGAN2", help="comma-separated, of "
                        + ", ".join(mode_coverage.METHODS))
    parser.add_argument("--seeds", type=int, default=None, help="seeds at once (default: mode_coverage.py's)")
    parser.add_argument("--calls", type=int, default=20, help="timed calls per figure")
    parser.add_argument("--chunk", type=int, default=None, help="steps per call of the scan rows (0: none; "
                        "default 10; 0 for conv nets on a CPU, which mode_coverage.py does not scan)")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    try:
        run(args)
    except UserError as e:
        sys.exit(f"seeds_at_once.py: error: {e}")


def run(args) -> None:
    """Checks the arguments (UserError), then times and prints every benchmark config and method."""
    for flag, names, known in (("--only", args.only, mode_coverage.CONFIGS), ("--methods", args.methods,
                                                                               mode_coverage.METHODS)):
        for name in names.split(","):
            if name not in known:
                raise UserError(f"{flag} {name}: choose from {', '.join(known)}")
    for flag, value, least in (("--seeds", args.seeds, 1), ("--calls", args.calls, 1), ("--chunk", args.chunk, 0)):
        if value is not None and value < least:
            raise UserError(f"{flag} {value}: give at least {least}")
    rows = []
    print(f"{jax.device_count()} {jax.devices()[0].device_kind}, jax {jax.__version__}\n")
    print("| config | method | batch | how | ms per step | seed-steps/s | x 1 seed |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for benchmark in args.only.split(","):
        dataset = None
        for method in args.methods.split(","):
            config = mode_coverage.method_config(benchmark, method, None)
            if dataset is None:  # opened once: the methods change no data key
                dataset = data.open_dataset(config.data)
            num_seeds = args.seeds or mode_coverage.DEFAULT_SEEDS[benchmark]
            chunk = (0 if mode_coverage.seeds_side_by_side(config) else 10) if args.chunk is None else args.chunk
            for row in time_method(config, benchmark, method, dataset, num_seeds, args.calls, chunk):
                rows.append(row)
                gain = "" if row["vs_one_seed"] is None else f"{row['vs_one_seed']:.2f}"
                print(f"| {benchmark} | {method} | {row['batch_size']} | {row['how']} | {row['ms_per_step']:.2f} | "
                      f"{row['seed_steps_per_second']:.0f} | {gain} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": jax.devices()[0].device_kind, "jax": jax.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
