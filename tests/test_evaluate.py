"""The digit classifier, reference features, the Evaluator API and `python -m jaxgan.evaluate`."""

import glob
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import FAST_COMPILE_FLAGS, ROOT, make_tiny_config
from jaxgan import classifier, data, evaluate
from jaxgan.errors import UserError

DIGITS = tuple(str(d) for d in range(10))


@pytest.fixture(scope="session")
def digit_classifier(data_dir):
    """The seed-0 classifier, trained once into the session's data dir and read from there.

    Trained in a process at XLA's default optimisation level (about 40 s on 2 cores): its 500 steps
    are run time, not compile time, and take a quarter longer at the suite's lowest level."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = env["XLA_FLAGS"].replace(FAST_COMPILE_FLAGS, "").strip()
    if not env["XLA_FLAGS"]:
        del env["XLA_FLAGS"]  # an empty XLA_FLAGS is an error
    subprocess.run([sys.executable, "-c", "import sys; from jaxgan import classifier; "
                    "classifier.load_or_train_digit_classifier(0, sys.argv[1])", data_dir],
                   cwd=ROOT, env=env, check=True, timeout=600)
    return classifier.load_or_train_digit_classifier(0, data_dir)


def test_digit_classifier_is_accurate_and_cached_with_its_accuracy(digit_classifier, data_dir):
    assert digit_classifier.held_out_accuracy >= 0.97
    cached = glob.glob(os.path.join(data.cache_dir(data_dir), "digit_classifier", "seed0-*"))
    assert sorted(os.path.splitext(p)[1] for p in cached) == [".json", ".msgpack"]
    # The fixture's classifier was read back from the cache that the training process wrote: its
    # parameters must score what that process measured on the whole held-out split (a broken save
    # would not). Within 0.2 %: that process compiled at another optimisation level.
    test_set = data.Pipeline(data.load_dataset("jaxgan_digits", "test", "label", data_dir), 0, 1000).batch(0)
    accuracy = np.mean(digit_classifier.predict(test_set["image"]) == test_set["label"])
    assert abs(accuracy - digit_classifier.held_out_accuracy) <= 0.002
    features, logits = digit_classifier.embed(test_set["image"][:64])
    assert features.shape == (64, 128) and logits.shape == (64, 10) and features.min() >= 0


def test_classifier_max_pool_has_flax_max_pool_values_and_gradient_even_on_ties():
    import flax.linen as nn
    import jax

    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, (4, 8, 6, 3)).astype(np.float32)  # values 0-2: most 2x2 blocks hold a tie
    upstream = rng.standard_normal((4, 4, 3, 3)).astype(np.float32)
    pooled, backward = jax.vjp(classifier.max_pool_2x2, x)
    expected, expected_backward = jax.vjp(lambda x: nn.max_pool(x, (2, 2), (2, 2)), x)
    np.testing.assert_array_equal(pooled, expected)
    np.testing.assert_array_equal(backward(upstream)[0], expected_backward(upstream)[0])
    assert np.count_nonzero(backward(upstream)[0]) == upstream.size  # one position per block gets it


def real_digit_generator(data_dir):
    """A 'generator' that returns real training digits of the requested classes, in turn."""
    train = data.Pipeline(data.load_dataset("jaxgan_digits", "train", "label", data_dir), 0, 4000).batch(0)
    by_class = [train["image"][train["label"] == c] for c in range(10)]
    drawn = np.zeros(10, int)

    def generate(z, label_weights):
        images = []
        for c in np.argmax(label_weights, axis=1):
            images.append(by_class[c][drawn[c] % len(by_class[c])])
            drawn[c] += 1
        return np.stack(images)

    return generate


def test_real_digits_score_as_real_and_a_barely_trained_gan_does_not(digit_classifier, data_dir, trained_workdir):
    from jaxgan import trained

    config = make_tiny_config(data_dir)
    evaluator = evaluate.Evaluator.for_run(config, DIGITS, (28, 28, 1), ["fid", "kid", "pr", "dc", "is", "acc"],
                                           num_samples=1000, feature_network="digits", kid_subset_size=200)
    real = evaluator(real_digit_generator(data_dir))
    gan = trained.load(trained_workdir)
    fake = evaluator(gan.generate)
    # Real training digits (measured: FID 0.9, KID -16 ± 62, P 1.0, R 0.98, coverage 0.77, IS 8.6, acc 0.98).
    assert real["fid"] < 5 and abs(real["kid_mean"]) < 3 * real["kid_std"]
    assert real["precision"] > 0.9 and real["recall"] > 0.9 and real["coverage"] > 0.6
    assert real["is_mean"] > 8  # confident on each sample, all classes equally often
    assert real["acc"] > 0.97 and len(real["acc_per_class"]) == 10 and min(real["acc_per_class"]) > 0.9
    # A GAN after 4 steps (measured: FID 1847, KID 7798 ± 616, R 0, coverage 0.0005, acc 0.1). Its
    # precision stays high (0.96): k-NN precision is fooled by real outliers with wide balls.
    assert fake["fid"] > 100 * real["fid"] and fake["kid_mean"] > 5 * fake["kid_std"]
    assert fake["recall"] < 0.1 and fake["coverage"] < 0.1 and fake["acc"] < 0.5
    rows = evaluator.rows(real, step=4)
    assert {row["metric"] for row in rows} == set(real)
    assert all(row["num_samples"] == 1000 and row["reference_split"] == "train" and row["step"] == 4
               and "digit classifier" in row["features_description"] and row["resize"] for row in rows)


def test_reference_features_are_cached_per_protocol(digit_classifier, data_dir, monkeypatch):
    from jaxgan import features

    config = make_tiny_config(data_dir)
    network = features.digit_features(data_dir=data_dir)
    whole = evaluate.reference_features(config.data, "train", network)
    fewer = evaluate.reference_features(config.data, "train", network, num_reference=300)
    held_out = evaluate.reference_features(config.data, "test", network)
    assert (len(whole.features), len(fewer.features), len(held_out.features)) == (4000, 300, 1000)
    np.testing.assert_allclose(whole.mean, whole.features.astype(np.float64).mean(axis=0), rtol=1e-9, atol=1e-9)
    names = sorted(os.path.basename(p) for p in glob.glob(
        os.path.join(data.cache_dir(data_dir), "reference_features", "*.npz")))
    assert f"jaxgan_digits-1.0.0-train-center28px-n4000-{network.name}-jax{jax.__version__}.npz" in names
    assert f"jaxgan_digits-1.0.0-train-center28px-n300-{network.name}-jax{jax.__version__}.npz" in names
    assert f"jaxgan_digits-1.0.0-test-center28px-n1000-{network.name}-jax{jax.__version__}.npz" in names
    monkeypatch.setattr(data, "Pipeline", None)  # a cached protocol reads no image
    np.testing.assert_array_equal(evaluate.reference_features(config.data, "train", network, 300).features,
                                  fewer.features)


def expect_user_error(match, **overrides):
    arguments = dict(config=None, class_names=DIGITS, image_shape=(28, 28, 1), metric_names=["fid"],
                     num_samples=100, feature_network="digits")
    arguments.update(overrides)
    with pytest.raises(UserError, match=match) as error:
        evaluate.Evaluator.for_run(**arguments)
    assert "\n" not in str(error.value)


def test_bad_requests_fail_with_one_line(data_dir, tmp_path, monkeypatch):
    config = make_tiny_config(data_dir)
    expect_user_error(r"unknown metric 'fdi' in --metrics; choose from fid,kid,pr,dc,is,acc",
                      config=config, metric_names=["fdi"])
    expect_user_error(r"--num=100 is too few samples for kid: it needs at least 1000; raise --num or lower "
                      r"--kid-subset-size", config=config, metric_names=["kid"])
    expect_user_error(r"--features=vgg must be 'inception' or 'digits'", config=config, feature_network="vgg")
    expect_user_error(r"not trained on the digits 0-9 \(its classes: cat, dog\).*--features inception",
                      config=config, class_names=("cat", "dog"))
    expect_user_error(r"makes \(64, 64, 3\) images, not 28x28 grey digits", config=config, image_shape=(64, 64, 3))
    expect_user_error(r"not trained on the digits 0-9 \(its classes: none\)", config=config, metric_names=["acc"],
                      class_names=(), feature_network="inception")
    missing = str(tmp_path / "pt_inception.pth")
    expect_user_error(f"the Inception weights file {missing} does not exist: download "
                      f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                      f"pt_inception-2015-12-05-6726825d.pth",
                      config=config, class_names=("cat", "dog"), image_shape=(32, 32, 3),
                      feature_network="inception", inception_weights=missing)


def test_evaluate_command_on_a_trained_run(trained_workdir, digit_classifier, tmp_path):
    workdir = str(tmp_path / "run")
    shutil.copytree(trained_workdir, workdir)  # the session's run stays as it was
    command = [sys.executable, "-m", "jaxgan.evaluate", "--workdir", workdir, "--features", "digits",
               "--metrics", "fid,kid,pr,dc,is,acc", "--num", "100", "--kid-subset-size", "50"]
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "| metric | value |" in done.stdout and "| fid |" in done.stdout and "| acc_per_class |" in done.stdout
    with open(os.path.join(workdir, "eval.json")) as f:
        rows = json.load(f)["results"]
    assert [row["metric"] for row in rows] == ["fid", "kid_mean", "kid_std", "precision", "recall", "density",
                                               "coverage", "is_mean", "is_std", "acc", "acc_per_class"]
    for row in rows:
        assert row["step"] == 4 and row["generator"] == "EMA" and row["num_samples"] == 100
        assert row["sample_seed"] == 0 and row["reference_split"] == "train" and row["features"].startswith(
            "digit_classifier_seed0") and row["resize"] == "none (28x28 grey input)"
        assert "jaxgan_digits 1.0.0 train: 4000 images" in row["reference"]
    assert all(np.isfinite(row["value"]) for row in rows if row["metric"] != "acc_per_class")

    with pytest.raises(SystemExit) as failure:  # the same main(), in this process: no second start-up
        evaluate.main(["--workdir", workdir, "--features", "digits", "--metrics", "kid", "--num", "10"])
    assert failure.value.code == ("evaluate: error: --num=10 is too few samples for kid: it needs at least 1000; "
                                  "raise --num or lower --kid-subset-size")


def test_evaluation_during_training_logs_scores_and_keeps_the_best_checkpoints(digit_classifier, data_dir,
                                                                               tmp_path):
    import tensorflow as tf
    from tensorboard.backend.event_processing import event_accumulator

    from jaxgan import train, trained

    config = make_tiny_config(data_dir)
    config.steps, config.eval_every = 6, 2
    config.eval.num_samples, config.eval.metrics = 200, "fid,acc"
    config.eval.best_metric, config.eval.keep_best = "fid", 2
    workdir = str(tmp_path / "run")
    train.train_and_evaluate(config, workdir)

    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        scores = [row for row in map(json.loads, f) if "eval/fid" in row]
    assert [row["step"] for row in scores] == [2, 4, 6]
    assert all(row["eval/fid"] > 0 and 0 <= row["eval/acc"] <= 1 and row["eval_seconds"] > 0 for row in scores)
    # The same numbers as evaluating the saved step afterwards with the same protocol.
    evaluator = evaluate.Evaluator.for_run(config, DIGITS, (28, 28, 1), ["fid", "acc"], 200, "digits")
    final = trained.load(workdir, 6)
    again = evaluator(lambda z, weights: final.generate(z, weights, use_ema=True))
    np.testing.assert_allclose(again["fid"], scores[-1]["eval/fid"], rtol=1e-4)

    # WORKDIR/best keeps the 2 lowest-FID steps; it is a workdir of its own for sample.py and jaxgan.evaluate.
    best_two = sorted(sorted(scores, key=lambda row: row["eval/fid"])[:2], key=lambda row: row["step"])
    assert sorted(map(int, os.listdir(os.path.join(workdir, "best", "checkpoints")))) == [r["step"] for r in best_two]
    assert trained.load(os.path.join(workdir, "best")).step == best_two[-1]["step"]

    events = event_accumulator.EventAccumulator(os.path.join(workdir, "tensorboard"))
    events.Reload()
    logged = [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in events.Tensors("eval/fid")]
    assert logged == [(row["step"], pytest.approx(row["eval/fid"], rel=1e-6)) for row in scores]


def test_an_evaluation_setting_that_cannot_work_is_one_clear_line(data_dir):
    from jaxgan import train

    config = make_tiny_config(data_dir)
    config.eval_every, config.eval.metrics, config.eval.best_metric = 2, "acc", "fid"
    message = r"best_metric='fid' is not computed by --config.eval.metrics='acc'; pick one of acc"
    with pytest.raises(UserError, match=message):
        train.validate(config)
    config.eval.metrics = "fid,nope"
    with pytest.raises(UserError, match="unknown metric 'nope'"):
        train.validate(config)
