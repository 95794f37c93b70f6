"""train.py and sample.py run as a user runs them: subprocesses, real files, exit codes."""

import os

import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, env_without_tensorflow, run_script, tiny_flags
from jaxgan import train
from jaxgan.errors import UserError

sys.path.insert(0, ROOT)
import sample  # noqa: E402


def error_line(process) -> str:
    """The last line of stderr: where train.py / sample.py put their one-line error."""
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def test_train_then_sample_end_to_end(data_dir, tmp_path):
    workdir = str(tmp_path / "run")
    trained = run_script("train.py", "--workdir", workdir, *tiny_flags(data_dir))
    assert trained.returncode == 0, trained.stderr
    assert "step 4/4" in trained.stdout and "steps/s" in trained.stdout and "ETA" in trained.stdout
    assert {"config.json", "metrics.jsonl", "checkpoints", "samples"} <= set(os.listdir(workdir))

    grid = str(tmp_path / "grid.png")
    sampled = run_script("sample.py", "--workdir", workdir, "--labels", "0,1,2,3,4,5,6,7,8,9",
                         "--num", "100", "--out", grid)
    assert sampled.returncode == 0, sampled.stderr
    image = np.asarray(Image.open(grid))
    assert image.shape == (10 * 30 + 2, 10 * 30 + 2)  # 10x10 digits of 28 px with 2 px gaps

    raw = str(tmp_path / "x.npy")
    assert run_script("sample.py", "--workdir", workdir, "--num", "12", "--seed", "3", "--labels", "7",
                      "--truncation", "0.5", "--out", raw).returncode == 0
    array = np.load(raw)
    assert array.shape == (12, 28, 28, 1) and array.dtype == np.float32
    assert -1 <= array.min() and array.max() <= 1
    # Same arguments, same bytes in another process: tests/test_explorer.py. A finished run doing
    # nothing on a second `train.py`: tests/test_train.py::test_finished_run_does_nothing.


def test_unknown_config_key_is_one_clear_line(data_dir, tmp_path):
    workdir = tmp_path / "run"
    process = run_script("train.py", "--workdir", str(workdir), "--config.model.no_such_key=3")
    assert process.returncode != 0
    assert "Traceback" not in process.stderr
    assert error_line(process).startswith("train.py: error:") and "no_such_key" in error_line(process)
    assert not workdir.exists()


def test_bad_flag_value_is_one_clear_line(data_dir, tmp_path, tiny_config):
    for flag, message in (("--config.steps=many", "steps"),
                          ("--config.steps=0", "--config.steps=0 must be a positive integer")):
        process = run_script("train.py", "--workdir", str(tmp_path / "run"), flag)
        assert process.returncode != 0 and "Traceback" not in process.stderr
        assert message in error_line(process) and error_line(process).startswith("train.py: error:")
    assert not (tmp_path / "run").exists()
    # The other checks go through the same `validate` (one subprocess each would only add JAX's start-up).
    for key, value, message in (("loss.name", "nope", "unknown loss 'nope'"),
                                ("model.name", "nope", "unknown model 'nope'"),
                                ("augment.policy", "blur", "unknown augmentation op(s) 'blur'"),
                                ("eval_every", -1, "--config.eval_every=-1 must be 0 (never) or a positive integer")):
        config = tiny_config.copy_and_resolve_references()
        config.update_from_flattened_dict({key: value})
        with pytest.raises(UserError) as error:
            train.validate(config)
        assert message in str(error.value)


def test_unknown_dataset_is_one_clear_line(data_dir, tmp_path):
    workdir = tmp_path / "run"
    process = run_script("train.py", "--workdir", str(workdir), "--config.data.name=no_such_dataset",
                         f"--config.data.data_dir={data_dir}")
    assert process.returncode != 0 and "Traceback" not in process.stderr
    assert error_line(process) == ("train.py: error: unknown dataset 'no_such_dataset': set --config.data.name "
                                   "to a TFDS dataset (e.g. mnist) or a jaxgan one (jaxgan_digits, jaxgan_textures)")
    assert not workdir.exists()


def test_unwritable_workdir_is_one_clear_line(data_dir, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    process = run_script("train.py", "--workdir", str(blocker / "run"), *tiny_flags(data_dir))
    assert process.returncode != 0 and "Traceback" not in process.stderr
    assert error_line(process).startswith(f"train.py: error: cannot create --workdir {blocker / 'run'}")
    assert blocker.read_text() == "not a directory"


def test_sample_errors_are_one_clear_line(trained_workdir, tmp_path, capsys):
    empty = tmp_path / "empty"
    process = run_script("sample.py", "--workdir", str(empty))
    assert process.returncode != 0 and "Traceback" not in process.stderr
    assert error_line(process).startswith(f"sample.py: error: no checkpoint in {empty}")
    assert not empty.exists()

    # In this process: the same main() and exit path, without another JAX start-up per case.
    out = tmp_path / "x.png"
    with pytest.raises(SystemExit) as exit_info:
        sample.main(["--workdir", trained_workdir, "--labels", "3,eleven", "--out", str(out)])
    assert "unknown class 'eleven'" in str(exit_info.value.code) and not out.exists()
    with pytest.raises(SystemExit) as exit_info:
        sample.main(["--workdir", trained_workdir, "--out", str(tmp_path / "x.jpg")])
    assert exit_info.value.code != 0 and "must end with .png" in capsys.readouterr().err


def test_folder_of_styles_end_to_end(data_dir, tmp_path):
    rng = np.random.default_rng(0)
    for style in ("ink", "watercolor"):
        os.makedirs(tmp_path / "art" / style)
        for i in range(4):
            picture = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
            Image.fromarray(picture).save(tmp_path / "art" / style / f"{i}.png")
    workdir = str(tmp_path / "run")
    # As on a GPU machine without TensorFlow: building the folder's dataset must not need it.
    hidden = env_without_tensorflow(tmp_path)
    trained = run_script("train.py", "--config", "configs/folder.py", "--workdir", workdir,
                         f"--config.data.folder={tmp_path / 'art'}", "--config.data.image_size=32",
                         *tiny_flags(data_dir, steps=2), env=hidden)
    assert trained.returncode == 0, trained.stderr
    assert "Building the dataset of 8 pictures" in trained.stdout
    out = str(tmp_path / "styles.npy")
    sampled = run_script("sample.py", "--workdir", workdir, "--labels", "watercolor,ink", "--num", "4", "--out", out,
                         env=hidden)
    assert sampled.returncode == 0, sampled.stderr
    assert np.load(out).shape == (4, 32, 32, 3)

    # The same UserError path as every other one-line error above; in process, to spare a JAX start-up.
    from configs import folder

    with pytest.raises(UserError, match=r"^no folder of pictures given: pass --config.data.folder=PATH$"):
        train.train_and_evaluate(folder.get_config(), str(tmp_path / "other"))
    assert not (tmp_path / "other").exists()


def test_sigterm_stops_after_a_checkpoint_and_the_same_command_resumes_exactly(data_dir, tmp_path, tiny_config):
    import signal
    import subprocess
    import sys

    from conftest import ROOT
    from jaxgan import train, trained
    from conftest import tree_equal

    workdir = str(tmp_path / "run")
    command = [sys.executable, "train.py", "--workdir", workdir, *tiny_flags(data_dir, steps=100),
               "--config.log_every=5", "--config.checkpoint_every=1000", "--config.sample_every=1000"]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("step 5/100"):
            process.send_signal(signal.SIGTERM)
            break
    output = process.stdout.read()
    assert process.wait(timeout=120) == 0, process.stderr.read()
    assert "Stopped by SIGTERM after step" in output and "Run the same command to continue." in output
    stopped_at = int(output.split("after step ")[1].split()[0])
    assert 5 <= stopped_at < 100
    assert trained.load(workdir).step == stopped_at  # the checkpoint of the step it stopped after

    resumed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"Resumed {workdir} from step {stopped_at}." in resumed.stdout

    # The reference run saves and draws only at its end: cadences do not change the state, and the
    # tiny config's every-2-steps ones made this run a minute of checkpoint writes.
    tiny_config.steps = tiny_config.log_every = tiny_config.checkpoint_every = tiny_config.sample_every = 100
    uninterrupted = train.train_and_evaluate(tiny_config, str(tmp_path / "whole"))
    assert tree_equal(trained.load(workdir).state, uninterrupted)
