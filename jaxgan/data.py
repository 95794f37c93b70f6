"""Input pipeline: a TFDS dataset read by random access -> host numpy batch -> global sharded array.

One path for every source of pictures: TFDS datasets, jaxgan's own (`jaxgan_digits`,
`jaxgan_textures`) and a user's folder of pictures (`jaxgan_folder`), all read through
`builder.as_data_source(split)` (array_record files), which serves any example by index; Stacked
MNIST (`jaxgan_stacked_digits`) stacks three of jaxgan_digits' pictures per example. The 2-D
Gaussian mixtures of `jaxgan.mixtures` (`ring8`, `grid25`) are drawn on the fly instead
(`MixturePipeline`), with the same interface and the same (seed, step) determinism.

The order is a pure function of (seed, step): step s reads positions s*B .. (s+1)*B - 1 of an
endless stream made of seeded permutations of the examples, one per epoch, and the random crop and
flip of position j of step s come from a generator seeded with (seed, s, j). So the data position
of a run is its step: resume is exact without saving an iterator, and every process of a multi-host
run computes the same global order and reads only its own slice of it.

Datasets whose decoded images fit in `data.cache_mb` (1 GiB by default: MNIST, CIFAR-10, a few
thousand pictures of a folder, the textures) are decoded once into memory; larger ones are decoded
as they are read. Batches are prepared by a thread pool ahead of the step that needs them.
"""

import collections
import concurrent.futures
import copy
import dataclasses
import functools
import os
from collections.abc import Callable, Iterator, Sequence

import jax
import ml_collections
import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from jaxgan import mixtures
from jaxgan.datasets import folder as folder_dataset
from jaxgan.datasets.build_lock import build_lock
from jaxgan.errors import UserError

tfds.disable_progress_bar()

# How far a random crop may zoom in: its side is this fraction (or more) of the shorter side.
RANDOM_CROP_MIN_SCALE = 0.8


@dataclasses.dataclass(frozen=True)
class ImageDataset:
    """Random access to the raw examples of one split.

    Attributes:
      source: sequence of examples, each a dict with "image" uint8 [H, W, C] (and the label feature).
      label_key: feature holding the class label, or None for an unconditional dataset.
      class_names: the name of each class (empty when unconditional).
      image_shape: (H, W, C) when every image has it, else (None, None, C).
    """

    source: Sequence
    label_key: str | None
    class_names: tuple[str, ...]
    image_shape: tuple

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.source)


def load_dataset(name: str, split: str, label_key: str | None, data_dir: str | None = None) -> ImageDataset:
    """Opens `split` of the TFDS dataset `name`, building jaxgan's local datasets on first use."""
    advice = "set --config.data.name to a TFDS dataset (e.g. mnist) or a jaxgan one (jaxgan_digits, jaxgan_textures)"
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise UserError(f"unknown dataset {name!r}: {advice}") from None
    except Exception as e:  # noqa: BLE001  (names TFDS cannot parse, "3"; versions it lacks, "mnist:9.9.9"; ...)
        reason = " ".join(str(e).split())[:200]
        raise UserError(f"cannot open dataset {name!r} ({reason}): {advice}") from None
    if name.startswith("jaxgan_") and not builder.is_prepared():
        with build_lock(builder):
            builder = tfds.builder(name, data_dir=data_dir)
            if not builder.is_prepared():  # else a run started beside this one built it meanwhile
                builder.download_and_prepare(file_format="array_record")
    return _open_split(builder, name, split, label_key)


def load_folder(folder: str, image_size: int, patches: int, bad_images: str,
                data_dir: str | None = None) -> ImageDataset:
    """Opens a folder of pictures (one sub-folder per style), building its TFDS dataset on first use.

    Pictures are stored with their shorter side at most 2 * image_size (room for random crops), or
    1024 px in patch mode, where crops are taken at the pictures' own scale.
    """
    max_shorter_side = 1024 if patches else 2 * image_size
    builder = folder_dataset.builder(folder, max_shorter_side, bad_images, data_dir)
    return _open_split(builder, "jaxgan_folder", "train", "label" if builder.builder_config.listing.class_names
                       else None)


def _open_split(builder, name: str, split: str, label_key: str | None) -> ImageDataset:
    features = builder.info.features
    if "image" not in features:
        raise UserError(f"dataset '{name}' has no 'image' feature; pick an image dataset")
    if label_key is not None and label_key not in features:
        raise UserError(f"dataset '{name}' has no feature '{label_key}'; set --config.data.label_key "
                        f"to one of {sorted(features.keys())} or to '' for an unconditional GAN")
    if label_key is not None and not isinstance(features[label_key], tfds.features.ClassLabel):
        raise UserError(f"feature '{label_key}' of dataset '{name}' is not a class label; "
                        f"set --config.data.label_key to a ClassLabel feature or to ''")
    if builder.info.splits and split not in builder.info.splits:
        raise UserError(f"dataset '{name}' has no split '{split}'; "
                        f"set --config.data.split to one of {sorted(builder.info.splits.keys())}")
    try:
        source = builder.as_data_source(split)
    except Exception as e:  # noqa: BLE001  (TFDS raises several types for files that are not there)
        if not builder.is_prepared():
            raise UserError(
                f"dataset '{name}' is not prepared in {builder.data_dir} and this run does not download: "
                f"on a machine with network run `python -c \"import tensorflow_datasets as tfds; "
                f"tfds.builder('{name}', data_dir='DIR').download_and_prepare(file_format='array_record')\"`, "
                f"copy DIR here and pass --config.data.data_dir=DIR") from None
        raise UserError(f"dataset '{name}' cannot be read by index ({' '.join(str(e).split())[:200]}); "
                        f"prepare it again with file_format='array_record'") from None
    class_names = tuple(features[label_key].names) if label_key is not None else ()
    return ImageDataset(source, label_key, class_names, tuple(features["image"].shape))


def cache_dir(data_dir: str | None) -> str:
    """Where jaxgan keeps what it computes once from datasets (a trained classifier, reference
    statistics): `jaxgan_cache/` in the TFDS data dir, so it travels with the data it came from."""
    return os.path.join(data_dir or tfds.core.constants.DATA_DIR, "jaxgan_cache")


# Stacked MNIST (Metz et al. 2017; PacGAN's protocol): 128,000 pictures of three digits as R, G, B.
STACKED_DIGITS = "jaxgan_stacked_digits"
STACKED_DIGITS_COUNT = 128_000
_STACKED_DIGITS_SEED = 20170224  # fixed: the stacked training set must never change between versions


class StackedDigits(Sequence):
    """Example i: three digits of `digits`, drawn once from a fixed seed, stacked as the R, G, B channels.

    digits: uint8 [M, 28, 28, 1]. Example i is {"image": uint8 [28, 28, 3]}; its mode is the triple
    of the three digits' labels (1,000 modes).
    """

    def __init__(self, digits: np.ndarray):
        self.digits = digits
        self.triples = np.random.default_rng(_STACKED_DIGITS_SEED).integers(len(digits),
                                                                              size=(STACKED_DIGITS_COUNT, 3))

    def __len__(self) -> int:
        return len(self.triples)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return {"image": np.concatenate(self.digits[self.triples[index]], axis=-1)}


def load_stacked_digits(split: str, data_dir: str | None) -> ImageDataset:
    """Stacked MNIST made from the `split` digits of jaxgan_digits (read through TFDS like any dataset)."""
    digits = load_dataset("jaxgan_digits", split, None, data_dir)
    images = np.stack([np.asarray(digits.source[i]["image"]) for i in range(len(digits))])
    return ImageDataset(StackedDigits(images), None, (), (28, 28, 3))


@dataclasses.dataclass(frozen=True)
class MixtureDataset:
    """The 2-D Gaussian mixture `name` of `jaxgan.mixtures`: unconditional samples float32 [2]."""

    name: str
    label_key = None
    class_names = ()
    image_shape = (2,)
    num_classes = 0


def is_mixture(data_config: ml_collections.ConfigDict) -> bool:
    """Whether `data_config` names a 2-D mixture of `jaxgan.mixtures` (drawn on the fly), not pictures."""
    return data_config.name in mixtures.MIXTURES and not data_config.folder


def open_dataset(data_config: ml_collections.ConfigDict) -> ImageDataset | MixtureDataset:
    """The dataset that `data_config` names: `data.folder` when set, else the TFDS dataset or the
    2-D mixture `data.name`.

    `data.name = "jaxgan_folder"` (configs/folder.py) requires `data.folder`.
    """
    if is_mixture(data_config):
        if data_config.label_key:
            raise UserError(f"the 2-D mixture {data_config.name} has no labels; set --config.data.label_key=''")
        return MixtureDataset(data_config.name)
    data_dir = data_config.data_dir or None
    if data_config.name == STACKED_DIGITS and not data_config.folder:
        if data_config.label_key:
            raise UserError(f"{STACKED_DIGITS} is unconditional; set --config.data.label_key=''")
        return load_stacked_digits(data_config.split, data_dir)
    if data_config.name == "jaxgan_folder" and not data_config.folder:
        raise UserError("no folder of pictures given: pass --config.data.folder=PATH")
    if data_config.folder:
        if data_config.image_size <= 0:
            raise UserError("a folder of pictures needs --config.data.image_size (e.g. 64)")
        return load_folder(data_config.folder, data_config.image_size, data_config.patches,
                           data_config.bad_images, data_dir)
    return load_dataset(data_config.name, data_config.split, data_config.label_key or None, data_dir)


def global_batch_indices(seed: int, step: int, batch_size: int, num_examples: int,
                         epoch_order: Callable[[int, int, int], np.ndarray] | None = None) -> np.ndarray:
    """Indices int64 [batch_size] of the examples the whole run reads at `step`.

    Position p = step * batch_size + j of the stream is example perm_e[p mod N] with e = p // N and
    perm_e = epoch_order(seed, e, N), a permutation drawn from (seed, e): every example once per
    epoch, a new order each epoch. `epoch_order` defaults to `draw_epoch_order`; a Pipeline passes
    its cached copy of it.
    """
    epoch_order = epoch_order or draw_epoch_order
    positions = step * batch_size + np.arange(batch_size, dtype=np.int64)
    epochs, offsets = np.divmod(positions, num_examples)
    indices = np.empty(batch_size, np.int64)
    for epoch in np.unique(epochs):
        mask = epochs == epoch
        indices[mask] = epoch_order(seed, int(epoch), num_examples)[offsets[mask]]
    return indices


def draw_epoch_order(seed: int, epoch: int, num_examples: int) -> np.ndarray:
    """The order int64 [num_examples] of epoch `epoch` of the run of `seed` (read-only)."""
    order = np.random.default_rng([seed, epoch]).permutation(num_examples)
    order.flags.writeable = False  # a cached order is shared by every batch of its epoch
    return order


def crop_and_resize(image: np.ndarray, size: int, crop: str, patch: bool, flip: bool,
                    rng: np.random.Generator) -> np.ndarray:
    """uint8 [H, W, C] -> uint8 [size, size, C].

    patch: a size x size crop at a random place, at the picture's own scale (pictures smaller than
    `size` are first enlarged). Otherwise a square crop, centred ("center") or of side
    U(0.8, 1) x the shorter side at a random place ("random"), resized to `size` (Lanczos).
    `flip` mirrors left-right with probability 1/2. Draws from `rng` in a fixed order.
    """
    height, width = image.shape[:2]
    if patch:
        if min(height, width) < size:
            image = _resize(image, (max(size, round(width * size / min(height, width))),
                                    max(size, round(height * size / min(height, width)))))
            height, width = image.shape[:2]
        y, x = rng.integers(0, height - size + 1), rng.integers(0, width - size + 1)
        image = image[y:y + size, x:x + size]
    else:
        side = min(height, width)
        if crop == "random":
            side = max(1, round(side * rng.uniform(RANDOM_CROP_MIN_SCALE, 1.0)))
            y, x = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
        else:
            y, x = (height - side) // 2, (width - side) // 2
        image = image[y:y + side, x:x + side]
        if side != size:
            image = _resize(image, (size, size))
    if flip and rng.random() < 0.5:
        image = image[:, ::-1]
    return image


def _resize(image: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    channels = image.shape[-1]
    resized = Image.fromarray(image[..., 0] if channels == 1 else image).resize(size_wh, Image.Resampling.LANCZOS)
    return np.asarray(resized).reshape(size_wh[1], size_wh[0], channels)


class Pipeline:
    """Batches of one run: `batch(step)` for any step, `batches(start, stop)` with prefetching.

    Args:
      dataset: what to read.
      seed: the run's seed; with the step it fixes order, crops and flips.
      batch_size: global batch size.
      image_size: side of the square output images (0: the dataset's own, if square and fixed).
      crop: "center" or "random" square crops (see `crop_and_resize`).
      random_flip: mirror left-right with probability 1/2.
      patches: 0 for whole pictures; N > 0 for N random image_size crops per picture and epoch.
      cache_mb: decode the whole dataset into memory when it fits in this many MiB.
      workers, prefetch: threads preparing batches, and how many batches ahead they work.
      process_index, process_count: this process's slice of the global batch (default: JAX's).
    """

    def __init__(self, dataset: ImageDataset, seed: int, batch_size: int, image_size: int = 0,
                 crop: str = "center", random_flip: bool = False, patches: int = 0, cache_mb: int = 1024,
                 workers: int = 2, prefetch: int = 2, process_index: int | None = None,
                 process_count: int | None = None):
        self.dataset = dataset
        self.seed = seed
        self.batch_size = batch_size
        self.process_index = jax.process_index() if process_index is None else process_index
        self.process_count = jax.process_count() if process_count is None else process_count
        if batch_size % self.process_count:
            raise UserError(f"--config.batch_size={batch_size} is not divisible by the {self.process_count} "
                            f"processes; use a multiple of {self.process_count}")
        if crop not in ("center", "random"):
            raise UserError(f"--config.data.crop={crop!r} must be 'center' or 'random'")
        if patches < 0:
            raise UserError(f"--config.data.patches={patches} must be >= 0 (0 = whole pictures)")
        self.crop, self.random_flip, self.patches = crop, random_flip, patches
        self.workers, self.prefetch = max(1, workers), max(1, prefetch)
        height, width, channels = dataset.image_shape
        self.image_size = image_size or (height if height == width else 0)
        if not self.image_size:
            raise UserError("the images of this dataset differ in size or are not square; "
                            "set --config.data.image_size (e.g. 64)")
        self.image_shape = (self.image_size, self.image_size, channels)
        self.identity = (not patches and not random_flip and crop == "center"
                         and (height, width) == (self.image_size, self.image_size))
        self.images, self.labels = None, None  # _cache reads through _read, which must see no cache yet
        self.images, self.labels = self._cache(cache_mb)
        self._cache_epoch_orders()

    def _cache_epoch_orders(self):
        # Drawn once per epoch: drawing an order of 100k examples costs more than the rest of a
        # batch. Batches in flight span at most two epochs.
        self._epoch_order = functools.lru_cache(maxsize=2)(draw_epoch_order)

    def with_seed(self, seed: int) -> "Pipeline":
        """This pipeline for the run of `seed`, sharing its decoded images (another run's batches)."""
        pipeline = copy.copy(self)
        pipeline.seed = seed
        pipeline._cache_epoch_orders()
        return pipeline

    @property
    def examples_per_epoch(self) -> int:
        """Pictures, or in patch mode `patches` crops of each picture."""
        return len(self.dataset) * max(1, self.patches)

    def _cache(self, cache_mb: int):
        """All decoded images and labels in memory, when they fit in `cache_mb`; else (None, None).

        Images of one shape are held as one uint8 [N, H, W, C] array; pictures of many sizes (a
        folder, the textures) as a list, their total size estimated from the first 16.
        """
        height, width, channels = self.dataset.image_shape
        count = len(self.dataset)
        if height is not None:
            estimate = count * height * width * channels
        else:
            first, _ = self._read(np.arange(min(count, 16)))
            estimate = count * np.mean([image.nbytes for image in first])
        if estimate > cache_mb * 2 ** 20:
            return None, None
        with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:
            chunks = list(pool.map(self._read, np.array_split(np.arange(count), max(1, count // 256))))
        images = [image for chunk in chunks for image in chunk[0]]
        return (np.stack(images) if height is not None else images), np.concatenate([c[1] for c in chunks])

    def _read(self, indices: np.ndarray) -> tuple[list[np.ndarray] | np.ndarray, np.ndarray]:
        """Decoded images and labels int32 of examples `indices`, from memory or from the source."""
        if isinstance(self.images, np.ndarray):
            return self.images[indices], self.labels[indices]
        if self.images is not None:
            return [self.images[i] for i in indices], self.labels[indices]
        examples = [self.dataset.source[int(i)] for i in indices]
        key = self.dataset.label_key
        labels = np.array([e[key] if key else 0 for e in examples], np.int32)
        return [np.asarray(e["image"]) for e in examples], labels

    def batch(self, step: int) -> dict[str, np.ndarray]:
        """This process's slice of the global batch at `step`.

        Returns {"image": float32 [B/P, S, S, C] in [-1, 1], "label": int32 [B/P]} (label 0 when
        unconditional), P being the process count.
        """
        per_process = self.batch_size // self.process_count
        first = self.process_index * per_process
        positions = np.arange(first, first + per_process)
        indices = global_batch_indices(self.seed, step, self.batch_size, self.examples_per_epoch,
                                       self._epoch_order)[positions]
        images, labels = self._read(indices // max(1, self.patches))
        if not self.identity:
            images = [crop_and_resize(image, self.image_size, self.crop, self.patches > 0, self.random_flip,
                                      np.random.default_rng([self.seed, step, int(j)]))
                      for image, j in zip(images, positions)]
        pixels = np.stack(images).astype(np.float32)
        pixels /= 127.5  # in place: a new array per operation costs several times the arithmetic
        pixels -= 1.0
        return {"image": pixels, "label": labels}

    def batches(self, start: int, stop: int) -> Iterator[dict[str, np.ndarray]]:
        """batch(start), ..., batch(stop - 1), each prepared by a worker thread ahead of its use."""
        with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:
            pending = collections.deque(pool.submit(self.batch, s)
                                        for s in range(start, min(stop, start + self.prefetch)))
            next_step = start + len(pending)
            while pending:
                batch = pending.popleft().result()
                if next_step < stop:
                    pending.append(pool.submit(self.batch, next_step))
                    next_step += 1
                yield batch


class MixturePipeline:
    """Batches of a 2-D mixture, drawn on the fly: `batch(step)` and `batches(start, stop)` as `Pipeline`'s.

    The global batch of step s is `mixtures.draw(name, batch_size, seed, s)`; each process takes its slice.
    """

    def __init__(self, dataset: MixtureDataset, seed: int, batch_size: int, process_index: int | None = None,
                 process_count: int | None = None):
        self.dataset, self.seed, self.batch_size = dataset, seed, batch_size
        self.image_shape = dataset.image_shape
        self.process_index = jax.process_index() if process_index is None else process_index
        self.process_count = jax.process_count() if process_count is None else process_count
        if batch_size % self.process_count:
            raise UserError(f"--config.batch_size={batch_size} is not divisible by the {self.process_count} "
                            f"processes; use a multiple of {self.process_count}")

    def with_seed(self, seed: int) -> "MixturePipeline":
        """This pipeline for the run of `seed`."""
        pipeline = copy.copy(self)
        pipeline.seed = seed
        return pipeline

    def batch(self, step: int) -> dict[str, np.ndarray]:
        """{"image": float32 [B/P, 2], "label": int32 [B/P] of zeros}, P being the process count."""
        per_process = self.batch_size // self.process_count
        first = self.process_index * per_process
        samples = mixtures.draw(self.dataset.name, self.batch_size, self.seed, step)[first:first + per_process]
        return {"image": samples, "label": np.zeros((per_process,), np.int32)}

    def batches(self, start: int, stop: int) -> Iterator[dict[str, np.ndarray]]:
        return (self.batch(step) for step in range(start, stop))


def make_pipeline(dataset: ImageDataset | MixtureDataset, config: ml_collections.ConfigDict,
                  **kwargs) -> "Pipeline | MixturePipeline":
    """The pipeline of a run's config for `dataset`: one batch feeds one train step, `batch_size`
    examples for each of its `optim.n_dis` D updates."""
    if isinstance(dataset, MixtureDataset):
        return MixturePipeline(dataset, config.seed, config.batch_size * config.optim.n_dis, **kwargs)
    d = config.data
    return Pipeline(dataset, config.seed, config.batch_size * config.optim.n_dis, image_size=d.image_size, crop=d.crop,
                    random_flip=d.random_flip, patches=d.patches, cache_mb=d.cache_mb, workers=d.workers,
                    prefetch=d.prefetch, **kwargs)


def to_global(batch: dict[str, np.ndarray], sharding: jax.sharding.Sharding) -> dict[str, jax.Array]:
    """Assembles each process's slice into one global array sharded over the mesh's "data" axis."""
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}
