"""Feature networks behind one interface: images float [N, H, W, C] in [-1, 1] -> (features, logits).

- `digit_features`: the project's digit classifier (jaxgan.classifier), 128-d penultimate features
  and 10 logits, for 28x28 grey digits only ("classifier FID", offline).
- `inception_features`: pytorch-fid's Inception-v3 (jaxgan.inception), 2048-d pool3 features and
  1008 logits, any image size, resized to 299x299 (the standard FID protocol; needs its weight file).
"""

import dataclasses
import functools
from collections.abc import Callable

import jax
import numpy as np

from jaxgan import classifier, inception
from jaxgan.errors import UserError


@dataclasses.dataclass(frozen=True)
class FeatureNetwork:
    """A feature network compiled for one batch size.

    Attributes:
      name: names the network and its weights; part of every cached reference-statistics key.
      description: what it is, reported beside its numbers.
      resize: how images reach its input, reported beside its numbers.
      embed_batch: images float32 [batch_size, H, W, C] in [-1, 1] -> (features [batch_size, D],
        logits [batch_size, K]).
      batch_size: the one batch size embed_batch is called with (the last batch is zero-padded), so
        a sample's features do not depend on what else is embedded with it.
    """

    name: str
    description: str
    resize: str
    embed_batch: Callable
    batch_size: int

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """images float [N, H, W, C] in [-1, 1] -> (features float32 [N, D], logits float32 [N, K])."""
        images = np.asarray(images, np.float32)
        features, logits = [], []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            padded = np.pad(chunk, [(0, self.batch_size - len(chunk))] + [(0, 0)] * 3)
            chunk_features, chunk_logits = self.embed_batch(padded)
            features.append(np.asarray(chunk_features, np.float32)[:len(chunk)])
            logits.append(np.asarray(chunk_logits, np.float32)[:len(chunk)])
        return np.concatenate(features), np.concatenate(logits)


def digit_features(seed: int = 0, data_dir: str | None = None, batch_size: int = 500) -> FeatureNetwork:
    """The digit classifier of `seed` (trained once, then cached in the TFDS data dir)."""
    digits = classifier.load_or_train_digit_classifier(seed, data_dir)

    def embed_batch(images):
        if images.shape[1:] != (28, 28, 1):
            raise UserError(f"the digit classifier reads 28x28 grey digits, not images of shape {images.shape[1:]}; "
                            f"use --features inception")
        return digits.embed(images, batch_size)

    return FeatureNetwork(
        name=f"digit_classifier_seed{seed}_v{classifier.TRAINING_VERSION}",
        description=(f"digit classifier (seed {seed}, {100 * digits.held_out_accuracy:.1f} % on the held-out "
                     f"jaxgan_digits test split), 128-d penultimate features"),
        resize="none (28x28 grey input)",
        embed_batch=embed_batch, batch_size=batch_size)


def inception_features(weights_path: str | None = None, batch_size: int = 50) -> FeatureNetwork:
    """pytorch-fid's Inception-v3 with the 2015-12-05 weights (see jaxgan.inception.find_weights)."""
    variables = inception.load_variables(weights_path)
    network = inception.FIDInceptionV3()
    # The weights are an argument, not constants folded into the compiled program.
    apply = jax.jit(lambda variables, images: network.apply(variables, inception.resize_for_inception(images)))
    embed_batch = functools.partial(apply, variables)
    return FeatureNetwork(
        name="inception_2015_12_05_pytorch_fid_bilinear299",
        description="Inception-v3 2015-12-05 (pytorch-fid weights), 2048-d pool3 features",
        resize="bilinear to 299x299 (align_corners=False, no antialiasing, as pytorch-fid); grey repeated to RGB",
        embed_batch=embed_batch, batch_size=batch_size)
