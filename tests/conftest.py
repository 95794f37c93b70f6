"""Shared fixtures: one locally built TFDS data dir and tiny configs that train in seconds."""

import errno
import os
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Tests compile the same tiny programs many times, in this process and in subprocesses: let JAX's
# persistent cache keep them (the executables are the same, so results are bitwise the same).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "jaxgan-test-jax-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# The suite compiles hundreds of small programs and runs each for a few steps: LLVM's lowest
# optimisation level compiles them 40 % faster. Every process of the suite (this one and the
# scripts it starts, see `xla_flags`) uses it, so comparisons between them stay bitwise.
FAST_COMPILE_FLAGS = "--xla_backend_optimization_level=0"
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE_FLAGS}".strip()

import jax  # noqa: E402  (after the settings above: JAX reads them when it is imported)
import numpy as np  # noqa: E402


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """A TFDS data dir holding jaxgan_digits, built once for the whole session (about 6 s)."""
    from jaxgan import data

    path = str(tmp_path_factory.mktemp("tensorflow_datasets"))
    data.load_dataset("jaxgan_digits", "train", "label", path)
    return path


# The default config shrunk to a model and run that take seconds on a CPU (dotted keys). Without the
# in-memory cache a run decodes only the 32 pictures it reads, not all 4,000 of jaxgan_digits.
TINY = {"steps": 4, "batch_size": 8, "model.latent_dim": 8, "model.g_width": 8, "model.d_width": 8,
        "log_every": 2, "checkpoint_every": 2, "sample_every": 2, "data.cache_mb": 0}


def make_tiny_config(data_dir: str):
    """configs/default.py with the TINY values, reading TFDS data from `data_dir`."""
    sys.path.insert(0, ROOT)
    from configs import default

    config = default.get_config()
    config.update_from_flattened_dict(TINY)
    config.data.data_dir = data_dir
    return config


@pytest.fixture
def tiny_config(data_dir):
    return make_tiny_config(data_dir)


def tiny_flags(data_dir: str, steps: int = 4) -> list[str]:
    """Command-line overrides giving train.py the config of `make_tiny_config`, with `steps`."""
    values = dict(TINY, steps=steps)
    return [f"--config.{key}={value}" for key, value in values.items()] + [f"--config.data.data_dir={data_dir}"]


def xla_flags(devices: int) -> str:
    """XLA_FLAGS for a process of the suite on `devices` CPU devices."""
    return f"--xla_force_host_platform_device_count={devices} {FAST_COMPILE_FLAGS}"


def run_script(script: str, *args: str, devices: int = 1, env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs train.py / sample.py from the repository root as a user would; returns the finished process.

    `env`: variables set beside the suite's own (PYTHONPATH, say)."""
    env = dict(os.environ, XLA_FLAGS=xla_flags(devices), JAX_PLATFORMS="cpu", **(env or {}))
    return subprocess.run([sys.executable, script, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="session")
def trained_workdir(data_dir, tmp_path_factory):
    """A run of the tiny config, trained once for the whole session (a few seconds); do not write to it."""
    from jaxgan import train

    workdir = str(tmp_path_factory.mktemp("trained") / "run")
    train.train_and_evaluate(make_tiny_config(data_dir), workdir)
    return workdir


def tree_equal(a, b) -> bool:
    """Bitwise equality of two pytrees of arrays."""
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(leaves_a) == len(leaves_b) and all(
        np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(leaves_a, leaves_b))


# A sitecustomize.py that makes TensorFlow look uninstalled: the path finder no longer sees it, so
# imports raise ModuleNotFoundError and importlib.util.find_spec returns None, as on such a machine.
HIDE_TENSORFLOW = """
import importlib.machinery, sys


class PathFinderWithoutTensorFlow(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            return None
        return super().find_spec(name, path, target)


sys.meta_path[:] = [PathFinderWithoutTensorFlow if finder is importlib.machinery.PathFinder else finder
                    for finder in sys.meta_path]
"""


def env_without_tensorflow(directory) -> dict:
    """`run_script`'s `env` for a machine without TensorFlow (a sitecustomize.py written to `directory`)."""
    with open(os.path.join(directory, "sitecustomize.py"), "w") as f:
        f.write(HIDE_TENSORFLOW)
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(directory), os.environ.get("PYTHONPATH")]))}


def fill(path) -> None:
    """Writes zeros to `path` until its file system is full."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(descriptor, bytes(1 << 16))
    except OSError as e:
        assert e.errno == errno.ENOSPC
    finally:
        os.close(descriptor)


@pytest.fixture
def small_disk(tmp_path):
    """A real 8 MiB tmpfs: it fills up, and it can be remounted read-only (the tests run as root, where
    chmod does not stop writes)."""
    path = tmp_path / "disk"
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(path)], capture_output=True,
                             text=True)
    if mounted.returncode:
        pytest.skip(f"mounting a tmpfs needs root with CAP_SYS_ADMIN, as CI has: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)


def remount(path, mode: str) -> None:
    """Remounts the file system at `path` "ro" (read-only) or "rw"."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)
