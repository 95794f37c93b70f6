"""Every config in configs/ loads, names its data, and builds models that fit that data."""

import glob
import importlib.util
import os

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from conftest import ROOT
from jaxgan import data, train

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


@pytest.mark.parametrize("path", CONFIG_FILES, ids=[os.path.basename(p) for p in CONFIG_FILES])
def test_config_builds_its_models_on_its_data(path, data_dir, tmp_path):
    config = load_config(path)
    assert REQUIRED_KEYS <= set(config.keys())
    config.data.data_dir = data_dir
    if config.data.name == "jaxgan_folder":
        os.makedirs(tmp_path / "art" / "style")
        Image.fromarray(np.zeros((70, 90, 3), np.uint8)).save(tmp_path / "art" / "style" / "a.png")
        config.data.folder = str(tmp_path / "art")
    train.validate(config)
    with tfds.testing.mock_data(num_examples=4):  # every dataset mocked: this checks shapes, not files
        dataset = data.open_dataset(config.data)
        pipeline = data.Pipeline.from_config(dataset, config)
        batch = pipeline.batch(0)
    assert batch["image"].shape == (config.batch_size, *pipeline.image_shape)
    generator, discriminator = train.build_models(config, pipeline.image_shape, dataset.num_classes)
    state = jax.eval_shape(lambda: train.init_state(config, generator, discriminator, pipeline.image_shape))
    assert int(np.prod(state.step.shape)) == 1


def test_the_required_configs_exist():
    names = {os.path.basename(p) for p in CONFIG_FILES}
    assert {"default.py", "mnist.py", "fashion_mnist.py", "cifar10_dcgan.py", "celeb_a.py", "svhn_cropped.py",
            "folder.py", "textures.py"} <= names
