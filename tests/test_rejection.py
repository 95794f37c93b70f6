"""Discriminator rejection sampling: the sampler against a known density ratio, D's calibration, the benchmark's DRS."""

import json
import os
import sys

import flax.linen as nn
import jax
import numpy as np
import pytest

from conftest import ROOT
from jaxgan import data, rejection, sampling, train
from jaxgan.errors import UserError

sys.path.insert(0, ROOT)
from configs import ring8  # noqa: E402


class FirstCoordinate(nn.Module):
    """A generator of N(0, 1): the first coordinate of its latent, [N, 1]."""

    @nn.compact
    def __call__(self, z, labels=None, train=True):
        return z[:, :1]


class LogRatio(nn.Module):
    """The optimal D of p_data = N(1, 1) against p_g = N(0, 1): logit log p_data / p_g = x - 1/2."""

    @nn.compact
    def __call__(self, x, labels=None, update_stats=False):
        return x[:, 0] - 0.5


class PackedLogRatio(nn.Module):
    """The optimal packed D of the same two: a pack [N, m] of m independent draws scores the sum of
    its members' log ratios."""

    @nn.compact
    def __call__(self, packs, labels=None, update_stats=False):
        return (packs - 0.5).sum(axis=-1)


def draw(num_samples, quantile, seed=0):
    return rejection.rejection_sample(FirstCoordinate(), LogRatio(), {}, {}, {}, {}, 4, num_samples, seed, quantile)


def test_accepted_samples_follow_the_data_where_d_is_the_density_ratio():
    samples, how = draw(4000, 0.999)
    # N(1, 1) accepted out of N(0, 1): the mean moves by 1 (SE 0.016); only the top 0.1 % is capped.
    assert samples.shape == (4000, 1) and samples.dtype == np.float32
    assert abs(samples.mean() - 1.0) < 0.06 and abs(samples.std() - 1.0) < 0.05
    # Acceptance E[exp(x - 1/2 - M)] = exp(-M) with M the 0.999 quantile of x - 1/2 (3.09 - 0.5).
    assert how["acceptance"] == pytest.approx(np.exp(-(3.09 - 0.5)), rel=0.15)
    assert how["candidates"] % rejection.CHUNK == 0 and how["candidates"] >= rejection.BURN_IN
    np.testing.assert_array_equal(draw(4000, 0.999)[0], samples)  # the same arguments, the same samples
    assert not np.array_equal(draw(4000, 0.999, seed=1)[0], samples)


@pytest.mark.parametrize("num_packed", [2, 3])
def test_a_packed_d_scores_each_candidate_with_fixed_partners(num_packed):
    samples, how = rejection.rejection_sample(FirstCoordinate(), PackedLogRatio(), {}, {}, {}, {}, 4, 4000, 0,
                                              0.999, num_packed)
    # Partners fixed for every candidate add one constant to its log ratio, which M absorbs: N(1, 1)
    # again. (A candidate packed with itself would be weighted by exp(2 (x - 1/2)): N(2, 1).)
    assert samples.shape == (4000, 1)
    assert abs(samples.mean() - 1.0) < 0.06 and abs(samples.std() - 1.0) < 0.05
    assert how["acceptance"] == pytest.approx(np.exp(-(3.09 - 0.5)), rel=0.15)


def test_with_m_at_the_lowest_logit_every_candidate_passes_in_order():
    samples, how = draw(3000, 0.0)
    plain = np.asarray(train.make_generate(FirstCoordinate())({}, {}, sampling.latents(0, 3000, 4), None))
    assert how["threshold"] == pytest.approx(float(plain[:, 0].min() - 0.5), abs=0.5)
    assert how["acceptance"] > 0.999
    np.testing.assert_array_equal(samples[:2000], plain[:2000])  # at most one of the first rejected: its logit is M


def test_a_quantile_outside_0_1_and_a_d_that_scores_a_group_statistic_are_refused():
    with pytest.raises(UserError, match=r"rejection quantile 1: use a value in \[0, 1\)"):
        draw(10, 1)
    config = ring8.get_config()
    config.model.d_pack = 2
    rejection.check_config(config)  # packs are scored with fixed partners
    config.model.d_mbstd_group = 4
    with pytest.raises(UserError, match="minibatch-stddev feature, a statistic of its whole group: set "
                                        "model.d_mbstd_group=0"):
        rejection.check_config(config)


@pytest.mark.parametrize("num_packed", [1, 2])
def test_calibration_trains_d_alone_against_the_frozen_generator(num_packed):
    config = ring8.get_config()
    config.batch_size = 100
    config.model.d_pack = num_packed
    generator, discriminator = train.build_models(config, (2,), 0)
    state = jax.jit(lambda: train.init_state(config, generator, discriminator, (2,)))()
    pipeline = data.make_pipeline(data.open_dataset(config.data), config)

    def calibrate():
        return rejection.calibrate_discriminator(config, generator, discriminator, state, state.g_params,
                                                 pipeline.batches(0, 300), 300)

    d_params, d_batch_stats, losses = calibrate()
    assert losses.shape == (300,) and losses[-50:].mean() < losses[:50].mean() - 0.1  # D learns the ring from G's blob
    changed = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), d_params, state.d_params)
    assert min(jax.tree.leaves(changed)) > 0
    again = calibrate()  # a pure function of the state and the data: the same D
    jax.tree.map(np.testing.assert_array_equal, again[0], d_params)
    # The calibrated D scores the ring's points above G's: its logit, log p_data / p_g, ranks them.
    real = pipeline.batch(1000)["image"]
    fake = train.make_generate(generator)(state.g_params, state.g_batch_stats, sampling.latents(0, 100, 2),
                                          None)
    logits = lambda x: discriminator.apply({"params": d_params, "batch_stats": d_batch_stats},  # noqa: E731
                                           train.pack(x, num_packed))
    assert float(logits(real).mean()) > float(logits(fake).mean()) + 1


def test_the_benchmark_scores_drs_samples_of_the_runs_it_trained(tmp_path, monkeypatch, capsys):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import mode_coverage

    out = tmp_path / "out"
    command = ["mode_coverage.py", "--only", "grid25", "--seeds", "2", "--steps", "100", "--methods",
               "GAN,PacGAN2", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", command)
    mode_coverage.main()
    plain = json.loads((out / "results.json").read_text())["results"]
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", command + ["--drs-steps", "200", "--drs-quantile", "0.5"])
    mode_coverage.main()  # the finished runs are not trained again: only calibrated, sampled and scored
    printed = capsys.readouterr().out
    assert "step 100/100" not in printed and printed.count("DRS, seed ") == 4
    results = json.loads((out / "results.json").read_text())["results"]
    table = (out / "table.md").read_text()
    for result, plain_result in zip(results, plain):  # GAN, then PacGAN2: its packs scored with partners
        assert result["rejection"]["calibration_steps"] == 200 and len(result["rejection"]["draws"]) == 2
        for draw in result["rejection"]["draws"]:
            assert 0.3 < draw["acceptance"] < 1 and draw["candidates"] >= 2500
            assert draw["calibration_loss"][1] < draw["calibration_loss"][0]
        assert f"| jaxgan {result['method']}, DRS (200 calibration steps, quantile 0.5) | 100 |" in table
        assert result["train_seconds"] == plain_result["train_seconds"]
    # After 100 steps G spreads its points over too few modes, unevenly; the calibrated D evens them
    # out (GAN's KL 1.34 -> 1.13 and 1.70 -> 1.59 here), while too coarse yet to see the modes' width.
    for drs_score, plain_score in zip(results[0]["scores"], plain[0]["scores"]):
        assert drs_score["reverse_kl"] < plain_score["reverse_kl"] - 0.05, (drs_score, plain_score)
