"""Helper for tests/test_devices.py: a tiny run on however many devices this process was given.

python tests/device_run.py WORKDIR DATA_DIR OUT.npz [--steps N] [--coordinator HOST:PORT --processes P --process-id I]

Trains the tiny test config (one D and G step first, then on to N steps), and on process 0 writes
OUT.npz: the losses, gradients and parameters after step 1 (keys without "final/"), G's parameters
("final/...") and raw-generator samples after N steps.
"""

import argparse
import os

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir")
    parser.add_argument("data_dir")
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--coordinator", default=None)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--process-id", type=int, default=0)
    args = parser.parse_args()

    import jax

    if args.coordinator:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(args.coordinator, args.processes, args.process_id)

    from conftest import make_tiny_config
    from jaxgan import data, losses, sampling, train

    # The tests' tiny config, as train.py gets it from conftest.tiny_flags.
    config = make_tiny_config(args.data_dir)
    config.log_every = config.checkpoint_every = config.sample_every = 1000

    # Gradients at the first step, with the batch sharded as train_and_evaluate shards it.
    shardings = train.make_shardings()
    generator, discriminator = train.build_models(config, (28, 28, 1), 10)
    state = jax.jit(lambda: train.init_state(config, generator, discriminator, (28, 28, 1)),
                    out_shardings=shardings.replicated)()
    pipeline = data.make_pipeline(data.open_dataset(config.data), config)
    batch = data.to_global(pipeline.batch(0), shardings.batch)

    @jax.jit
    def first_gradients(state, batch):
        z = train.step_latents(config, 0, config.batch_size)

        def d_objective(d_params, g_params):
            variables = {"params": g_params, "batch_stats": state.g_batch_stats}
            fake, _ = generator.apply(variables, z, batch["label"], train=True, mutable=["batch_stats"])
            d_variables = {"params": d_params, "batch_stats": state.d_batch_stats}
            return losses.nonsaturating_d_loss(discriminator.apply(d_variables, batch["image"], batch["label"]),
                                               discriminator.apply(d_variables, fake, batch["label"]))

        return jax.grad(d_objective, argnums=(0, 1))(state.d_params, state.g_params)

    d_grads, g_grads = first_gradients(state, batch)

    config.steps = 1
    one = train.train_and_evaluate(config, args.workdir)
    config.steps = args.steps
    final = train.train_and_evaluate(config, args.workdir)
    # Raw-generator samples (what `sample.py --no-ema` draws), inputs replicated over every device.
    z, labels = jax.device_put((np.asarray(sampling.latents(0, 16, 8)), sampling.block_labels(16, range(10))),
                               shardings.replicated)
    samples = np.asarray(train.make_generate(generator)(final.g_params, final.g_batch_stats, z, labels))
    if jax.process_index() != 0:
        return
    leaves = {}
    for prefix, tree in (("d_grad", d_grads), ("g_grad", g_grads), ("g_params", one.g_params),
                         ("d_params", one.d_params), ("ema", one.ema_params), ("g_stats", one.g_batch_stats),
                         ("d_stats", one.d_batch_stats), ("final/g_params", final.g_params)):
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            leaves[prefix + jax.tree_util.keystr(path)] = np.asarray(leaf)
    with open(os.path.join(args.workdir, "metrics.jsonl")) as f:
        first_metrics = f.readline()
    np.savez(args.out, samples=samples, first_metrics=np.array(first_metrics), devices=jax.device_count(),
             **leaves)


if __name__ == "__main__":
    main()
