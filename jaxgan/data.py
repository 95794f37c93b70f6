"""Input pipeline: a TFDS dataset read by random access -> host numpy batch -> global sharded array.

The order of examples is a pure function of (seed, step): step s reads examples s*B .. (s+1)*B - 1
of an endless stream made of seeded permutations of the dataset, one per epoch. So the data position
of a run is its step, resume is exact without saving an iterator, and every process of a multi-host
run computes the same global order and reads only its own slice of it.

Datasets are read through `tfds.builder(...).as_data_source(split)` (array_record files), which
serves any example by index. jaxgan's own datasets (see `jaxgan.datasets`) are built on first use;
other TFDS datasets must have been prepared in array_record format beforehand.
"""

import dataclasses
from collections.abc import Sequence

import jax
import numpy as np
import tensorflow_datasets as tfds

import jaxgan.datasets  # noqa: F401  (registers jaxgan's local TFDS builders)
from jaxgan.errors import UserError

tfds.disable_progress_bar()


@dataclasses.dataclass(frozen=True)
class ImageDataset:
    """Random access to one split of an image dataset.

    Attributes:
      source: sequence of examples (dicts of numpy arrays) with `__getitems__`.
      image_shape: (H, W, C) of every image.
      label_key: feature holding the class label, or None for an unconditional dataset.
      class_names: the name of each class (empty when unconditional).
    """

    source: Sequence
    image_shape: tuple[int, int, int]
    label_key: str | None
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.source)

    def read(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Returns {"image": float32 [N, H, W, C] in [-1, 1], "label": int32 [N]} (label 0 when unconditional)."""
        examples = self.source.__getitems__([int(i) for i in indices])
        images = np.stack([e["image"] for e in examples]).astype(np.float32) / 127.5 - 1.0
        if self.label_key is None:
            labels = np.zeros(len(examples), np.int32)
        else:
            labels = np.array([e[self.label_key] for e in examples], np.int32)
        return {"image": images, "label": labels}


def load_dataset(name: str, split: str, label_key: str | None, data_dir: str | None = None) -> ImageDataset:
    """Opens `split` of the TFDS dataset `name`, building jaxgan's local datasets on first use."""
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise UserError(f"unknown dataset '{name}': set --config.data.name to a TFDS dataset "
                        f"(e.g. mnist) or a jaxgan one (jaxgan_digits)") from None
    if not builder.is_prepared():
        if name.startswith("jaxgan_"):
            builder.download_and_prepare(file_format="array_record")
        else:
            raise UserError(
                f"dataset '{name}' is not prepared in {builder.data_dir}: on a machine with network run "
                f"`python -c \"import tensorflow_datasets as tfds; tfds.builder('{name}', data_dir='DIR')"
                f".download_and_prepare(file_format='array_record')\"` and pass --config.data.data_dir=DIR")
    features = builder.info.features
    if "image" not in features:
        raise UserError(f"dataset '{name}' has no 'image' feature; pick an image dataset")
    if label_key is not None and label_key not in features:
        raise UserError(f"dataset '{name}' has no feature '{label_key}'; set --config.data.label_key "
                        f"to one of {sorted(features.keys())} or to None for an unconditional GAN")
    if split not in builder.info.splits:
        raise UserError(f"dataset '{name}' has no split '{split}'; "
                        f"set --config.data.split to one of {sorted(builder.info.splits.keys())}")
    try:
        source = builder.as_data_source(split)
    except Exception as e:  # Prepared in another file format: tfds names it in the message.
        raise UserError(f"dataset '{name}' cannot be read by index ({e}); "
                        f"prepare it again with file_format='array_record'") from None
    class_names = tuple(features[label_key].names) if label_key is not None else ()
    return ImageDataset(source, tuple(features["image"].shape), label_key, class_names)


def global_batch_indices(seed: int, step: int, batch_size: int, num_examples: int) -> np.ndarray:
    """Indices int64 [batch_size] of the examples the whole run reads at `step`.

    Position p = step * batch_size + j of the stream is example perm_e[p mod N] with e = p // N and
    perm_e a permutation drawn from (seed, e): every example once per epoch, a new order each epoch.
    """
    positions = step * batch_size + np.arange(batch_size, dtype=np.int64)
    epochs, offsets = np.divmod(positions, num_examples)
    indices = np.empty(batch_size, np.int64)
    for epoch in np.unique(epochs):
        permutation = np.random.default_rng([seed, int(epoch)]).permutation(num_examples)
        mask = epochs == epoch
        indices[mask] = permutation[offsets[mask]]
    return indices


def host_batch(dataset: ImageDataset, seed: int, step: int, batch_size: int) -> dict[str, np.ndarray]:
    """This process's contiguous slice of the global batch at `step` (all of it on one host)."""
    indices = global_batch_indices(seed, step, batch_size, len(dataset))
    per_process = batch_size // jax.process_count()
    start = jax.process_index() * per_process
    return dataset.read(indices[start:start + per_process])


def to_global(batch: dict[str, np.ndarray], sharding: jax.sharding.Sharding) -> dict[str, jax.Array]:
    """Assembles each process's slice into one global array sharded over the mesh's "data" axis."""
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}
