"""Mode coverage end to end: packing, the 2-D pipeline, many seeds at once, sample.py, the benchmark."""

import json
import os
import re
import shutil
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT, env_without_tensorflow, fill, run_script
from jaxgan import data, mixtures, train, trained
from jaxgan.errors import UserError

sys.path.insert(0, ROOT)
from configs import grid25, ring8  # noqa: E402


def small(config, steps=3):
    config.steps, config.log_every, config.sample_every, config.checkpoint_every = steps, steps, steps, steps
    return config


def test_pack_joins_consecutive_samples_along_the_last_axis():
    points = jnp.arange(12.0).reshape(6, 2)  # sample i = (2i, 2i + 1)
    np.testing.assert_array_equal(train.pack(points, 3), [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]])
    images = jnp.arange(4 * 2 * 2 * 3.0).reshape(4, 2, 2, 3)
    packed = train.pack(images, 2)
    assert packed.shape == (2, 2, 2, 6)
    np.testing.assert_array_equal(packed[1, :, :, :3], images[2])
    np.testing.assert_array_equal(packed[1, :, :, 3:], images[3])
    assert train.pack(images, 1) is images


def test_packed_discriminator_judges_m_samples_per_logit():
    config = ring8.get_config()
    config.model.d_pack = 4
    generator, discriminator = train.build_models(config, (2,), 0)
    state = jax.eval_shape(lambda: train.init_state(config, generator, discriminator, (2,)))
    assert state.d_params["Maxout_0"]["Dense_0"]["kernel"].shape[0] == 8  # 4 samples x 2 coordinates
    step = jax.jit(train.make_step(config, generator, discriminator))
    batch = {"image": jnp.asarray(mixtures.draw("ring8", 100, 0, 0)), "label": jnp.zeros(100, jnp.int32)}
    new_state, metrics = step(jax.jit(lambda: train.init_state(config, generator, discriminator, (2,)))(), batch)
    assert float(metrics["skipped"]) == 0 and int(new_state.step) == 1


def test_mixture_pipeline_is_a_pure_function_of_seed_and_step_split_over_processes():
    config = grid25.get_config()
    dataset = data.open_dataset(config.data)
    assert isinstance(dataset, data.MixtureDataset) and dataset.num_classes == 0
    whole = data.make_pipeline(dataset, config, process_index=0, process_count=1)
    parts = [data.make_pipeline(dataset, config, process_index=i, process_count=2) for i in range(2)]
    batch = whole.batch(7)
    assert batch["image"].shape == (100, 2) and batch["image"].dtype == np.float32
    np.testing.assert_array_equal(batch["image"], mixtures.draw("grid25", 100, config.seed, 7))
    np.testing.assert_array_equal(np.concatenate([p.batch(7)["image"] for p in parts]), batch["image"])
    assert not np.array_equal(whole.batch(8)["image"], batch["image"])
    assert [b["image"].tolist() for b in whole.batches(3, 5)] == [whole.batch(s)["image"].tolist() for s in (3, 4)]


@pytest.mark.parametrize("change, message", [
    # Refused for not fitting the data before the 2-D configs' mlp_init_std 0.02 is refused for a conv net.
    ({"model.name": "dcgan"}, r"model.name=dcgan does not fit the data's \(2,\) samples; use mlp"),
    ({"data.label_key": "label"}, r"ring8 has no labels; set --config.data.label_key=''"),
    ({"model.d_pack": 3}, r"d_pack=3 does not divide the 100 samples"),
    ({"eval_every": 10}, r"ring8 is scored by benchmarks/mode_coverage.py; set --config.eval_every=0"),
    ({"model.mlp_init_std": -0.02}, r"mlp_init_std=-0.02 must be >= 0 and is for --config.model.name=mlp only"),
])
def test_bad_2d_settings_are_one_clear_line(change, message, tmp_path):
    config = small(ring8.get_config())
    config.update_from_flattened_dict(change)
    with pytest.raises(UserError, match=message):
        train.train_and_evaluate(config, str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")


def test_packing_a_conditional_model_is_refused(tiny_config):
    tiny_config.model.d_pack = 2
    with pytest.raises(UserError, match=r"d_pack=2 packs unconditional samples only"):
        train.build_models(tiny_config, (28, 28, 1), 10)


# Rates at which a wrong batch (an order drawn from seed + 1) moves the samples far beyond atol 1e-4
# (measured: 2.5e-3 for the MLPs, 1.1e-2 for the DCGAN) while rounding stays below it: at 1e-2 Adam
# amplified an XLA:CPU rounding difference of the DCGAN to 6e-3 in 3 steps on one CPU (at 1e-3: 1.5e-7),
# and at 1e-3 a wrong batch moves the MLPs' samples by 5e-4 only.
@pytest.mark.parametrize("name, as_on_a_gpu, rate", [("grid25", False, 1e-2), ("stacked_mnist", False, 1e-3),
                                                     ("stacked_mnist", True, 1e-3)])
def test_seeds_trained_at_once_are_their_train_py_runs_and_resume_exactly(name, as_on_a_gpu, rate, data_dir,
                                                                          tmp_path, monkeypatch, capsys):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import mode_coverage

    if as_on_a_gpu:  # conv nets vmapped and in scans, where on a CPU they run side by side, a step per call
        monkeypatch.setattr(mode_coverage, "seeds_side_by_side", lambda config: False)
    monkeypatch.setattr(mode_coverage, "CHUNK_STEPS", 2)  # 3 steps cross a chunk's end
    monkeypatch.setattr(mode_coverage, "CHECKPOINT_SECONDS", 0)  # a checkpoint after every chunk or step
    config = small(mode_coverage.CONFIGS[name].get_config())
    config.update_from_flattened_dict({"batch_size": 8, "model.g_width": 8, "model.d_width": 8,
                                       "optim.g_lr": rate, "optim.d_lr": rate,
                                       "data.data_dir": data_dir, "data.cache_mb": 0})
    dataset, seeds_dir = data.open_dataset(config.data), str(tmp_path / "seeds")
    # The raw generator: after 3 steps the EMA one is still nearly the initial one.
    samples, _, _ = mode_coverage.train_seeds(config, dataset, [3, 0], False, 6, seeds_dir)
    assert samples.shape == (2, 6, *dataset.image_shape)
    for index, seed in enumerate([3, 0]):  # each run with its own batches
        own_config = config.copy_and_resolve_references()
        own_config.seed = seed
        train.train_and_evaluate(own_config, str(tmp_path / f"train_py_{seed}"))
        own = trained.load(str(tmp_path / f"train_py_{seed}")).sample(0, 6, [], use_ema=False)  # sample.py --no-ema
        np.testing.assert_allclose(samples[index], own, atol=1e-4)
    assert np.abs(samples[1] - samples[0]).max() > 1e-3  # two runs

    # Stopped after the step-2 checkpoint: the same call trains step 3 again, from it, to the same runs.
    shutil.rmtree(os.path.join(seeds_dir, "checkpoints", "3"))
    capsys.readouterr()
    resumed, seconds, _ = mode_coverage.train_seeds(config, dataset, [3, 0], False, 6, seeds_dir)
    out = capsys.readouterr().out
    assert f"resumed {seeds_dir} from step 2" in out
    assert re.search(r"step 3/3, [0-9.e+]+ steps/s, ETA 0m00s", out)  # the rate since the resumed step
    np.testing.assert_array_equal(resumed, samples)
    # Finished: sampled again, nothing trained.
    again, seconds_again, _ = mode_coverage.train_seeds(config, dataset, [3, 0], False, 6, seeds_dir)
    assert "step 3/3" not in capsys.readouterr().out and seconds_again == seconds > 0
    np.testing.assert_array_equal(again, samples)
    with pytest.raises(UserError, match=r"holds the runs of seeds \[3, 0\], not \[3\]; pass the same --seeds"):
        mode_coverage.train_seeds(config, dataset, [3], False, 6, seeds_dir)
    config.steps = 2
    with pytest.raises(UserError, match=r"is trained to step 3, beyond --steps 2; pass --steps 3 or another --out"):
        mode_coverage.check_workdir(seeds_dir, config, [3, 0])
    config.steps, config.optim.b1 = 3, 0.25
    with pytest.raises(UserError, match=r"another config \(optim.b1: 0\.[25] -> 0\.25\); .* or use another --out"):
        mode_coverage.check_workdir(seeds_dir, config, [3, 0])


def test_a_short_grid_run_goes_from_collapsed_to_many_modes_and_sample_py_writes_points(tmp_path, capsys):
    config = small(grid25.get_config(), steps=100)  # 14 of 25 modes by then (EMA and raw G alike)
    config.sample_every = 50
    workdir = str(tmp_path / "grid")
    state = train.train_and_evaluate(config, workdir)
    generator, _ = train.build_models(config, (2,), 0)
    initial = jax.jit(lambda: train.init_state(config, generator, train.build_models(config, (2,), 0)[1], (2,)))()
    z = np.random.default_rng(0).standard_normal((2500, 2)).astype(np.float32)
    generate = train.make_generate(generator)
    before = mixtures.evaluate(np.asarray(generate(initial.ema_params, initial.g_batch_stats, z, None)), "grid25")
    after = mixtures.evaluate(np.asarray(generate(state.ema_params, state.g_batch_stats, z, None)), "grid25")
    assert before["modes"] <= 2 and after["modes"] >= 8, (before, after)
    assert sorted(os.listdir(os.path.join(workdir, "samples"))) == ["step_0000050.png", "step_0000100.png"]

    import sample
    sample.main(["--workdir", workdir, "--num", "2500", "--out", str(tmp_path / "points.npy")])
    points = np.load(tmp_path / "points.npy")
    assert points.shape == (2500, 2) and points.dtype == np.float32
    gan = trained.load(workdir)
    np.testing.assert_array_equal(points, gan.sample(0, 2500, []))
    sample.main(["--workdir", workdir, "--num", "100", "--out", str(tmp_path / "points.png")])
    assert os.path.getsize(tmp_path / "points.png") > 0
    with pytest.raises(SystemExit, match="makes 2-D points, not pictures"):
        sample.main(["--workdir", workdir, "--seeds", "1-3", "--out", str(tmp_path / "pictures") + os.sep])


def test_runs_saved_before_new_config_keys_still_resume(tiny_config):
    saved = tiny_config.to_dict()
    del saved["optim"]["grad_accum"], saved["model"]["d_pack"], saved["model"]["d_mbstd_group"]
    del saved["model"]["mlp_init_std"]
    assert train.check_resumable(tiny_config, saved, "runs/old") == []
    tiny_config.model.d_pack = 2
    with pytest.raises(UserError, match=r"model.d_pack: 1 -> 2"):
        train.check_resumable(tiny_config, saved, "runs/old")


def test_minibatch_stddev_groups_that_would_mix_real_and_fake_are_refused(tiny_config):
    tiny_config.model.d_mbstd_group = 3
    with pytest.raises(UserError, match=r"d_mbstd_group=3 does not divide the 8 real \(and fake\) inputs"):
        train.validate(tiny_config)
    tiny_config.model.d_mbstd_group = 4
    train.validate(tiny_config)


def test_a_2d_run_and_the_benchmark_run_without_tensorflow(tmp_path, monkeypatch):
    """GPU images often hold jax and torch but no TensorFlow: only TensorBoard summaries need it."""
    hidden = env_without_tensorflow(tmp_path)
    assert "No module named 'tensorflow'" in run_script("-c", "import tensorflow", env=hidden).stderr
    workdir = str(tmp_path / "grid")
    trained_run = run_script("train.py", "--config", "configs/grid25.py", "--workdir", workdir, "--config.steps=2",
                             "--config.model.g_width=16", "--config.model.d_width=8", "--config.log_every=1",
                             "--config.sample_every=2", "--config.checkpoint_every=2", env=hidden)
    assert trained_run.returncode == 0, trained_run.stderr
    # (sample.py without TensorFlow: tests/test_cli.py::test_folder_of_styles_end_to_end; its 2-D
    # points: test_a_short_grid_run_goes_from_collapsed_to_many_modes_and_sample_py_writes_points.)
    out = tmp_path / "benchmark"
    benchmark = run_script("benchmarks/mode_coverage.py", "--only", "ring8", "--seeds", "2", "--steps", "3",
                           "--methods", "PacGAN2", "--out", str(out), env=hidden)
    assert benchmark.returncode == 0, benchmark.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["finished"] and [r["method"] for r in results["results"]] == ["PacGAN2"]
    assert [sorted(score) for score in results["results"][0]["scores"]] == [["high_quality", "modes", "reverse_kl"]] * 2
    table = (out / "table.md").read_text()
    assert "| jaxgan PacGAN2 | 3 |" in table and "| PacGAN2 (published) | 400k | 7.9 ± 0.1 |" in table
    # The data itself, scored as the samples are: every mode, ~99.5 % within 3 std per axis, KL near 0.
    data_scores = results["data"][0]["scores"]
    assert [s["modes"] for s in data_scores] == [8, 8] and all(s["high_quality"] > 0.98 for s in data_scores)
    assert "| the data itself (2,500 draws of the mixture per seed) |  | 8.0 ± 0.0 | 2/2 |" in table
    assert (out / "ring8_PacGAN2.png").stat().st_size > 0
    assert os.listdir(out / "runs" / "ring8_PacGAN2" / "checkpoints") == ["3"]

    # Its runs are continued only by the seeds and config that made them: one line, before any training.
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import mode_coverage

    monkeypatch.setattr(sys, "argv", ["mode_coverage.py", "--only", "ring8", "--seeds", "3", "--steps", "3",
                                      "--methods", "GAN,PacGAN2", "--out", str(out)])
    with pytest.raises(SystemExit) as stop:
        mode_coverage.main()
    assert str(stop.value) == (f"mode_coverage.py: error: {out}/runs/ring8_PacGAN2 holds the runs of seeds [0, 1], "
                               f"not [0, 1, 2]; pass the same --seeds to continue them or another --out")
    assert not (out / "runs" / "ring8_GAN").exists()


class LabelsAsGiven:
    """A digit classifier that reads each channel's label from its top-left pixel: (pixel + 1) * 5."""

    held_out_accuracy = 1.0

    def predict(self, channels):
        return np.rint((channels[:, 0, 0, 0] + 1) * 5).astype(int)


def stacked_images(triples):
    """float32 [N, 28, 28, 3] whose channels LabelsAsGiven reads as the digit triples int [N, 3]."""
    return np.broadcast_to((np.asarray(triples, np.float32) / 5 - 1)[:, None, None, :], (len(triples), 28, 28, 3))


@pytest.mark.parametrize("triples, modes, kl, digit_kl", [
    (np.stack(np.unravel_index(np.arange(1000), (10, 10, 10)), 1), 1000, 0.0, 0.0),  # every triple once
    (np.repeat(np.arange(10), 3).reshape(10, 3), 10, np.log(100), 0.0),  # uniform digits, channels all alike
    (np.stack([np.full(100, 9), np.arange(100) // 10, np.arange(100) % 10], 1), 100, np.log(10), np.log(10)),
])
def test_stacked_kl_splits_into_the_digits_frequencies_and_the_channels_dependence(triples, modes, kl, digit_kl):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import mode_coverage

    score = mode_coverage.stacked_score(stacked_images(triples), LabelsAsGiven())
    assert score == {"modes": modes, "reverse_kl": pytest.approx(kl, abs=1e-12),
                     "digit_kl": pytest.approx(digit_kl, abs=1e-12),
                     "digit_counts": [np.bincount(triples[:, c], minlength=10).tolist() for c in range(3)]}
    json.dumps(score)  # results.json holds it
    row = mode_coverage.table_row("run", 5, "stacked_mnist", [score], "7")
    assert row == f"| run | 5 | {modes:.1f} ± 0.0 | {int(modes == 1000)}/1 | {kl:.3f} | {digit_kl:.3f} | 7 |"


def test_the_classifier_seeds_pick_stacked_mnists_classifiers_and_a_bad_one_is_one_clear_line(tmp_path, monkeypatch):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import argparse

    import mode_coverage

    class BothLoaded(Exception):
        pass

    loaded = []

    def load(seed=0, data_dir=None):
        loaded.append(seed)
        if len(loaded) == 2:
            raise BothLoaded  # both loaded: the first thing a Stacked MNIST benchmark does

    monkeypatch.setattr(mode_coverage.classifier, "load_or_train_digit_classifier", load)
    args = argparse.Namespace(only="stacked_mnist", methods="GAN", seeds=1, out=str(tmp_path),
                              classifier_seeds=mode_coverage.parse_classifier_seeds("2,0"))
    with pytest.raises(BothLoaded):
        mode_coverage.run(args, {}, {}, {})
    assert loaded == [2, 0]

    for seeds in ("-1", str(2 ** 31), "1,1", "0,x", ""):
        monkeypatch.setattr(sys, "argv", ["mode_coverage.py", "--only", "stacked_mnist", "--classifier-seed", seeds,
                                          "--out", str(tmp_path / "bad")])
        with pytest.raises(SystemExit) as stop:
            mode_coverage.main()
        assert str(stop.value) == (f"mode_coverage.py: error: --classifier-seed {seeds}: use a seed in "
                                   f"[0, 2147483647], or several distinct ones, comma-separated")
    assert not (tmp_path / "bad").exists()


class LabelsShifted(LabelsAsGiven):
    """A classifier that reads every digit one higher (9 as 0)."""

    def predict(self, channels):
        return (super().predict(channels) + 1) % 10


class LabelsAllZero(LabelsAsGiven):
    """A classifier that reads every digit as 0."""

    def predict(self, channels):
        return np.zeros(len(channels), int)


def test_several_classifiers_each_give_a_kl_and_the_median():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import mode_coverage

    # Run 0's pictures are one triple (KL log 1000 under every classifier here); run 1's are (9, x, y) for
    # the first, (0, x+1, y+1) for LabelsShifted (the same KL, log 10, from other counts), (0, 0, 0) for
    # LabelsAllZero (log 1000).
    collapsed = stacked_images(np.zeros((1000, 3), int))
    spread = stacked_images(np.stack([np.full(100, 9), np.arange(100) // 10, np.arange(100) % 10], 1))
    first = [mode_coverage.stacked_score(x, LabelsAsGiven()) for x in (collapsed, spread)]
    more = mode_coverage.more_classifiers_scores(
        [collapsed, spread], {3: LabelsShifted(), 4: LabelsAllZero(), 5: LabelsAllZero()})
    assert [m["seed"] for m in more] == [3, 4, 5] and [m["held_out_accuracy"] for m in more] == [1.0] * 3
    assert more[0]["scores"][1]["digit_counts"][0] == [100] + [0] * 9
    assert more[0]["scores"][1]["reverse_kl"] == pytest.approx(first[1]["reverse_kl"])
    kl, all_zero = (np.log(1000) + np.log(10)) / 2, np.log(1000)
    row = mode_coverage.table_row("run", 5, "stacked_mnist", first, "7", more)
    assert row == (f"| run | 5 | 50.5 ± 49.5 | 0/2 | {kl:.3f} | {kl:.3f} | 7 | {kl:.3f} / {kl:.3f} / {all_zero:.3f} / "
                   f"{all_zero:.3f} ({(kl + all_zero) / 2:.3f}) |")
    assert mode_coverage.more_field(more) == {"more_classifiers": more} and mode_coverage.more_field([]) == {}


def test_benchmark_set_changes_every_method_and_a_bad_key_is_one_clear_line(tmp_path, monkeypatch):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import mode_coverage

    overrides = mode_coverage.parse_overrides(["optim.lr_decay=linear", "optim.g_lr=2e-4", "optim.b1=0",
                                               "data.random_flip=true", "log_every=50"], "grid25")
    assert overrides == {"optim.lr_decay": "linear", "optim.g_lr": 2e-4, "optim.b1": 0.0, "data.random_flip": True,
                         "log_every": 50}
    assert [type(overrides[key]) for key in ("optim.b1", "log_every")] == [float, int]  # by the key's type
    config = mode_coverage.method_config("grid25", "PacGAN2", 10, overrides)
    assert (config.optim.lr_decay, config.optim.g_lr, config.optim.d_lr, config.optim.b1, config.data.random_flip,
            config.batch_size, config.steps) == ("linear", 2e-4, 1e-4, 0.0, True, 200, 10)
    # batch_size counts packs: GAN's batch, PacGAN2's packs of 2 samples each.
    packs = mode_coverage.parse_overrides(["batch_size=64"], "grid25")
    assert [mode_coverage.method_config("grid25", method, 10, packs).batch_size
            for method in ("GAN", "PacGAN2")] == [64, 128]
    for pairs, message in ((["optim.lr_decay=cosine"], "must be 'constant' or 'linear'"),
                           (["optim.g_lr=fast"], "--set optim.g_lr=fast: could not convert string to float: 'fast'"),
                           (["log_every=2.5"], "invalid literal for int"),
                           (["data.random_flip=maybe"], "Non-boolean argument"),
                           (["optim=1"], "--set optim: a group of keys, not one"),
                           (["data.image_size=32"], "scores Stacked MNIST at its own 28x28"),
                           (["model.d_pack=1"], "the benchmark sets it; use --methods"),
                           (["steps"], "write KEY=VALUE")):
        with pytest.raises(UserError, match=message):
            mode_coverage.method_config("stacked_mnist", "GAN", None,
                                        mode_coverage.parse_overrides(pairs, "stacked_mnist"))
    out = tmp_path / "out"
    for args, message in (
            (["--set", "optim.no_such_key=1"], "--set optim.no_such_key: configs/ring8.py has no such key"),
            (["--set", "data.label_key=label"], "the 2-D mixture ring8 has no labels; set --config.data.label_key=''"),
            (["--seeds", "0"], "--seeds 0: train at least 1 seed"),
            (["--drs-steps", "-1"], "--drs-steps -1: use 0 (no rejection sampling) or a number of steps, e.g. 2000"),
            (["--drs-steps", "5", "--drs-quantile", "1"], "--drs-quantile 1.0: use a value in [0, 1), e.g. 0.9"),
            (["--drs-steps", "5", "--methods", "GAN + mbstd"], "rejection sampling cannot score a sample through "
                                                               "D's minibatch-stddev feature, a statistic of its "
                                                               "whole group: set model.d_mbstd_group=0")):
        # In this process (main() as the command runs it): a subprocess would spend seconds importing jax.
        monkeypatch.setattr(sys, "argv", ["mode_coverage.py", "--only", "ring8", *args, "--out", str(out)])
        with pytest.raises(SystemExit) as stop:
            mode_coverage.main()
        assert str(stop.value) == f"mode_coverage.py: error: {message}"  # the one line, exit status 1
        assert not out.exists()


def test_a_full_disk_is_one_line_and_the_same_command_continues(small_disk, monkeypatch, capsys):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import mode_coverage

    monkeypatch.setattr(mode_coverage, "CHUNK_STEPS", 2)
    monkeypatch.setattr(mode_coverage, "CHECKPOINT_SECONDS", 0)  # a checkpoint after every chunk: steps 2 and 4
    out = small_disk / "out"
    workdir = out / "runs" / "ring8_PacGAN2"
    monkeypatch.setattr(sys, "argv", ["mode_coverage.py", "--only", "ring8", "--seeds", "2", "--steps", "4",
                                      "--methods", "PacGAN2", "--set", "model.g_width=16", "--set", "model.d_width=8",
                                      "--out", str(out)])
    report_progress = mode_coverage.report_progress

    def fill_the_disk_before_step_4s_checkpoint(done_before, done, *rest):
        report_progress(done_before, done, *rest)
        if done == 4:
            deadline = time.monotonic() + 60
            while not (workdir / "checkpoints" / "2").is_dir():  # written in the background, renamed when complete
                assert time.monotonic() < deadline, "the step-2 checkpoint was never completed"
                time.sleep(0.01)
            fill(small_disk / "filler")

    monkeypatch.setattr(mode_coverage, "report_progress", fill_the_disk_before_step_4s_checkpoint)
    with pytest.raises(SystemExit) as stop:
        mode_coverage.main()
    assert str(stop.value) == (
        f"mode_coverage.py: error: cannot write in {workdir} (No space left on device); its checkpoints up to "
        f"step 2 are intact; free some space or make it writable, then run the same command to continue from step 2")
    assert "2" in os.listdir(workdir / "checkpoints") and "4" not in os.listdir(workdir / "checkpoints")

    os.remove(small_disk / "filler")
    monkeypatch.setattr(mode_coverage, "report_progress", report_progress)
    capsys.readouterr()
    mode_coverage.main()
    assert f"resumed {workdir} from step 2\n" in capsys.readouterr().out
    assert json.loads((out / "results.json").read_text())["results"][0]["steps"] == 4
    table = (out / "table.md").read_text()

    # Full while writing the picture or the table of methods already trained: one line, the old table kept.
    fill(small_disk / "filler")
    with pytest.raises(SystemExit) as stop:
        mode_coverage.main()
    assert str(stop.value) == (
        f"mode_coverage.py: error: cannot write in {out} (No space left on device); free some space or make it "
        f"writable, then run the same command (methods already trained are only scored again)")
    assert (out / "table.md").read_text() == table


@pytest.mark.parametrize("name", ["grid25", "stacked_mnist"])
def test_seeds_vmapped_and_side_by_side_take_the_same_steps_and_their_timing_runs(name, data_dir):
    """The two ways of training seeds at once (`mode_coverage.seeds_side_by_side` picks one per network and
    backend; the resume test above checks the one picked against train.py) agree, and seeds_at_once.py times both."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import mode_coverage
    import seeds_at_once

    config = small(mode_coverage.CONFIGS[name].get_config())
    config.update_from_flattened_dict({"batch_size": 8, "model.g_width": 8, "model.d_width": 8,
                                       "optim.g_lr": 1e-2, "optim.d_lr": 1e-2, "data.data_dir": data_dir,
                                       "data.cache_mb": 0})
    dataset = data.open_dataset(config.data)
    pipelines = [data.make_pipeline(dataset, config).with_seed(seed) for seed in (3, 0)]
    generator, discriminator = train.build_models(config, pipelines[0].image_shape, 0)
    seed_array = jnp.asarray([3, 0], jnp.int32)
    init = mode_coverage.init_seeds(config, generator, discriminator, pipelines[0].image_shape)
    images = jnp.asarray(mode_coverage.next_chunk([p.batches(0, 3) for p in pipelines], 3))

    def seeds_samples(side_by_side, images):  # the raw generators' samples after len(images) steps
        states = mode_coverage.steps_in_one_call(mode_coverage.make_seeds_step(
            config, generator, discriminator, seed_array, config.batch_size, side_by_side))(init(seed_array), images)
        assert int(states.step[0]) == int(states.step[1]) == len(images)
        return mode_coverage.sample_seeds(states, generator, config.model.latent_dim, False, 16, side_by_side)

    vmapped, side_by_side = seeds_samples(False, images), seeds_samples(True, images)
    swapped = seeds_samples(True, images[:, ::-1])  # each seed given the other seed's batches
    # The two programs round differently and Adam at this learning rate amplifies it (1e-2 on Stacked MNIST on a
    # CPU, 1e-7 on the grid); another seed's batches move the samples 20x and more further.
    for seed in range(2):
        assert np.abs(vmapped[seed] - side_by_side[seed]).max() < np.abs(vmapped[seed] - swapped[seed]).max() / 5

    rows = seeds_at_once.time_method(config, name, "GAN", dataset, 2, calls=1, chunk=2)
    assert [row["how"] for row in rows] == ["1 seed", "2 seeds vmapped", "2 seeds vmapped, 2 per call",
                                            "2 seeds side by side", "2 seeds side by side, 2 per call",
                                            "2 input pipelines (host)"]
    assert rows[0]["vs_one_seed"] == 1 and rows[-1]["vs_one_seed"] is None
    assert all(row["ms_per_step"] > 0 and row["batch_size"] == 8 for row in rows)
