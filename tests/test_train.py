import hashlib
import json
import logging
import os
import shutil

import flax.linen
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from conftest import tree_equal
from jaxgan import checkpoint, losses, train, trained
from jaxgan.errors import UserError


def files_digest(directory) -> dict[str, str]:
    """{relative path: sha256} of every file under `directory`."""
    digests = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                digests[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
    return digests


def initial_state(config, generator, discriminator):
    """`train.init_state` at 28x28x1, compiled whole as train.py runs it: op by op, it would compile
    each of its hundreds of operations (seconds per test)."""
    return jax.jit(lambda: train.init_state(config, generator, discriminator, (28, 28, 1)))()


@pytest.fixture
def fixed_batch():
    images = jax.random.uniform(jax.random.key(7), (8, 28, 28, 1), minval=-1.0, maxval=1.0)
    return {"image": images, "label": jnp.arange(8, dtype=jnp.int32) % 10}


def test_one_step_updates_everything_and_lowers_the_d_loss(tiny_config, fixed_batch):
    generator, discriminator = train.build_models(tiny_config, (28, 28, 1), 10)
    state = initial_state(tiny_config, generator, discriminator)
    new_state, metrics = jax.jit(train.make_step(tiny_config, generator, discriminator))(state, fixed_batch)

    assert int(new_state.step) == 1
    for name in ("g_params", "d_params", "ema_params", "g_batch_stats", "d_batch_stats"):
        assert not tree_equal(getattr(state, name), getattr(new_state, name)), name
    assert {"d_loss", "g_loss", "d_real", "d_fake", "skipped"} <= set(metrics)
    assert float(metrics["skipped"]) == 0

    # The D loss on this very batch and these fakes, before and after D's update.
    z = train.step_latents(tiny_config, 0, 8)
    fake, _ = jax.jit(lambda: generator.apply({"params": state.g_params, "batch_stats": state.g_batch_stats}, z,
                                              fixed_batch["label"], train=True, mutable=["batch_stats"]))()

    @jax.jit
    def d_loss(params, stats):
        variables = {"params": params, "batch_stats": stats}
        return losses.nonsaturating_d_loss(discriminator.apply(variables, fixed_batch["image"], fixed_batch["label"]),
                                           discriminator.apply(variables, fake, fixed_batch["label"]))

    before = d_loss(state.d_params, new_state.d_batch_stats)
    after = d_loss(new_state.d_params, new_state.d_batch_stats)
    assert float(after) < float(before)
    # The step's loss used the power-iteration vectors it started from.
    np.testing.assert_allclose(metrics["d_loss"], d_loss(state.d_params, state.d_batch_stats), rtol=1e-5)


def test_ema_follows_generator_with_warm_up(tiny_config, fixed_batch):
    generator, discriminator = train.build_models(tiny_config, (28, 28, 1), 10)
    state = initial_state(tiny_config, generator, discriminator)
    new_state, _ = jax.jit(train.make_step(tiny_config, generator, discriminator))(state, fixed_batch)
    decay = min(tiny_config.optim.ema_decay, 1.0 / 10.0)  # warm-up at step 0: (1 + 0) / (10 + 0)
    expected = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, state.ema_params, new_state.g_params)
    for got, want in zip(jax.tree.leaves(new_state.ema_params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_training_writes_the_workdir_contract(tiny_config, tmp_path):
    workdir = str(tmp_path / "run")
    state = train.train_and_evaluate(tiny_config, workdir)
    assert int(state.step) == 4
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f) == tiny_config.to_dict()
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    assert [r["step"] for r in records] == [2, 4]
    for record in records:
        assert {"d_loss", "g_loss", "steps_per_s", "images_per_s"} <= set(record)
        assert np.isfinite(record["d_loss"]) and record["images_per_s"] > 0
    assert sorted(os.listdir(os.path.join(workdir, "samples"))) == ["step_0000002.png", "step_0000004.png"]
    assert checkpoint.open_manager(workdir, read_only=True).all_steps() == [2, 4]


def test_same_seed_gives_bitwise_identical_runs(tiny_config, tmp_path):
    first = train.train_and_evaluate(tiny_config, str(tmp_path / "a"))
    second = train.train_and_evaluate(tiny_config, str(tmp_path / "b"))
    assert tree_equal(first, second)
    grid = "samples/step_0000004.png"
    assert files_digest(tmp_path / "a")[grid] == files_digest(tmp_path / "b")[grid]
    tiny_config.seed = 1
    other = train.train_and_evaluate(tiny_config, str(tmp_path / "c"))
    assert not tree_equal(first.g_params, other.g_params)


@pytest.fixture(params=["digits", "mocked_cifar10", "folder"])
def resumable_config(request, tiny_config, tmp_path):
    """The tiny config on each kind of source, with random crops and flips where they apply."""
    if request.param == "mocked_cifar10":
        tiny_config.data.name = "cifar10"
        tiny_config.data.random_flip = True
        with tfds.testing.mock_data(num_examples=40):
            yield tiny_config
        return
    if request.param == "folder":
        rng = np.random.default_rng(0)
        for style in ("ink", "watercolor"):
            os.makedirs(tmp_path / "art" / style)
            for i in range(6):
                pixels = rng.integers(0, 256, (40 + 3 * i, 50, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(tmp_path / "art" / style / f"{i}.png")
        tiny_config.data.folder = str(tmp_path / "art")
        tiny_config.data.image_size = 32
        tiny_config.data.crop = "random"
        tiny_config.data.random_flip = True
    yield tiny_config


def test_resume_after_a_stop_matches_an_uninterrupted_run(resumable_config, tmp_path):
    config = resumable_config
    config.steps = 6
    config.checkpoint_every = 3
    uninterrupted = train.train_and_evaluate(config, str(tmp_path / "whole"))

    # The same run, stopped just after its step-3 checkpoint: the later checkpoint never happened.
    # (A copy of the whole run's workdir: training it again would make the same files, bitwise.)
    workdir = tmp_path / "stopped"
    shutil.copytree(tmp_path / "whole", workdir)
    shutil.rmtree(workdir / "checkpoints" / "6")
    resumed = train.train_and_evaluate(config, str(workdir))

    assert int(resumed.step) == 6
    assert tree_equal(uninterrupted, resumed)
    with open(workdir / "metrics.jsonl") as f:
        assert [json.loads(line)["step"] for line in f] == [2, 4, 6]  # no duplicated steps


def test_finished_run_does_nothing(tiny_config, tmp_path, capsys):
    workdir = tmp_path / "run"
    train.train_and_evaluate(tiny_config, str(workdir))
    before = files_digest(workdir)
    train.train_and_evaluate(tiny_config, str(workdir))
    assert "already trained to step 4 of 4; nothing to do" in capsys.readouterr().out
    assert files_digest(workdir) == before
    # Safe keys may change on resume, and the change is reported.
    tiny_config.steps = 6
    tiny_config.log_every = 3
    assert int(train.train_and_evaluate(tiny_config, str(workdir)).step) == 6
    assert "Config changes since the last run" in capsys.readouterr().out


def test_resume_with_another_model_is_refused_and_leaves_the_workdir_untouched(tiny_config, tmp_path):
    workdir = tmp_path / "run"
    train.train_and_evaluate(tiny_config, str(workdir))
    before = files_digest(workdir)
    tiny_config.model.g_width = 16
    tiny_config.steps = 8
    with pytest.raises(UserError, match="model.g_width: 8 -> 16"):
        train.train_and_evaluate(tiny_config, str(workdir))
    assert files_digest(workdir) == before


def test_checkpoint_of_another_model_without_config_json_is_refused(tiny_config, tmp_path):
    workdir = tmp_path / "run"
    train.train_and_evaluate(tiny_config, str(workdir))
    os.remove(workdir / "config.json")  # e.g. checkpoints copied without it
    before = files_digest(workdir)
    tiny_config.model.d_width = 16
    tiny_config.steps = 8
    with pytest.raises(UserError, match=r"holds a run with another config \(model.d_width: 8 -> 16\)"):
        train.train_and_evaluate(tiny_config, str(workdir))
    assert files_digest(workdir) == before


def test_sampling_a_trained_run(tiny_config, tmp_path):
    workdir = str(tmp_path / "run")
    final = train.train_and_evaluate(tiny_config, workdir)
    gan = trained.load(workdir)
    assert gan.step == 4 and gan.class_names == tuple("0123456789")
    assert tree_equal(gan.state, final)
    images = gan.sample(seed=0, num=20, labels=[3, 7])
    assert images.shape == (20, 28, 28, 1) and images.dtype == np.float32
    assert images.min() >= -1 and images.max() <= 1
    # Image i depends on (seed, i, label) only: asking for more images keeps the first ones.
    np.testing.assert_array_equal(gan.sample(seed=0, num=10, labels=[3]), images[:10])
    assert not np.array_equal(gan.sample(seed=1, num=10, labels=[3]), images[:10])
    assert not np.array_equal(gan.sample(seed=0, num=10, labels=[3], use_ema=False), images[:10])
    assert trained.load(workdir, step=2).step == 2
    with pytest.raises(UserError, match=r"no checkpoint at step 3 .* steps \[2, 4\]"):
        trained.load(workdir, step=3)


def test_a_non_finite_step_changes_nothing_but_the_step(tiny_config, fixed_batch):
    generator, discriminator = train.build_models(tiny_config, (28, 28, 1), 10)
    state = initial_state(tiny_config, generator, discriminator)
    poisoned = dict(fixed_batch, image=fixed_batch["image"].at[0, 0, 0, 0].set(jnp.nan))
    new_state, metrics = jax.jit(train.make_step(tiny_config, generator, discriminator))(state, poisoned)
    assert float(metrics["skipped"]) == 1 and float(metrics["nonfinite_d_loss"]) == 1
    assert int(new_state.step) == 1
    assert tree_equal(new_state.replace(step=state.step), state)


def test_exploding_run_stops_with_a_clear_error_and_finite_checkpoints(tiny_config, tmp_path):
    tiny_config.optim.g_lr = tiny_config.optim.d_lr = 1e15  # parameters grow until float32 overflows
    tiny_config.optim.nonfinite = "stop"
    tiny_config.checkpoint_every = 1
    tiny_config.steps = 12
    workdir = tmp_path / "run"
    with pytest.raises(UserError, match=r"non-finite .* at step (\d+); stopped with the last checkpoint "
                                        r"\(step \d+\) intact"):
        train.train_and_evaluate(tiny_config, str(workdir))
    saved = trained.load(str(workdir)).state
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(saved))

    tiny_config.optim.nonfinite = "skip"
    state = train.train_and_evaluate(tiny_config, str(tmp_path / "skipping"))
    with open(tmp_path / "skipping" / "metrics.jsonl") as f:
        assert sum(json.loads(line)["skipped"] for line in f) > 0
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(state))


def test_the_train_step_compiles_once(tiny_config, tmp_path, caplog):
    tiny_config.steps = 6  # three logging intervals, three checkpoints, three sample grids
    with caplog.at_level(logging.WARNING, logger="jax"), jax.log_compiles(True):
        train.train_and_evaluate(tiny_config, str(tmp_path / "run"))
    step_compilations = [r for r in caplog.records if r.getMessage().startswith("Compiling jit(step)")]
    assert len(step_compilations) == 1


class BatchIndependentGenerator(flax.linen.Module):
    """A generator without batch norm: each sample depends on its own latent only, so a split batch
    must give the same update as the whole one."""

    num_classes: int = 0

    @flax.linen.compact
    def __call__(self, z, labels=None, train=True):
        return jnp.tanh(flax.linen.Dense(28 * 28)(z)).reshape(-1, 28, 28, 1)


@pytest.mark.parametrize("n_dis", [1, 2])
def test_gradient_accumulation_gives_the_full_batch_update(tiny_config, n_dis):
    tiny_config.data.label_key = ""
    tiny_config.optim.n_dis = n_dis
    tiny_config.loss.r1_gamma, tiny_config.loss.r1_every = 1.0, 1  # a penalty without random draws
    generator = BatchIndependentGenerator()
    _, discriminator = train.build_models(tiny_config, (28, 28, 1), 0)  # spectrally normalised
    images = jax.random.uniform(jax.random.key(7), (8 * n_dis, 28, 28, 1), minval=-1.0, maxval=1.0)
    batch = {"image": images, "label": jnp.zeros((8 * n_dis,), jnp.int32)}
    results = {}
    for accum in (1, 4):
        tiny_config.optim.grad_accum = accum
        state = initial_state(tiny_config, generator, discriminator)
        step = jax.jit(train.make_step(tiny_config, generator, discriminator))
        for _ in range(2):
            state, metrics = step(state, batch)
        results[accum] = state, metrics
    (whole, whole_metrics), (split, split_metrics) = results[1], results[4]
    for name in ("d_loss", "g_loss", "d_real", "d_fake", "r1"):
        np.testing.assert_allclose(split_metrics[name], whole_metrics[name], rtol=1e-4, atol=1e-6, err_msg=name)
    for name in ("g_params", "d_params", "d_batch_stats", "ema_params"):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=name),
                     getattr(split, name), getattr(whole, name))
    # The update moved the parameters by far more than the tolerance: the comparison can fail.
    initial = initial_state(tiny_config, generator, discriminator)
    assert not tree_equal(jax.tree.map(lambda a: np.round(a, 3), initial.d_params),
                          jax.tree.map(lambda a: np.round(a, 3), whole.d_params))


def test_gradient_accumulation_trains_batch_norm_models(tiny_config, fixed_batch):
    tiny_config.optim.grad_accum = 2
    generator, discriminator = train.build_models(tiny_config, (28, 28, 1), 10)
    state = initial_state(tiny_config, generator, discriminator)
    new_state, metrics = jax.jit(train.make_step(tiny_config, generator, discriminator))(state, fixed_batch)
    assert float(metrics["skipped"]) == 0
    for name in ("g_params", "d_params", "g_batch_stats", "d_batch_stats"):
        assert not tree_equal(getattr(state, name), getattr(new_state, name)), name


def test_gradient_accumulation_that_does_not_divide_the_batch_is_refused(tiny_config):
    tiny_config.optim.grad_accum = 3
    with pytest.raises(UserError, match=r"grad_accum=3 does not divide the batch of 8 per device .* divisor of 8"):
        train.validate(tiny_config)


def test_mlp_init_std_on_a_conv_net_is_refused(tiny_config):
    tiny_config.model.mlp_init_std = 0.02  # tiny_config is a DCGAN: the key would change nothing
    with pytest.raises(UserError, match=r"mlp_init_std=0.02 must be >= 0 and is for --config.model.name=mlp only"):
        train.validate(tiny_config)


def test_the_2d_mlp_on_pictures_is_refused_before_its_keys(tiny_config):
    tiny_config.model.name = "mlp"
    tiny_config.model.mlp_init_std = 0.02  # valid for the mlp: the data is what does not fit
    with pytest.raises(UserError, match=r"model.name=mlp does not fit the data's image samples; use mlp for the 2-D"):
        train.validate(tiny_config)
