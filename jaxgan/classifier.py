"""A small CNN digit classifier trained on jaxgan_digits, to measure conditional generators offline.

It learns from the `train` split (the one the GANs see) and reports its accuracy on the held-out
`test` split, so its own error is known beside every figure it produces. Its penultimate layer is
the feature space of "classifier FID" (`jaxgan.features.digit_features`); its argmax labels the
samples of conditional digit GANs (`accuracy_per_class`).
"""

import dataclasses
import json
import os
from typing import Any

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan import data
from jaxgan.errors import UserError

DIGIT_CLASS_NAMES = tuple(str(digit) for digit in range(10))
EPOCHS = 8
# Part of the cache key: bump it whenever the network or its training changes, so that a cached
# classifier is never one that this code would not train.
TRAINING_VERSION = 1


@jax.custom_vjp
def max_pool_2x2(x: jax.Array) -> jax.Array:
    """`nn.max_pool(x, (2, 2), (2, 2))`, float [N, H, W, C] with even H, W -> [N, H/2, W/2, C], with the
    same gradient (to the first maximum of each block in row-major order) computed 10 times faster on
    XLA:CPU than its select-and-scatter, which took most of the classifier's training time."""
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _max_pool_forward(x):
    return max_pool_2x2(x), x


def _max_pool_backward(x, grad):
    n, h, w, c = x.shape
    blocks = x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4).reshape(n, h // 2, w // 2, c, 4)
    first_max = jnp.argmax(blocks, axis=-1)[..., None] == jnp.arange(4)
    routed = jnp.where(first_max, grad[..., None], 0.0).reshape(n, h // 2, w // 2, c, 2, 2)
    return (routed.transpose(0, 1, 4, 2, 5, 3).reshape(n, h, w, c),)


max_pool_2x2.defvjp(_max_pool_forward, _max_pool_backward)


class DigitClassifier(nn.Module):
    """images float [N, 28, 28, 1] in [-1, 1] -> (features float [N, 128] >= 0, logits float [N, 10])."""

    @nn.compact
    def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = max_pool_2x2(nn.relu(nn.Conv(32, (3, 3))(images)))
        x = max_pool_2x2(nn.relu(nn.Conv(64, (3, 3))(x)))
        features = nn.relu(nn.Dense(128)(x.reshape(x.shape[0], -1)))
        return features, nn.Dense(10)(features)


@dataclasses.dataclass(frozen=True)
class TrainedClassifier:
    params: Any
    held_out_accuracy: float  # on jaxgan_digits' test split, never seen in training

    def embed(self, images: np.ndarray, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """images float [N, 28, 28, 1] in [-1, 1] -> (features float32 [N, 128], logits float32 [N, 10])."""
        outputs = [_apply(self.params, images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
        return tuple(np.concatenate([np.asarray(o[part]) for o in outputs]) for part in (0, 1))

    def predict(self, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """int [N] predicted digit of images float [N, 28, 28, 1] in [-1, 1]."""
        return np.argmax(self.embed(images, batch_size)[1], axis=-1)


_apply = jax.jit(lambda params, images: DigitClassifier().apply({"params": params}, images))


def accuracy_per_class(predicted: np.ndarray, requested: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """float64 [num_classes]: for each class, the fraction of the samples asked for it that were labelled it.

    Args:
      predicted, requested: int [N] labels from the classifier and the labels the generator was given.
        A class never requested gets NaN.
    """
    correct = np.asarray(predicted) == np.asarray(requested)
    return np.array([correct[requested == c].mean() if np.any(requested == c) else np.nan
                     for c in range(num_classes)])


def require_digits_run(class_names, workdir: str) -> None:
    """Raises UserError unless a run's classes are the digits 0-9, the only ones the classifier knows."""
    if tuple(class_names) != DIGIT_CLASS_NAMES:
        raise UserError(f"{workdir} was not trained on the digits 0-9 (its classes: "
                        f"{', '.join(class_names) or 'none'}); the digit classifier measures digit runs only: "
                        f"pass a digits run or use --features inception")


def load_or_train_digit_classifier(seed: int = 0, data_dir: str | None = None) -> TrainedClassifier:
    """The classifier of `seed`, trained once and then read from the cache in the TFDS data dir.

    Cached as `jaxgan_cache/digit_classifier/seed{seed}-epochs{EPOCHS}-v{TRAINING_VERSION}-jax{version}.msgpack`
    (its parameters) beside a .json holding its held-out accuracy. The jax version is in the name
    because another jax trains another classifier from the same seed (0.12.0.1 and 0.12.1: 97.9 and
    97.6 % held-out for seed 0), and every figure read by it would change with it.
    """
    stem = os.path.join(data.cache_dir(data_dir), "digit_classifier",
                        f"seed{seed}-epochs{EPOCHS}-v{TRAINING_VERSION}-jax{jax.__version__}")
    if os.path.exists(stem + ".json"):
        with open(stem + ".msgpack", "rb") as f:
            params = flax.serialization.msgpack_restore(f.read())
        with open(stem + ".json") as f:
            return TrainedClassifier(params, json.load(f)["held_out_accuracy"])
    classifier = train_digit_classifier(seed, EPOCHS, data_dir=data_dir)
    os.makedirs(os.path.dirname(stem), exist_ok=True)
    # Each file appears whole through a rename, the .json last: a cache entry is complete or absent,
    # even with two processes training the same classifier at once.
    params = flax.serialization.msgpack_serialize(jax.tree.map(np.asarray, classifier.params))
    summary = json.dumps({"seed": seed, "epochs": EPOCHS, "held_out_accuracy": classifier.held_out_accuracy})
    for suffix, content in ((".msgpack", params), (".json", summary.encode())):
        with open(f"{stem}{suffix}.{os.getpid()}.tmp", "wb") as f:
            f.write(content)
        os.replace(f"{stem}{suffix}.{os.getpid()}.tmp", stem + suffix)
    return classifier


def train_digit_classifier(seed: int = 0, epochs: int = EPOCHS, batch_size: int = 64,
                           data_dir: str | None = None) -> TrainedClassifier:
    """Trains on jaxgan_digits/train with small random shifts (about 30 s on 2 CPU cores)."""
    train_set = data.load_dataset("jaxgan_digits", "train", "label", data_dir)
    test_set = data.load_dataset("jaxgan_digits", "test", "label", data_dir)
    everything = data.Pipeline(train_set, seed, batch_size=len(train_set)).batch(0)  # one shuffled epoch
    model = DigitClassifier()
    key = jax.random.key(seed)
    params = model.init(key, jnp.zeros((1, 28, 28, 1)))["params"]
    tx = optax.adam(1e-3)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, images, labels, key):
        # Shift by up to 2 pixels: generated digits are not centred exactly like MNIST's.
        shift = jax.random.randint(key, (2,), -2, 3)
        images = jnp.roll(images, shift, axis=(1, 2))

        def loss_fn(p):
            _, logits = model.apply({"params": p}, images)
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        grads = jax.grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        order = rng.permutation(len(train_set))
        for i in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[i:i + batch_size]
            params, opt_state = step(params, opt_state, everything["image"][idx], everything["label"][idx],
                                     jax.random.fold_in(key, epoch * 10_000 + i))
    held_out = data.Pipeline(test_set, seed, batch_size=len(test_set)).batch(0)
    classifier = TrainedClassifier(params, 0.0)
    accuracy = float(np.mean(classifier.predict(held_out["image"]) == held_out["label"]))
    return dataclasses.replace(classifier, held_out_accuracy=accuracy)
