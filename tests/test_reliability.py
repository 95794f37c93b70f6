"""Faults injected for real: SIGKILL at any moment, damaged checkpoints, a full and a read-only disk,
hostile config values, a step too big for the memory.

Run with `pytest -s --hypothesis-show-statistics tests/test_reliability.py`, each injection prints one
`fault:` line and Hypothesis the number of examples it tried: README.md's Reliability table is made of them.
"""

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import optax
import pytest
from absl import flags
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import ROOT, fill, make_tiny_config, remount, run_script, tiny_flags, tree_equal
from jaxgan import augment, data, train, trained
from jaxgan.errors import UserError
from test_cli import error_line
from test_train import files_digest

# The runs that faults interrupt: the tiny model for STEPS steps, a checkpoint every INTERVAL steps.
STEPS, INTERVAL = 60, 10


def fault_flags(data_dir: str) -> list[str]:
    """train.py flags of the interrupted runs: a progress line per step, no sample grid but the last, the
    newest 4 checkpoints kept."""
    return [*tiny_flags(data_dir, steps=STEPS), "--config.log_every=1", f"--config.checkpoint_every={INTERVAL}",
            "--config.sample_every=1000", "--config.keep_checkpoints=4"]


@pytest.fixture
def report(request, capsys):
    """report(text): prints "fault: text" past pytest's capture when pytest runs with -s."""
    def report_line(text: str) -> None:
        if request.config.getoption("capture") == "no":
            with capsys.disabled():
                print(f"fault: {text}")
    return report_line


def fault_config(data_dir: str):
    """The config of `fault_flags`, for runs in this process."""
    config = make_tiny_config(data_dir)
    config.steps, config.log_every, config.checkpoint_every, config.sample_every = STEPS, 1, INTERVAL, 1000
    config.keep_checkpoints = 4
    return config


@pytest.fixture(scope="module")
def uninterrupted(data_dir, tmp_path_factory):
    """(workdir, final state) of the interrupted runs' config trained in one go, in this process.

    The workdir (checkpoints 30 to 60) is copied, never changed, by the tests that use it.
    """
    workdir = tmp_path_factory.mktemp("uninterrupted") / "run"
    return workdir, train.train_and_evaluate(fault_config(data_dir), str(workdir))


class TrainingProcess:
    """`python train.py --workdir WORKDIR FLAGS` in a subprocess; threads collect its output lines as they come."""

    def __init__(self, workdir, flags: list[str]):
        self.popen = subprocess.Popen([sys.executable, "train.py", "--workdir", str(workdir), *flags], cwd=ROOT,
                                      env=dict(os.environ, JAX_PLATFORMS="cpu"), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
        self.stdout, self.stderr = [], []
        self.readers = [threading.Thread(target=self._collect, args=(stream, lines), daemon=True)
                        for stream, lines in ((self.popen.stdout, self.stdout), (self.popen.stderr, self.stderr))]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _collect(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)

    def wait_for(self, condition, timeout: float = 300) -> bool:
        """Checks `condition()` every millisecond until it holds (True) or the process ends (False)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.popen.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.001)
        return True

    def printed(self, start: str) -> bool:
        return any(line.startswith(start) for line in self.stdout)

    def finish(self) -> int:
        """Waits for the process and its output; returns its exit status."""
        returncode = self.popen.wait(timeout=300)
        for reader in self.readers:
            reader.join()
        return returncode

    def start_step(self) -> int | None:
        """The step training starts from, once the line saying so is out."""
        for line in self.stdout:
            if line.startswith("Compiled the train step"):
                return int(line.split(" from step ")[1].split()[0])
        return None

    def reached_step(self) -> int:
        """The last step whose progress line came out, else the step training started from."""
        return max([int(line.split()[1].split("/")[0]) for line in self.stdout if line.startswith("step ")],
                   default=self.start_step() or 0)


def checkpoint_dirs(checkpoints) -> tuple[list[int], list[str]]:
    """(steps of the complete checkpoints, names of the partial ones Orbax is writing or was killed writing)."""
    names = os.listdir(checkpoints) if os.path.isdir(checkpoints) else []
    partial = sorted(name for name in names if "orbax-checkpoint-tmp" in name)
    return sorted(int(name) for name in names if name.isdigit()), partial


# When the kill lands: each `moment(process, checkpoints)` returns once it has come (False if the
# process ended first). Training starts after the "Compiled the train step ... from step S" line.
def after_progress_line(step):
    def moment(process, checkpoints):
        return process.wait_for(lambda: process.printed(f"step {step}/"))
    moment.description = f"after the progress line of step {step}"
    return moment


def while_a_checkpoint_is_written(process, checkpoints):
    # The process's second checkpoint: Orbax deletes the partial ones a previous kill left in the
    # background, and waits for that only in the first save; this name is new for sure.
    if not process.wait_for(lambda: process.start_step() is not None):
        return False
    step = min((process.start_step() // INTERVAL + 2) * INTERVAL, STEPS)
    return process.wait_for(lambda: any(name.startswith(f"{step}.") for name in checkpoint_dirs(checkpoints)[1]))


while_a_checkpoint_is_written.description = "while Orbax writes a checkpoint"


def seconds_into_training(seconds):
    def moment(process, checkpoints):
        reached = process.wait_for(lambda: process.printed("Compiled the train step"))
        time.sleep(seconds)
        return reached
    moment.description = f"{seconds} s after the train step is compiled"
    return moment


def test_sigkill_at_any_moment_resumes_from_the_newest_complete_checkpoint_exactly(data_dir, tmp_path, uninterrupted,
                                                                                   capsys, report):
    workdir = tmp_path / "run"
    checkpoints = workdir / "checkpoints"
    newest_complete = 0
    for moment in (after_progress_line(25), while_a_checkpoint_is_written, seconds_into_training(0.5)):
        process = TrainingProcess(workdir, fault_flags(data_dir))
        assert moment(process, checkpoints), "".join(process.stderr)
        process.popen.send_signal(signal.SIGKILL)
        assert process.finish() == -signal.SIGKILL
        # It started from the newest checkpoint the previous kill left complete, and found it readable.
        assert process.start_step() == newest_complete
        assert not any("Warning" in line for line in process.stderr), "".join(process.stderr)
        complete, partial = checkpoint_dirs(checkpoints)
        if moment is while_a_checkpoint_is_written:
            assert partial, "the kill was meant to land while Orbax was writing"
        assert all(int(name.split(".")[0]) > max(complete, default=0) for name in partial)
        newest_complete = max(complete, default=0)
        report(f"SIGKILL {moment.description}: reached step {process.reached_step()}, newest complete "
               f"checkpoint {newest_complete}, steps lost {process.reached_step() - newest_complete}, "
               f"partial checkpoint left {partial or 'none'}")

    assert tree_equal(train.train_and_evaluate(fault_config(data_dir), str(workdir)), uninterrupted[1])
    assert f"Resumed {workdir} from step {newest_complete}." in capsys.readouterr().out
    with open(workdir / "metrics.jsonl") as f:
        assert [json.loads(line)["step"] for line in f] == list(range(1, STEPS + 1))  # each step once, whole lines
    assert sorted(os.listdir(checkpoints)) == ["30", "40", "50", "60"]


# Damage done to a checkpoint directory, as a disk or a careless copy does it.
def largest_array_file(checkpoint_dir) -> str:
    files = [os.path.join(root, name) for root, _, names in os.walk(os.path.join(checkpoint_dir, "state"))
             for name in names]
    return max(files, key=os.path.getsize)


def flip_bytes(path: str) -> None:
    """Inverts 16 bytes in the middle of the file."""
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        chunk = f.read(16)
        f.seek(-len(chunk), os.SEEK_CUR)
        f.write(bytes(b ^ 0xFF for b in chunk))


def flip_array_bytes(checkpoint_dir):
    """Flips bytes in zstd-compressed array data: TensorStore fails to decode them or decodes other values."""
    flip_bytes(largest_array_file(checkpoint_dir))


def replace_arrays(checkpoint_dir, other_checkpoint_dir):
    """Puts another checkpoint's arrays in place of this one's (a copy mix-up TensorStore reads without complaint)."""
    shutil.rmtree(os.path.join(checkpoint_dir, "state"))
    shutil.copytree(os.path.join(other_checkpoint_dir, "state"), os.path.join(checkpoint_dir, "state"))


def truncate_array_file(checkpoint_dir):
    path = largest_array_file(checkpoint_dir)
    os.truncate(path, os.path.getsize(path) // 2)


def remove_state_metadata(checkpoint_dir):
    os.remove(os.path.join(checkpoint_dir, "state", "_METADATA"))


def flip_meta_json_bytes(checkpoint_dir):
    flip_bytes(os.path.join(checkpoint_dir, "meta", "metadata"))


def checkpoint_warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Warning: the checkpoint")]


def test_damaged_checkpoints_are_named_and_skipped_never_used(uninterrupted, data_dir, tmp_path, capsys, report):
    original, final_state = uninterrupted
    workdir = tmp_path / "run"
    shutil.copytree(original, workdir)
    replace_arrays(workdir / "checkpoints" / "60", workdir / "checkpoints" / "30")
    flip_meta_json_bytes(workdir / "checkpoints" / "50")
    shutil.copytree(workdir, tmp_path / "two_damaged")
    capsys.readouterr()

    assert trained.load(str(workdir)).step == 40
    sixty, fifty = checkpoint_warnings(capsys.readouterr().err)
    assert sixty == (f"Warning: the checkpoint at step 60 in {workdir} is unreadable (its arrays differ from the ones "
                     f"saved: sha256 fingerprint mismatch); sampling from step 40.")
    assert fifty.startswith(f"Warning: the checkpoint at step 50 in {workdir} is unreadable (its metadata: ")
    assert fifty.endswith("; sampling from step 40.")
    with pytest.raises(UserError, match=f"the checkpoint at step 60 in {workdir} is unreadable .* pick another --step"):
        trained.load(str(workdir), step=60)
    truncate_array_file(workdir / "checkpoints" / "40")
    remove_state_metadata(workdir / "checkpoints" / "30")
    with pytest.raises(UserError, match=f"no checkpoint in {workdir} is readable \\(step 60: .*; step 50: .*; "
                                        f"step 40: .*; step 30: .*\\); move {workdir}/checkpoints away"):
        trained.load(str(workdir))
    report("another checkpoint's arrays in place, bytes flipped in JSON metadata, array data cut in half, metadata "
           "file removed (one checkpoint each): each named, never used")

    workdir = tmp_path / "two_damaged"
    resumed = train.train_and_evaluate(fault_config(data_dir), str(workdir))
    output = capsys.readouterr()
    assert [line.split(" is unreadable")[0] for line in checkpoint_warnings(output.err)] == [
        f"Warning: the checkpoint at step {step} in {workdir}" for step in (60, 50)]
    assert f"Resumed {workdir} from step 40." in output.out
    assert tree_equal(resumed, final_state)
    assert sorted(os.listdir(workdir / "checkpoints")) == ["30", "40", "50", "60"]
    assert sorted(os.listdir(workdir / "unreadable_checkpoints")) == ["50", "60"]
    report(f"the two newest checkpoints damaged: both named, training resumed from step 40 (steps lost 20, "
           f"interval {INTERVAL}), final state bitwise equal")

    flip_array_bytes(workdir / "checkpoints" / "60")
    out = tmp_path / "x.npy"
    process = run_script("sample.py", "--workdir", str(workdir), "--num", "4", "--out", str(out))
    assert process.returncode == 0 and "Traceback" not in process.stderr, process.stderr
    warning = error_line(process)
    assert warning.startswith(f"Warning: the checkpoint at step 60 in {workdir} is unreadable (")
    assert warning.endswith("); sampling from step 50.") and len(warning) < 400, warning
    assert "from step 50 of" in process.stdout and np.load(out).shape == (4, 28, 28, 1)
    report("sample.py on bytes flipped in the newest checkpoint: named in a warning, sampled from step 50")


def checkpoint_digests(checkpoints, steps) -> dict[int, dict[str, str]]:
    return {step: files_digest(checkpoints / str(step)) for step in steps}


def test_full_then_read_only_disk_keeps_every_checkpoint_and_the_same_command_continues(data_dir, small_disk,
                                                                                          uninterrupted, report):
    workdir = small_disk / "run"
    checkpoints = workdir / "checkpoints"
    command = [*fault_flags(data_dir), "--config.log_every=1000"]  # while it trains, only checkpoints are written
    process = TrainingProcess(workdir, command)
    assert process.wait_for(lambda: (checkpoints / str(INTERVAL)).is_dir()), "".join(process.stderr)
    fill(small_disk / "filler")
    before = checkpoint_digests(checkpoints, checkpoint_dirs(checkpoints)[0])
    assert process.finish() == 1
    stderr = "".join(process.stderr)
    assert "Traceback" not in stderr, stderr
    kept = checkpoint_dirs(checkpoints)[0][-1]
    assert stderr.strip().splitlines()[-1] == (
        f"train.py: error: cannot write in {workdir} (No space left on device); its checkpoints up to step {kept} "
        f"are intact; free some space or make it writable, then run the same command to continue from step {kept}")
    assert checkpoint_digests(checkpoints, before) == before
    report(f"disk full while training: clear error, checkpoints {sorted(before)} intact, partial write left "
           f"{checkpoint_dirs(checkpoints)[1] or 'none'}, resumable from step {kept}")

    remount(small_disk, "ro")
    everything = files_digest(workdir)
    with pytest.raises(UserError, match=f"--workdir {workdir} is not writable; pick a writable directory"):
        train.train_and_evaluate(fault_config(data_dir), str(workdir))
    assert files_digest(workdir) == everything
    report("read-only disk at start: clear error, workdir unchanged")

    remount(small_disk, "rw")
    os.remove(small_disk / "filler")
    process = TrainingProcess(workdir, command)
    assert process.finish() == 0, "".join(process.stderr)
    assert process.printed(f"Resumed {workdir} from step {kept}.")
    assert tree_equal(trained.load(str(workdir)).state, uninterrupted[1])
    report(f"space back: the same command resumed from step {kept} and ended bitwise equal")


# Hostile values of config overrides: the keys `train.validate` is responsible for, of every type.
INTEGER_KEYS = ("seed", "steps", "batch_size", "log_every", "checkpoint_every", "sample_every", "keep_checkpoints",
                "eval_every", "model.latent_dim", "model.g_width", "model.d_width", "model.mapping_layers",
                "model.attention_resolution", "optim.n_dis", "loss.r1_every", "augment.ada_images")
FLOAT_KEYS = ("optim.g_lr", "optim.d_lr", "optim.b1", "optim.b2", "optim.ema_decay", "loss.gp_weight",
              "loss.r1_gamma", "augment.ada_target")
TEXT_KEYS = ("loss.name", "optim.nonfinite", "model.name", "optim.lr_decay", "augment.policy")
HOSTILE_NUMBERS = st.one_of(
    st.integers(-3, 3), st.sampled_from([2 ** 31 - 1, 2 ** 31, 2 ** 63, -2 ** 63, 10 ** 30]), st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.999999, 1 - 1e-12, 1.0, 1e-45, -0.0, 3.5e38, 1e300]))
HOSTILE_TEXT = st.one_of(st.sampled_from(["nan", "-nan", "inf", "-inf", "1e400", "", "1.5", "0x10", "1_000", "True",
                                          "None", "[1]", "skip", "hinge", "\u221e"]), st.text(max_size=6))
HOSTILE_VALUES = st.one_of(HOSTILE_NUMBERS.map(str), HOSTILE_TEXT)


def load_train_script():
    """train.py as a module (its name would clash with jaxgan.train)."""
    spec = importlib.util.spec_from_file_location("train_script", os.path.join(ROOT, "train.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TRAIN_SCRIPT = load_train_script()


def assert_usable(config) -> None:
    """What the code after `validate` does with the values, done here: none may fail."""
    jax.random.key(config.seed)
    np.random.default_rng([config.seed, 0])
    for key in ("steps", "batch_size", "log_every", "checkpoint_every", "sample_every", "keep_checkpoints"):
        assert 0 < config[key] == np.int32(config[key])  # the step counter and sizes are int32 on the device
    for key in ("latent_dim", "g_width", "d_width"):
        assert config.model[key] >= 1
    optimizer = optax.adam(config.optim.g_lr, b1=config.optim.b1, b2=config.optim.b2)
    gradient = np.float32([1.0, -2.0, 0.0])
    updates, _ = optimizer.update(gradient, optimizer.init(gradient))
    assert np.isfinite(updates).all()
    assert 0 <= config.optim.ema_decay <= 1 and config.optim.nonfinite in ("skip", "stop")
    assert config.model.name in train.MODELS and config.optim.lr_decay in ("constant", "linear")
    assert config.model.mapping_layers >= 1 and config.model.attention_resolution >= 0
    assert 1 <= config.optim.n_dis <= 100 and config.loss.r1_every >= 1 and config.augment.ada_images >= 1
    for value in (config.loss.gp_weight, config.loss.r1_gamma):
        assert 0 <= np.float32(value) < np.inf
    assert 0 <= config.augment.ada_target < 1
    assert set(train.augment_policy(config)) <= set(augment.OPS)
    if config.eval_every:  # evaluation on, with the default eval.* settings
        assert config.eval_every <= 2 ** 31 - 1


@pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning")  # config_flags loading the config file
@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(INTEGER_KEYS + FLOAT_KEYS + TEXT_KEYS), value=HOSTILE_VALUES)
def test_hostile_config_values_end_in_one_clear_line_or_a_usable_config(key, value):
    argv = ["train.py", "--config", os.path.join(ROOT, "configs", "default.py"), f"--config.{key}={value}"]
    try:
        config, _ = TRAIN_SCRIPT.parse_flags(argv, flags.FlagValues())
    except SystemExit as e:
        message = str(e.code)
        assert message.startswith("train.py: error: flag --config.") and "\n" not in message and key in message, message
        event("refused by the flag parser")
        return
    try:
        train.validate(config)
    except UserError as e:
        assert "\n" not in str(e) and f"--config.{key}" in str(e), str(e)
        event("refused by validate")
        return
    assert_usable(config)
    event("accepted and usable")


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(name=st.one_of(st.sampled_from(["-1", "3", "nan", "", "a/b/c", "mnist:9.9.9", "mnist/no_config", "../x",
                                       "\x00"]),
                      st.text(max_size=12)))  # too short for the jaxgan_* names, which would be built
def test_hostile_dataset_names_end_in_one_clear_line(name, tmp_path_factory):
    with pytest.raises(UserError) as error:
        data.load_dataset(name, "train", "label", str(tmp_path_factory.getbasetemp() / "no_datasets"))
    assert "\n" not in str(error.value) and repr(name) in str(error.value)


# Values that parse as numbers, so that most runs get past the flags to the checks of the values (flags
# that do not parse are the in-process test's daily fare); none is expensive where a key accepts it.
CLI_HOSTILE_VALUES = st.sampled_from(["nan", "-1", "0", "1e400", str(10 ** 30)])


@settings(max_examples=3, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(INTEGER_KEYS + FLOAT_KEYS + TEXT_KEYS + ("data.image_size", "data.patches",
                                                                       "data.workers", "data.crop")),
       value=CLI_HOSTILE_VALUES)
def test_hostile_overrides_of_train_py_change_nothing_in_the_workdir(key, value, uninterrupted, data_dir, report):
    finished_run = uninterrupted[0]
    before = files_digest(finished_run)
    process = TrainingProcess(finished_run, [*fault_flags(data_dir), f"--config.{key}={value}"])
    returncode = process.finish()
    stdout, stderr = "".join(process.stdout), "".join(process.stderr)
    assert "Traceback" not in stderr, stderr
    if returncode:
        assert returncode == 1 and stderr.strip().splitlines()[-1].startswith("train.py: error: ")
    else:
        assert "nothing to do" in stdout
    assert files_digest(finished_run) == before
    report(f"train.py --config.{key}={value!r} on a finished run: exit {returncode}, workdir unchanged")


def test_a_step_too_big_for_the_memory_is_refused_before_anything_is_written(tiny_config, tmp_path, monkeypatch):
    workdir = tmp_path / "run"
    too_big = r"one train step needs [\d.]+ GiB on each device \(a batch of 8 per device\) but a cpu device has "
    tiny_config.model.g_width = tiny_config.model.d_width = train.MAX_WIDTH  # terabytes of parameters
    with pytest.raises(UserError, match=too_big + r"[\d.]+ GiB; lower --config.batch_size"):
        train.train_and_evaluate(tiny_config, str(workdir))
    assert not workdir.exists()

    # A state and batch that fit, and temporaries that do not: what only XLA's count of the compiled step sees.
    tiny_config.model.g_width = tiny_config.model.d_width = 8
    monkeypatch.setattr(train, "device_memory_bytes", lambda: 2 ** 20)
    with pytest.raises(UserError, match=too_big + r"0.0 GiB"):
        train.train_and_evaluate(tiny_config, str(workdir))
    assert not workdir.exists()
