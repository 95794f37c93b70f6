"""A small CNN digit classifier trained on jaxgan_digits, to measure conditional generators offline.

It learns from the `train` split (the one the GANs see) and reports its accuracy on the held-out
`test` split, so its own error is known beside every figure it produces.
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan import data


class DigitClassifier(nn.Module):
    """images float [N, 28, 28, 1] in [-1, 1] -> logits float [N, 10]."""

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        x = nn.relu(nn.Conv(32, (3, 3))(images))
        x = nn.max_pool(x, (2, 2), (2, 2))
        x = nn.relu(nn.Conv(64, (3, 3))(x))
        x = nn.max_pool(x, (2, 2), (2, 2))
        x = nn.relu(nn.Dense(128)(x.reshape(x.shape[0], -1)))
        return nn.Dense(10)(x)


@dataclasses.dataclass(frozen=True)
class TrainedClassifier:
    params: Any
    held_out_accuracy: float  # on jaxgan_digits' test split, never seen in training

    def predict(self, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """int [N] predicted digit of images float [N, 28, 28, 1] in [-1, 1]."""
        apply = jax.jit(lambda p, x: jnp.argmax(DigitClassifier().apply({"params": p}, x), -1))
        return np.concatenate([np.asarray(apply(self.params, images[i:i + batch_size]))
                               for i in range(0, len(images), batch_size)])


def train_digit_classifier(seed: int = 0, epochs: int = 8, batch_size: int = 64,
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
            logits = model.apply({"params": p}, images)
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
