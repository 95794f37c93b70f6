"""Every config in configs/ loads, names its data and traces its train step on that data's shapes;
one config of each model family, at its smallest images, also trains and checkpoints."""

import glob
import importlib.util
import os

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from conftest import ROOT, tree_equal
from jaxgan import checkpoint, data, train

CONFIG_FILES = sorted(glob.glob(os.path.join(ROOT, "configs", "*.py")))
REQUIRED_KEYS = {"seed", "steps", "batch_size", "data", "model", "loss", "optim", "log_every",
                 "checkpoint_every", "sample_every", "eval_every"}


def load_config(path):
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for part in ("Command:", "Expect:", "Anchor:", "Time:"):
        assert part in module.__doc__, f"{path}: the docstring states no {part}"
    return module.get_config()


def shrunk(config):
    """`config` at a width and batch that train in seconds; everything else (architecture, loss,
    penalties, augmentation, schedule, image size: but see the folder configs below) as the config has it."""
    config.batch_size = 4
    config.model.g_width = config.model.d_width = 8
    config.model.mapping_layers = min(config.model.mapping_layers, 2)
    return config


# Compiling a step takes most of this file's time: the other configs of a family differ in data,
# image size and settings that tracing the step at their shapes checks.
TRAINED_CONFIGS = {"default.py", "digits_sngan.py", "digits_biggan.py", "folder_stylegan2.py", "ring8.py"}


def test_the_trained_configs_cover_every_model_family():
    families = {os.path.basename(path): load_config(path).model.name for path in CONFIG_FILES}
    assert {families[name] for name in TRAINED_CONFIGS} == set(families.values())


@pytest.mark.parametrize("path", CONFIG_FILES, ids=[os.path.basename(p) for p in CONFIG_FILES])
def test_config_traces_its_step_and_its_family_trains_and_round_trips_a_checkpoint(path, data_dir, tmp_path):
    config = shrunk(load_config(path))
    assert REQUIRED_KEYS <= set(config.keys())
    config.data.data_dir = data_dir
    if config.data.name == "jaxgan_folder":
        for style in ("ink", "oil"):
            os.makedirs(tmp_path / "art" / style)
            Image.fromarray(np.zeros((70, 90, 3), np.uint8)).save(tmp_path / "art" / style / "a.png")
        config.data.folder = str(tmp_path / "art")
        # Any size suits a folder; at 16 px StyleGAN2 compiles fastest (celeb_a64_* trace these networks at 64).
        config.data.image_size = 16
    train.validate(config)
    with tfds.testing.mock_data(num_examples=8):  # every dataset mocked: this checks shapes, not files
        dataset = data.open_dataset(config.data)
        pipeline = data.make_pipeline(dataset, config)
        batches = [pipeline.batch(step) for step in range(2)]
    assert batches[0]["image"].shape == (config.batch_size * config.optim.n_dis, *pipeline.image_shape)
    generator, discriminator = train.build_models(config, pipeline.image_shape, dataset.num_classes)
    # Traced once, as train.py does: its output shapes are the abstract state.
    traced_init = jax.jit(lambda: train.init_state(config, generator, discriminator, pipeline.image_shape)).trace()
    abstract_state = traced_init.out_info
    step = train.make_step(config, generator, discriminator)
    abstract_next, abstract_metrics = jax.eval_shape(step, abstract_state, batches[0])
    assert jax.tree.map(lambda x: (x.shape, x.dtype), abstract_next) == jax.tree.map(
        lambda x: (x.shape, x.dtype), abstract_state)  # the state keeps its shapes: no recompilation
    assert abstract_metrics["d_loss"].shape == ()
    if os.path.basename(path) not in TRAINED_CONFIGS:
        return

    # Compiled whole, as train.py does: run op by op, init would compile each of its hundreds of ops.
    state = traced_init.lower().compile()()
    step = jax.jit(step)
    for batch in batches:
        new_state, metrics = step(state, batch)
        assert float(metrics["skipped"]) == 0 and np.isfinite(float(metrics["d_loss"]))
        assert not tree_equal(new_state.g_params, state.g_params) and not tree_equal(new_state.d_params, state.d_params)
        state = new_state
    assert int(state.step) == 2

    manager = checkpoint.open_manager(str(tmp_path / "run"))
    checkpoint.save(manager, state, config, pipeline.image_shape, dataset.class_names)
    manager.wait_until_finished()
    restored = checkpoint.restore(manager, 2, checkpoint.restore_meta(manager, 2), abstract_state,
                                  jax.sharding.SingleDeviceSharding(jax.devices()[0]))
    manager.close()
    assert tree_equal(restored, state)


def test_the_required_configs_exist():
    names = {os.path.basename(p) for p in CONFIG_FILES}
    assert {"default.py", "mnist_dcgan.py", "fashion_mnist.py", "cifar10_dcgan.py", "celeb_a64_dcgan.py",
            "svhn_cropped.py", "folder.py", "textures.py", "cifar10_sngan.py", "cifar10_biggan.py",
            "celeb_a64_stylegan2.py", "folder_stylegan2.py", "digits_sngan.py", "digits_biggan.py", "ring8.py",
            "grid25.py"} <= names
