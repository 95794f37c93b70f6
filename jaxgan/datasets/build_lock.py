"""One build of a local TFDS dataset, however many runs start on it at the same moment."""

import contextlib
import os

import filelock


@contextlib.contextmanager
def build_lock(builder):
    """Holds `<builder.data_dir>.lock` while a dataset is built.

    TFDS builds into a temporary folder and renames it into place, so two runs building the same
    dataset at once (a benchmark's seeds started side by side on a fresh machine) both build it
    and all but the first fail on the rename. Under this lock the later ones wait; each must then
    make a new builder and check `is_prepared()` again, since a builder made before the build read
    no dataset_info.json.
    """
    lock_path = os.fspath(builder.data_dir) + ".lock"
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    with filelock.FileLock(lock_path):
        yield
