"""The same run on 1, 4 and 8 devices, and on 2 processes of 2: one computation, sharded differently.

Each configuration runs in its own subprocess (the device count is fixed when JAX starts). Why two
tolerances: after one step a real bug (per-device batch-norm statistics, per-device noise, a wrong
mean) is far above 1e-4, while over many steps Adam turns float round-off from another reduction
order into learning-rate-sized steps (see DESIGN.md, Determinism).
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, run_script, tiny_flags, xla_flags


def run_devices(workdir, data_dir, out, devices, extra=()):
    env = dict(os.environ, XLA_FLAGS=xla_flags(devices), JAX_PLATFORMS="cpu")
    return subprocess.Popen([sys.executable, "tests/device_run.py", str(workdir), data_dir, str(out), *extra],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def device_runs(data_dir, tmp_path_factory):
    """{device count: arrays of device_run.py}."""
    tmp = tmp_path_factory.mktemp("devices")
    # All three at once: most of each run is single-threaded compilation, so they share the cores well.
    # (Two devices per process: the two processes below; 2 devices sampling: tests/test_explorer.py.)
    processes = {devices: run_devices(tmp / f"run{devices}", data_dir, tmp / f"{devices}.npz", devices)
                 for devices in (1, 4, 8)}
    results = {}
    for devices, process in processes.items():
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, output
        results[devices] = dict(np.load(tmp / f"{devices}.npz"))
    return results


def one_step_leaves(result):
    return {k: v for k, v in result.items() if k not in ("samples", "first_metrics", "devices")
            and not k.startswith("final/")}


@pytest.mark.parametrize("devices", [4, 8])
def test_one_step_is_the_same_on_any_device_count(device_runs, devices):
    reference, sharded = device_runs[1], device_runs[devices]
    assert int(sharded["devices"]) == devices
    leaves = one_step_leaves(reference)
    assert any(k.startswith("d_grad") for k in leaves) and any(k.startswith("g_stats") for k in leaves)
    for key, expected in leaves.items():
        np.testing.assert_allclose(sharded[key], expected, rtol=1e-4, atol=1e-5, err_msg=key)
    first, other = json.loads(str(reference["first_metrics"])), json.loads(str(sharded["first_metrics"]))
    for metric in ("d_loss", "g_loss", "d_real", "d_fake"):
        np.testing.assert_allclose(other[metric], first[metric], rtol=1e-4, err_msg=metric)


@pytest.mark.parametrize("devices", [4, 8])
def test_twenty_steps_give_the_same_raw_generator_samples(device_runs, devices):
    np.testing.assert_allclose(device_runs[devices]["samples"], device_runs[1]["samples"], atol=5e-3)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_two_processes(workdir, data_dir, steps):
    port = free_port()
    env = dict(os.environ, XLA_FLAGS=xla_flags(2), JAX_PLATFORMS="cpu")
    processes = [subprocess.Popen(
        [sys.executable, "train.py", "--workdir", str(workdir), *tiny_flags(data_dir, steps=steps),
         "--config.log_every=5", "--config.checkpoint_every=5", "--config.sample_every=10",
         f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={i}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output
    return outputs


def test_two_processes_train_one_model_and_resume_after_a_restart(device_runs, data_dir, tmp_path):
    from jaxgan import trained

    workdir = tmp_path / "two_processes"
    first = train_two_processes(workdir, data_dir, steps=10)
    assert "on 4 cpu device(s)" in first[0] and "step 10/10" in first[0]
    assert "step 10/10" not in first[1]  # only process 0 reports and writes
    second = train_two_processes(workdir, data_dir, steps=20)  # new processes: a restart
    assert "Resumed" in second[0] and "from step 10" in second[0]

    with open(workdir / "metrics.jsonl") as f:
        assert [json.loads(line)["step"] for line in f] == [5, 10, 15, 20]
    assert sorted(os.listdir(workdir / "samples")) == ["step_0000010.png", "step_0000020.png"]
    # The same 20 steps as one process with 4 devices (device_run.py, same config and seed).
    final = trained.load(str(workdir)).state.g_params
    import jax

    reference = device_runs[4]
    for path, leaf in jax.tree_util.tree_flatten_with_path(final)[0]:
        np.testing.assert_allclose(leaf, reference["final/g_params" + jax.tree_util.keystr(path)],
                                   rtol=1e-3, atol=1e-4)


def test_batch_not_divisible_by_the_devices_is_a_clear_error(data_dir, tmp_path):
    process = run_script("train.py", "--workdir", str(tmp_path / "run"), *tiny_flags(data_dir), devices=3)
    assert process.returncode != 0 and "Traceback" not in process.stderr
    assert process.stderr.strip().splitlines()[-1] == (
        "train.py: error: --config.batch_size=8 is not divisible by the 3 devices; use a multiple of 3")
    assert not (tmp_path / "run").exists()
