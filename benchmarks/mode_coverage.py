"""Mode coverage: PacGAN's 2-D mixtures and Stacked MNIST, mean ± standard error over seeds.

python benchmarks/mode_coverage.py [--only ring8,grid25,stacked_mnist] [--seeds N] [--methods GAN,PacGAN2]
       [--steps N] [--no-ema] [--classifier-seed S[,S2,...]] [--drs-steps K [--drs-quantile Q]]
       [--set KEY=VALUE ...] [--out benchmarks/results/mode_coverage]

For each benchmark and method, trains the seeds AT ONCE (train.py's own step for every seed in one
compiled call: `jax.vmap`-ed, or side by side for conv nets on a CPU; run s is `python train.py
--config configs/NAME.py --config.seed=s` plus the method's keys) and draws the protocol's samples
from each run's EMA generator (what `sample.py --num N --out x.npy` writes; --no-ema: the raw
generator, which PacGAN evaluates). A method's seeds are checkpointed together in
OUT/runs/NAME_METHOD/ every minute and at the end: the same command continues a stopped benchmark
there, and scores finished methods again without training them.

2-D (configs/ring8.py, configs/grid25.py; 10 seeds unless --seeds): 2,500 samples per run, scored
with the PacGAN protocol (jaxgan.mixtures.evaluate): modes, high-quality %, reverse KL.

Stacked MNIST (configs/stacked_mnist.py; 5 seeds unless --seeds): 26,000 samples per run, each
channel labelled by jaxgan's digit classifier of --classifier-seed (default 0; its held-out
accuracy is printed): modes hit of 1,000 and KL(generated mode histogram || uniform), and of that
KL the part the digits' frequencies explain (the channels' KL(digit histogram || uniform), summed;
the rest is how far the channels are from independent). Classifiers of other seeds, about as
accurate on real digits, read a generator's imperfect digits differently: with several seeds
(--classifier-seed 0,1,2,3,4,5) the first one's classifier gives the modes and KL columns and a
last column gives the KL under each classifier and their median (results.json: `more_classifiers`).
The same command with other classifier seeds scores a finished run again without training it.

With --drs-steps K the samples scored are those that pass discriminator rejection sampling
(jaxgan.rejection; Azadi et al. 2019): each run's D, calibrated for K more steps against its frozen
generator on the run's next batches, accepts candidate x with probability min(1, exp(logit(x) - M)),
M the --drs-quantile (default 0.9) of the first 10,000 candidates' logits (a packed D's: each
candidate's mean over packs with fixed partners). The runs are the same as
without it (a finished --out is only calibrated, sampled and scored again); the rows say "DRS".

Methods: GAN (the config as it is: non-saturating loss), PacGANm (D judges m samples at once; the
batch holds m times as many samples, as many packs as GAN's batch has samples, as in PacGAN's
code), "GAN + mbstd" (a minibatch-stddev feature in D). `--set optim.lr_decay=linear` (repeatable;
the value read by the key's type, as train.py's --config.KEY=VALUE) changes a config key for every
method; `--set batch_size=128` sets GAN's batch and PacGANm's packs per batch (m x 128 samples).
Each table starts with the data itself, scored as the samples are (seed s: the first N
examples of its run's order, for 2-D N draws of the mixture): what a generator matching the data
would score. Prints a markdown table beside the published rows and writes to --out: table.md,
results.json (every seed's numbers; the data's under "data") and NAME_METHOD.png (seed 0's
samples: over the modes for 2-D, an 8x8 grid for Stacked MNIST). "train s": a method's training
seconds, compiling included, summed over the commands that trained it (each up to its last
checkpoint); sampling and scoring excluded.
"""

import argparse
import contextlib
import functools
import json
import os
import sys
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from configs import grid25, ring8, stacked_mnist  # noqa: E402
from jaxgan import checkpoint, classifier, data, mixtures, rejection, sampling, train  # noqa: E402
from jaxgan.errors import UserError  # noqa: E402

CONFIGS = {"ring8": ring8, "grid25": grid25, "stacked_mnist": stacked_mnist}
DEFAULT_SEEDS = {"ring8": 10, "grid25": 10, "stacked_mnist": 5}
# Method -> config keys over configs/NAME.py. With packing the batch size is multiplied by m.
METHODS = {
    "GAN": {},
    "PacGAN2": {"model.d_pack": 2},
    "PacGAN3": {"model.d_pack": 3},
    "PacGAN4": {"model.d_pack": 4},
    "GAN + mbstd": {"model.d_mbstd_group": 4},
}
# PacGAN (Lin et al. 2018) Table 1: modes mean ± SE, high-quality %, reverse KL; 10 trials.
PUBLISHED = {
    "ring8": [("GAN", 6.3, 0.5, 98.2, 0.45), ("ALI", 6.6, 0.3, 97.6, 0.36), ("PacGAN2", 7.9, 0.1, 95.6, 0.07),
              ("PacGAN3", 7.8, 0.1, 97.7, 0.10), ("PacGAN4", 7.8, 0.1, 95.9, 0.07)],
    "grid25": [("GAN", 17.3, 0.8, 94.8, 0.70), ("ALI", 24.1, 0.4, 95.7, 0.14), ("PacGAN2", 23.8, 0.7, 91.3, 0.13),
               ("PacGAN3", 24.6, 0.4, 94.2, 0.06), ("PacGAN4", 24.8, 0.2, 93.6, 0.04)],
    # PacGAN Table 2 (modes, SE, KL) and VEEGAN Table 2 (no SE); 100k steps.
    "stacked_mnist": [("PacGAN: DCGAN", 78.9, 6.5, None, 4.50), ("PacGAN: PacDCGAN2", 1000.0, 0.0, None, 0.06),
                      ("PacGAN: PacDCGAN4", 1000.0, 0.0, None, 0.07), ("VEEGAN: DCGAN", 99, None, None, 3.4),
                      ("VEEGAN: Unrolled GAN", 48.7, None, None, 4.32), ("VEEGAN: VEEGAN", 150, None, None, 2.95)],
}
EVAL_SAMPLES = {"ring8": mixtures.PROTOCOL_SAMPLES, "grid25": mixtures.PROTOCOL_SAMPLES, "stacked_mnist": 26_000}
STACKED_MODES = 1000
CHUNK_STEPS = 100  # steps per compiled call (conv nets on a CPU: 1)
CHECKPOINT_SECONDS = 60  # training time between a method's checkpoints: what a stop loses at most
SAMPLE_CHUNK = 500  # latents per generator call (for every seed at once): divides 2,500 and 26,000
# The parsers of ml_collections' config flags (train.py's --config.KEY=VALUE) for the types configs/default.py holds.
VALUE_PARSERS = {bool: flags.BooleanParser(), int: flags.IntegerParser(), float: flags.FloatParser(),
                 str: flags.ArgumentParser()}


def parse_overrides(pairs: list[str], mixture: str) -> dict:
    """`--set` values ["optim.lr_decay=linear", "optim.g_lr=2e-4", "data.random_flip=true"] ->
    {"optim.lr_decay": "linear", "optim.g_lr": 0.0002, "data.random_flip": True}, each read by the
    type of its key in configs/`mixture`.py with the parsers train.py's --config.KEY=VALUE uses."""
    config = CONFIGS[mixture].get_config()
    overrides = {}
    for pair in pairs:
        key, equals, text = pair.partition("=")
        if not equals or not key:
            raise UserError(f"--set {pair}: write KEY=VALUE, e.g. --set optim.lr_decay=linear")
        try:
            current = functools.reduce(lambda node, part: node[part], key.split("."), config)
        except (KeyError, AttributeError, TypeError):
            raise UserError(f"--set {key}: configs/{mixture}.py has no such key") from None
        if type(current) not in VALUE_PARSERS:
            raise UserError(f"--set {key}: a group of keys, not one; set one of them, e.g. --set optim.g_lr=2e-4")
        try:
            overrides[key] = VALUE_PARSERS[type(current)].parse(text)
        except ValueError as e:
            raise UserError(f"--set {pair}: {e.args[0]}") from None
    return overrides


# Keys the benchmark sets itself, per run or per method: --set must not override them silently.
# batch_size is not among them: it counts packs, which PacGANm multiplies by m into samples.
BENCHMARK_KEYS = {"seed": "--seeds", "steps": "--steps", "model.d_pack": "--methods",
                  "model.d_mbstd_group": "--methods"}


def method_config(mixture: str, method: str, steps: int | None, overrides: dict | None = None):
    config = CONFIGS[mixture].get_config()
    config.update_from_flattened_dict(METHODS[method])
    config.lock()  # a key the config lacks is an error, not a new key
    for key, value in (overrides or {}).items():
        if key in BENCHMARK_KEYS:
            raise UserError(f"--set {key}: the benchmark sets it; use {BENCHMARK_KEYS[key]}")
        try:
            config.update_from_flattened_dict({key: value})
        except (KeyError, AttributeError):
            raise UserError(f"--set {key}: configs/{mixture}.py has no such key") from None
    config.unlock()
    if mixture == "stacked_mnist" and config.data.image_size not in (0, 28):
        raise UserError(f"--set data.image_size={config.data.image_size}: the digit classifier scores Stacked "
                        f"MNIST at its own 28x28; leave data.image_size at 0")
    config.batch_size *= config.model.d_pack
    if steps:
        config.steps = steps
    train.validate(config)
    return config


def check_saved(meta: dict, step: int, config, seeds: list[int], workdir: str) -> list[str]:
    """Refuses the checkpoint at `step` of `workdir` (its metadata `meta`) if `config` and `seeds`
    cannot continue it: another config or other seeds made it, or it is past config.steps.
    Returns the allowed config changes, as train.check_resumable does."""
    changes = train.check_resumable(config, meta["config"], workdir, elsewhere="another --out")
    if meta.get("seeds") != seeds:
        raise UserError(f"{workdir} holds the runs of seeds {meta.get('seeds')}, not {seeds}; "
                        f"pass the same --seeds to continue them or another --out")
    if step > config.steps:
        raise UserError(f"{workdir} is trained to step {step}, beyond --steps {config.steps}; "
                        f"pass --steps {step} or another --out")
    return changes


def train_seeds(config, dataset: data.ImageDataset | data.MixtureDataset, seeds: list[int], use_ema: bool,
                num_samples: int, workdir: str, rejection: tuple[int, float] | None = None
                ) -> tuple[np.ndarray, float, list[dict]]:
    """Trains one run per seed on `dataset` (`data.open_dataset(config.data)`), all at once; returns
    each run's first `num_samples` samples of sample.py's --seed 0 from its EMA or raw generator
    (float32 [S, num_samples, 2] for 2-D, [S, num_samples, 28, 28, 3] in [-1, 1] for Stacked MNIST),
    the seconds spent training them, over every call that trained them, and how DRS drew them.

    With `rejection` (calibration steps, quantile) the samples are those that pass discriminator
    rejection sampling (`rejection_samples`), and the list holds each run's draw; else it is empty.

    The step is train.py's own for every seed at once (`make_seeds_step`), and run s reads the
    batches that train.py's pipeline gives --config.seed=s, so run s is that train.py run. Steps run
    CHUNK_STEPS at a time inside one compiled `lax.scan`, so an accelerator is not left waiting on
    Python between steps (the tiny MLPs' above all), except conv nets on a CPU (`seeds_side_by_side`),
    which step one call at a time: XLA:CPU runs the DCGAN step 17x slower inside a compiled loop.

    The seeds' states are saved together in `workdir`/checkpoints/<step>/ (train.py's format, the
    config and the seeds in its metadata) every CHECKPOINT_SECONDS and at the last step; a call
    with the same config and seeds continues from the newest readable one (a finished one is only
    sampled again), so a stopped benchmark loses at most CHECKPOINT_SECONDS of training.
    """
    first_pipeline = data.make_pipeline(dataset, config)
    pipelines = [first_pipeline.with_seed(seed) for seed in seeds]  # one copy of the pictures for all
    image_shape = first_pipeline.image_shape
    generator, discriminator = train.build_models(config, image_shape, 0)
    seed_array = jnp.asarray(seeds, jnp.int32)
    init = init_seeds(config, generator, discriminator, image_shape)
    manager = checkpoint.open_manager(workdir, max_to_keep=2)
    try:
        try:
            states, seconds = resume_seeds(manager, workdir, config, seeds, jax.eval_shape(init, seed_array))
            if states is None:
                states = init(seed_array)
            states, seconds = train_states(config, pipelines, generator, discriminator, seed_array, states,
                                           seconds, manager)
        finally:
            manager.close()  # waits for the last save
    except Exception as error:  # a full disk: one line naming the checkpoints kept, as train.py says it
        checkpoint.raise_if_write_failure(error, manager, workdir)
        raise
    if rejection is None:
        return (sample_seeds(states, generator, config.model.latent_dim, use_ema, num_samples,
                             seeds_side_by_side(config)), seconds, [])
    samples, draws = rejection_samples(config, pipelines, generator, discriminator, states, use_ema, num_samples,
                                       *rejection)
    return samples, seconds, draws


def rejection_samples(config, pipelines: list, generator, discriminator, states, use_ema: bool, num_samples: int,
                      calibration_steps: int, quantile: float) -> tuple[np.ndarray, list[dict]]:
    """Each run's first `num_samples` samples that pass DRS (`jaxgan.rejection`), candidates drawn
    from sample.py's --seed 0, after `calibration_steps` updates of its D against its EMA or raw
    generator on its pipeline's next batches; the runs one after another. Returns the samples as
    `sample_seeds` does and each run's draw: {"threshold", "candidates", "acceptance",
    "calibration_loss": D's logistic loss over the first and the last 100 updates}."""
    samples, draws = [], []
    for i, pipeline in enumerate(pipelines):
        state = jax.tree.map(lambda leaf: leaf[i], states)
        g_params = state.ema_params if use_ema else state.g_params
        batches = pipeline.batches(int(state.step), int(state.step) + calibration_steps)
        try:
            d_params, d_batch_stats, step_losses = rejection.calibrate_discriminator(
                config, generator, discriminator, state, g_params, batches, calibration_steps, pipeline.seed)
        finally:
            batches.close()  # stops its threads
        run_samples, draw = rejection.rejection_sample(generator, discriminator, g_params, state.g_batch_stats,
                                                       d_params, d_batch_stats, config.model.latent_dim,
                                                       num_samples, 0, quantile, config.model.d_pack)
        samples.append(run_samples)
        draws.append({**draw, "calibration_loss": [float(step_losses[:100].mean()),
                                                   float(step_losses[-100:].mean())]})
        print(f"  DRS, seed {pipeline.seed}: D's loss {draws[-1]['calibration_loss'][0]:.3f} -> "
              f"{draws[-1]['calibration_loss'][1]:.3f} over {calibration_steps} calibration steps; M = "
              f"{draw['threshold']:.3f}, {100 * draw['acceptance']:.1f} % of {draw['candidates']} accepted", flush=True)
    return np.stack(samples), draws


def resume_seeds(manager, workdir: str, config, seeds: list[int], abstract_states) -> tuple:
    """(the seeds' states, their training seconds) of the newest readable checkpoint in `workdir`,
    or (None, 0.0) if it has none."""
    if not manager.all_steps():
        return None, 0.0

    def restore_step(step):
        meta = checkpoint.restore_meta(manager, step)
        changes = check_saved(meta, step, config, seeds, workdir)
        states = checkpoint.restore(manager, step, meta, abstract_states,
                                    jax.sharding.SingleDeviceSharding(jax.devices()[0]))
        return states, meta["train_seconds"], changes

    (states, seconds, changes), unreadable = checkpoint.restore_newest_readable(manager, workdir, restore_step,
                                                                                "resuming from")
    if unreadable:  # set aside, so that training can save those steps again
        checkpoint.set_aside(manager, workdir, unreadable)
    print(f"  resumed {workdir} from step {int(states.step[0])}"
          + "".join(f"; config change since then: {change}" for change in changes), flush=True)
    return states, seconds


def train_states(config, pipelines: list, generator, discriminator, seed_array, states, seconds_before: float,
                 manager) -> tuple:
    """(`states` trained from their step to config.steps, the training seconds since step 0).

    `states`: the seeds' TrainStates stacked; checkpointed to `manager` as train_seeds says."""
    start_step = int(states.step[0])
    one_step = make_seeds_step(config, generator, discriminator, seed_array, pipelines[0].batch_size)
    start = saved = time.perf_counter()
    seconds = seconds_before  # as of the last checkpoint: the last step always saves one

    def after_steps(done_before: int, done: int, states) -> None:
        nonlocal saved, seconds
        # Waited for, so the clock measures steps computed, not steps dispatched.
        jax.block_until_ready(states)
        report_progress(done_before, done, start_step, config.steps, start)
        if done == config.steps or time.perf_counter() - saved >= CHECKPOINT_SECONDS:
            seconds = seconds_before + time.perf_counter() - start
            checkpoint.save(manager, states, config, pipelines[0].image_shape, (),
                            extra_meta={"seeds": [int(s) for s in seed_array], "train_seconds": seconds})
            saved = time.perf_counter()

    batches = [p.batches(start_step, config.steps) for p in pipelines]  # images by each pipeline's threads
    try:
        if seeds_side_by_side(config):  # conv nets on a CPU: one call per step
            # The seeds' batches go to the device separately and are stacked there: no host copy.
            run_step = jax.jit(lambda states, images: one_step(states, jnp.stack(images)), donate_argnums=0)
            for step in range(start_step, config.steps):
                states = run_step(states, next_step(batches))
                after_steps(step, step + 1, states)
        else:
            run_steps = steps_in_one_call(one_step)
            chunks = [range(first, min(first + CHUNK_STEPS, config.steps))
                      for first in range(start_step, config.steps, CHUNK_STEPS)]
            images = next_chunk(batches, len(chunks[0])) if chunks else None
            for i, steps in enumerate(chunks):
                states = run_steps(states, images)
                if i + 1 < len(chunks):
                    images = next_chunk(batches, len(chunks[i + 1]))  # read while the device computes
                after_steps(steps[0], steps[-1] + 1, states)
    finally:
        for b in batches:
            b.close()  # stops its threads
    return states, seconds


def init_seeds(config, generator, discriminator, image_shape: tuple) -> Callable:
    """Compiled `init(seed_array int32 [S]) -> states`: train.py's fresh TrainState of every seed, stacked."""
    return jax.jit(jax.vmap(lambda seed: train.init_state(config, generator, discriminator, image_shape, seed)))


def seeds_side_by_side(config) -> bool:
    """Whether to run the seeds' networks side by side in one program rather than `jax.vmap`-ed
    over the seed: for conv nets on a CPU. A vmapped convolution over per-seed weights becomes a
    grouped one, which XLA:CPU ran 3x slower than the seeds side by side (5 Stacked MNIST seeds,
    benchmarks/seeds_at_once.py); vmapped matrix products (the 2-D MLPs) batch well, and on a GPU
    the vmapped Stacked MNIST seeds ran at 645 seed-steps/s (H200; side by side not measured there).
    Side by side, the program holds the step once per seed: it compiles about S times as long. Such
    programs also run one step per call (`train_seeds`)."""
    return config.model.name != "mlp" and jax.default_backend() == "cpu"


def over_seeds(function: Callable, side_by_side: bool) -> Callable:
    """`function` of one seed's arguments as a function of all seeds' (stacked along a leading axis,
    results too): `jax.vmap`, or with `side_by_side` the seeds' calls next to each other in one program."""
    if not side_by_side:
        return jax.vmap(function)

    def each_seed(*args):
        results = [function(*jax.tree.map(lambda leaf: leaf[i], args)) for i in range(len(jax.tree.leaves(args)[0]))]
        return jax.tree.map(lambda *leaves: jnp.stack(leaves), *results)

    return each_seed


def make_seeds_step(config, generator, discriminator, seed_array: jax.Array, batch_size: int,
                    side_by_side: bool | None = None) -> Callable:
    """`one_step(states, images) -> states`: train.py's step for every seed at once (`over_seeds`;
    `side_by_side` None: `seeds_side_by_side(config)`). states: the seeds' TrainStates stacked; images
    float32 [S, batch_size, *image_shape]."""
    step = train.make_step(config, generator, discriminator)
    labels = jnp.zeros((batch_size,), jnp.int32)
    seeds_step = over_seeds(lambda state, images, seed: step(state, {"image": images, "label": labels}, seed)[0],
                            seeds_side_by_side(config) if side_by_side is None else side_by_side)
    return lambda states, images: seeds_step(states, images, seed_array)


def next_step(batches: list) -> tuple:
    """The next images of each seed's batch iterator (`Pipeline.batches`): S float32 arrays [batch, ...]."""
    return tuple(next(b)["image"] for b in batches)


def next_chunk(batches: list, steps: int) -> np.ndarray:
    """The next `steps` images of each seed's batch iterator (`Pipeline.batches`): float32 [steps, S, batch, ...]."""
    return np.stack([np.stack(next_step(batches)) for _ in range(steps)])


def steps_in_one_call(one_step: Callable) -> Callable:
    """Compiled `run_steps(states, images) -> states`: `one_step` over images [K, ...] in one `lax.scan`."""
    return jax.jit(lambda states, images: jax.lax.scan(
        lambda states, step_images: (one_step(states, step_images), None), states, images)[0], donate_argnums=0)


def sample_seeds(states, generator, latent_dim: int, use_ema: bool, num_samples: int,
                 side_by_side: bool) -> np.ndarray:
    """Each seed's first `num_samples` samples of sample.py's --seed 0: float32 [S, num_samples, ...]."""
    generate = train.make_generate(generator)
    seeds_generate = jax.jit(lambda params, batch_stats, z: over_seeds(
        lambda params, batch_stats: generate(params, batch_stats, z, None), side_by_side)(params, batch_stats))
    z = sampling.latents(0, num_samples, latent_dim)  # sample.py's --seed 0
    params = states.ema_params if use_ema else states.g_params
    return np.concatenate([np.asarray(seeds_generate(params, states.g_batch_stats, z[i:i + SAMPLE_CHUNK]))
                           for i in range(0, num_samples, SAMPLE_CHUNK)], axis=1)


def report_progress(done_before: int, done: int, start_step: int, steps: int, start: float) -> None:
    """A line each time the steps done (computed, not just dispatched) pass a twentieth of the run: how
    far, how fast since `start` (the time of `start_step`), and the time left at that rate, as train.py's ETA."""
    interval = max(1, steps // 20)
    if done // interval > done_before // interval or done == steps:
        steps_per_s = (done - start_step) / (time.perf_counter() - start)
        eta = train.format_duration((steps - done) / steps_per_s)
        print(f"  step {done}/{steps}, {steps_per_s:.3g} steps/s, ETA {eta}", flush=True)


def stacked_score(images: np.ndarray, digits: classifier.TrainedClassifier) -> dict:
    """Modes hit of 1,000 and KL(mode histogram || uniform) of images float32 [N, 28, 28, 3] in
    [-1, 1], each channel labelled by the digit classifier: a picture's mode is its digit triple.

    "digit_counts" int [3][10]: how many pictures have digit d in channel c (R, G, B). "digit_kl" is
    the part of the KL those frequencies alone explain: the sum over the channels of KL(the channel's
    digit histogram || uniform over 10). The rest, reverse_kl - digit_kl >= 0, is the triples' total
    correlation (how far the channels are from independent), which a finite sample of independent
    uniform digits puts at about 999 / (2 N) on its own.
    """
    channels = images.transpose(0, 3, 1, 2).reshape(-1, 28, 28, 1)
    labels = digits.predict(channels).reshape(-1, 3)
    counts = np.bincount(labels @ np.array([100, 10, 1]), minlength=STACKED_MODES)
    digit_counts = [np.bincount(labels[:, c], minlength=10) for c in range(3)]
    return {"modes": int(np.count_nonzero(counts)), "reverse_kl": mixtures.kl_to_uniform(counts),
            "digit_kl": sum(mixtures.kl_to_uniform(c) for c in digit_counts),
            "digit_counts": [c.tolist() for c in digit_counts]}


def mean_and_standard_error(values) -> tuple[float, float]:
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="ring8,grid25,stacked_mnist", help="comma-separated benchmarks")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    parser.add_argument("--seeds", type=int, default=None, help="runs per method: seeds 0 .. N-1 (default 10 "
                        "for 2-D, 5 for Stacked MNIST)")
    parser.add_argument("--steps", type=int, default=None, help="default: the config's")
    parser.add_argument("--no-ema", action="store_true", help="score the raw generator, not its EMA")
    parser.add_argument("--classifier-seed", default="0", help="Stacked MNIST: the seed of the digit classifier "
                        "that labels the channels, or several, comma-separated, for the KL under each (each seed's "
                        "trained once, then cached)")
    parser.add_argument("--drs-steps", type=int, default=0, help="K > 0: score the samples that pass discriminator "
                        "rejection sampling, each run's D first calibrated for K steps against its frozen generator")
    parser.add_argument("--drs-quantile", type=float, default=0.9, help="with --drs-steps: the quantile of the "
                        "logits above which every candidate is accepted (about 1 / (1 - q) candidates per sample)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config key for every method, e.g. optim.lr_decay=linear (repeatable)")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "mode_coverage"))
    args = parser.parse_args()
    checkpoint.leave_failures_to_exceptions()
    try:
        check_and_run(args)
    except UserError as e:
        sys.exit(f"mode_coverage.py: error: {e}")
    except KeyboardInterrupt:
        sys.exit(f"mode_coverage.py: stopped; the same command continues each method from its last checkpoint "
                 f"in {os.path.join(args.out, 'runs')}")


def check_and_run(args) -> None:
    """Checks every argument, config and method workdir, then runs the benchmarks; UserError for bad input."""
    benchmark_names, method_names = args.only.split(","), args.methods.split(",")
    for name in benchmark_names:
        if name not in CONFIGS:
            raise UserError(f"--only {name}: choose from {', '.join(CONFIGS)}")
    for name in method_names:
        if name not in METHODS:
            raise UserError(f"--methods {name}: choose from {', '.join(METHODS)}")
    if args.seeds is not None and args.seeds < 1:
        raise UserError(f"--seeds {args.seeds}: train at least 1 seed")
    args.classifier_seeds = parse_classifier_seeds(args.classifier_seed)
    if args.drs_steps < 0:
        raise UserError(f"--drs-steps {args.drs_steps}: use 0 (no rejection sampling) or a number of steps, e.g. 2000")
    if args.drs_steps and not 0 <= args.drs_quantile < 1:
        raise UserError(f"--drs-quantile {args.drs_quantile}: use a value in [0, 1), e.g. 0.9")
    # Every method's config built, its data opened and its workdir checked before anything trains.
    overrides = parse_overrides(args.set, benchmark_names[0])
    configs = {(benchmark, method): method_config(benchmark, method, args.steps, overrides)
               for benchmark in benchmark_names for method in method_names}
    # Opened once per benchmark: the methods change no data key.
    datasets = {benchmark: data.open_dataset(configs[benchmark, method_names[0]].data)
                for benchmark in benchmark_names}
    for (benchmark, method), config in configs.items():
        if args.drs_steps:
            rejection.check_config(config)
        check_workdir(method_workdir(args.out, benchmark, method), config, seeds_of(args, benchmark))
    run(args, overrides, configs, datasets)


def parse_classifier_seeds(text: str) -> list[int]:
    """--classifier-seed's "S" or "S1,S2,...": distinct seeds in [0, MAX_INT32]; UserError otherwise."""
    try:
        seeds = [int(seed) for seed in text.split(",")]
    except ValueError:
        seeds = []
    if not seeds or len(set(seeds)) < len(seeds) or not all(0 <= seed <= train.MAX_INT32 for seed in seeds):
        raise UserError(f"--classifier-seed {text}: use a seed in [0, {train.MAX_INT32}], or several distinct "
                        f"ones, comma-separated")
    return seeds


def method_name(benchmark: str, method: str) -> str:
    """NAME_METHOD of the method's picture and workdir: "grid25_GAN+mbstd" for "GAN + mbstd"."""
    return f"{benchmark}_{method.replace(' ', '')}"


def method_workdir(out: str, benchmark: str, method: str) -> str:
    return os.path.join(out, "runs", method_name(benchmark, method))


def seeds_of(args, benchmark: str) -> list[int]:
    return list(range(args.seeds or DEFAULT_SEEDS[benchmark]))


def check_workdir(workdir: str, config, seeds: list[int]) -> None:
    """Refuses, before anything trains, a method's workdir whose newest readable checkpoint cannot be continued."""
    if not os.path.isdir(os.path.join(workdir, "checkpoints")):
        return
    manager = checkpoint.open_manager(workdir, read_only=True)
    try:
        for step in sorted(manager.all_steps(), reverse=True):
            try:
                meta = checkpoint.restore_meta(manager, step)
            except checkpoint.UnreadableCheckpoint:
                continue  # resuming names it and goes back to an older one, as here
            check_saved(meta, step, config, seeds, workdir)
            return
    finally:
        manager.close()


def run(args, overrides: dict, configs: dict, datasets: dict) -> None:
    """Trains and scores every benchmark's methods; writes the table, results.json and pictures to args.out."""
    with writing_in(args.out):
        os.makedirs(args.out, exist_ok=True)
    method_names = args.methods.split(",")
    results, references, lines = [], [], []
    start = time.perf_counter()
    for benchmark in args.only.split(","):
        seeds = seeds_of(args, benchmark)
        stacked = benchmark == "stacked_mnist"
        digits, more_digits, judge = None, {}, {}
        if stacked:
            readers = {seed: classifier.load_or_train_digit_classifier(seed) for seed in args.classifier_seeds}
            (first_seed, digits), *others = readers.items()
            more_digits = dict(others)
            judge = {"classifier": {"seed": first_seed, "held_out_accuracy": digits.held_out_accuracy}}
            accuracies = ", ".join(f"seed {seed}: {100 * d.held_out_accuracy:.1f} %" for seed, d in readers.items())
            more_column = f" KL under classifiers {' / '.join(map(str, readers))} (median) |" if more_digits else ""
            lines += [f"### Stacked MNIST (1,000 modes), {len(seeds)} seeds, {EVAL_SAMPLES[benchmark]} samples "
                      f"each; digit classifier of {accuracies} on held-out digits"
                      + (f" (modes and KL: seed {first_seed}'s)" if more_digits else ""), "",
                      f"| method | steps | modes (mean ± SE) | all modes in | KL | of which digits' KL | train s |"
                      f"{more_column}",
                      "| --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if more_digits else "")]
        else:
            lines += [f"### {benchmark} ({len(mixtures.MIXTURES[benchmark].centres)} modes), {len(seeds)} seeds, "
                      f"{EVAL_SAMPLES[benchmark]} samples each", "",
                      "| method | steps | modes (mean ± SE) | all modes in | high quality % | reverse KL | train s |",
                      "| --- | --- | --- | --- | --- | --- | --- |"]
        # The data itself, scored as the samples are: what a generator matching it would score.
        reference = configs[benchmark, method_names[0]].copy_and_resolve_references()
        reference.batch_size = EVAL_SAMPLES[benchmark]
        pipeline = data.make_pipeline(datasets[benchmark], reference)
        samples = [pipeline.with_seed(seed).batch(0)["image"] for seed in seeds]
        scores = [score(benchmark, seed_samples, digits) for seed_samples in samples]
        more = more_classifiers_scores(samples, more_digits)
        what = "pictures of jaxgan_stacked_digits" if stacked else "draws of the mixture"
        lines.append(table_row(f"the data itself ({EVAL_SAMPLES[benchmark]:,} {what} per seed)", "", benchmark,
                               scores, "", more))
        references.append({"benchmark": benchmark, "seeds": seeds, "scores": scores, **judge, **more_field(more)})
        for method in method_names:
            config = configs[benchmark, method]
            picture = os.path.join(args.out, method_name(benchmark, method) + ".png")
            print(f"{benchmark} {method}, {len(seeds)} seeds at once "
                  f"({'side by side' if seeds_side_by_side(config) else 'vmapped'}):", flush=True)
            samples, seconds, draws = train_seeds(config, datasets[benchmark], seeds, not args.no_ema,
                                                  EVAL_SAMPLES[benchmark], method_workdir(args.out, benchmark, method),
                                                  (args.drs_steps, args.drs_quantile) if args.drs_steps else None)
            scores = [score(benchmark, seed_samples, digits) for seed_samples in samples]
            more = more_classifiers_scores(samples, more_digits)
            with writing_in(args.out):
                if stacked:
                    sampling.save_png(picture, sampling.image_grid(sampling.to_uint8(samples[0, :64]), 8))
                else:
                    mixtures.plot(samples[0], benchmark, picture,
                                  title=f"{benchmark} {method} seed 0: {scores[0]['modes']} modes")
            label = f"jaxgan {method}" + (" (raw G)" if args.no_ema else "") + "".join(
                f", {key}={value}" for key, value in overrides.items()) + (
                f", DRS ({args.drs_steps} calibration steps, quantile {args.drs_quantile})" if draws else "")
            lines.append(table_row(label, config.steps, benchmark, scores, f"{seconds:.0f}", more))
            print(lines[-1], flush=True)
            results.append({"benchmark": benchmark, "method": method, "keys": {**METHODS[method], **overrides},
                            "batch_size": config.batch_size, "steps": config.steps, "seeds": seeds,
                            "generator": "raw" if args.no_ema else "EMA",
                            "scores": scores, "train_seconds": seconds, **judge, **more_field(more),
                            **({"rejection": {"calibration_steps": args.drs_steps, "quantile": args.drs_quantile,
                                              "draws": draws}} if draws else {})})
            write_outputs(args.out, lines, results, references, time.perf_counter() - start, finished=False)
        for name, m, se, q, kl in PUBLISHED[benchmark]:
            modes = f"{m} ± {se}" if se is not None else f"{m}"
            quality = "" if stacked else f" {q} |"
            steps = "100k" if stacked else "400k"
            lines.append(f"| {name} (published) | {steps} | {modes} | |{quality} {kl} |{' |' if stacked else ''} |"
                         + (" |" if more_digits else ""))
        lines.append("")
    print("\n" + write_outputs(args.out, lines, results, references, time.perf_counter() - start, finished=True))


def score(benchmark: str, samples: np.ndarray, digits: classifier.TrainedClassifier | None) -> dict:
    """One run's scores under the benchmark's protocol: samples float32 [N, 2] of a 2-D mixture
    (`mixtures.evaluate`) or [N, 28, 28, 3] in [-1, 1] for Stacked MNIST (`stacked_score`, with `digits`)."""
    return stacked_score(samples, digits) if benchmark == "stacked_mnist" else mixtures.evaluate(samples, benchmark)


def more_classifiers_scores(samples, more_digits: dict) -> list[dict]:
    """Stacked MNIST's scores of each seed's samples under each further classifier of `more_digits`
    ({classifier seed: TrainedClassifier}): [{"seed", "held_out_accuracy", "scores": [per run]}]."""
    return [{"seed": seed, "held_out_accuracy": digits.held_out_accuracy,
             "scores": [stacked_score(seed_samples, digits) for seed_samples in samples]}
            for seed, digits in more_digits.items()]


def more_field(more: list[dict]) -> dict:
    """results.json's `more_classifiers`, present only when there are some."""
    return {"more_classifiers": more} if more else {}


def table_row(label: str, steps, benchmark: str, scores: list[dict], seconds: str, more: list[dict] = ()) -> str:
    """A row of the markdown table: modes mean ± SE over the runs' `scores`, runs with every mode,
    high-quality % (2-D), KL, the digits' KL (Stacked MNIST); with `more` classifiers' scores
    (`more_classifiers_scores`), the mean KL under the first and each further one, and their median."""
    stacked = benchmark == "stacked_mnist"
    num_modes = STACKED_MODES if stacked else len(mixtures.MIXTURES[benchmark].centres)
    modes, modes_se = mean_and_standard_error([s["modes"] for s in scores])
    kl, _ = mean_and_standard_error([s["reverse_kl"] for s in scores])
    full = sum(s["modes"] == num_modes for s in scores)
    quality = ("" if stacked else
               f" {mean_and_standard_error([100 * s['high_quality'] for s in scores])[0]:.1f} |")
    digits = (f" {mean_and_standard_error([s['digit_kl'] for s in scores])[0]:.3f} |"
              if stacked else "")
    kls = [kl] + [mean_and_standard_error([s["reverse_kl"] for s in m["scores"]])[0] for m in more]
    by_classifier = f" {' / '.join(f'{k:.3f}' for k in kls)} ({np.median(kls):.3f}) |" if more else ""
    return (f"| {label} | {steps} | {modes:.1f} ± {modes_se:.1f} | {full}/{len(scores)} |{quality} {kl:.3f} |"
            f"{digits} {seconds} |{by_classifier}")


def write_outputs(out: str, lines: list[str], results: list[dict], references: list[dict], seconds: float,
                  finished: bool) -> str:
    """Writes table.md and results.json (the methods' `results`, the data's scores as `references`)
    to `out`, also after each method, so a stopped run keeps them."""
    when = "This command, whole benchmark" if finished else "This command, stopped early; so far"
    table = "\n".join(lines + [f"{when}: {seconds:.0f} s on {jax.device_count()} {jax.devices()[0].device_kind}."])
    with writing_in(out):
        sampling.write_atomically(os.path.join(out, "table.md"), lambda f: f.write(table.encode() + b"\n"))
        sampling.write_atomically(os.path.join(out, "results.json"), lambda f: f.write(json.dumps(
            {"results": results, "data": references, "total_seconds": seconds, "finished": finished},
            indent=1).encode()))
    return table


@contextlib.contextmanager
def writing_in(out: str):
    """A failed write in the block (a full disk, a read-only --out) becomes one line: a UserError."""
    try:
        yield
    except OSError as error:
        reason = checkpoint.write_failure(error)
        if reason is None:
            raise
        raise UserError(f"cannot write in {out} ({reason}); free some space or make it writable, then run the same "
                        f"command (methods already trained are only scored again)") from None


if __name__ == "__main__":
    main()
