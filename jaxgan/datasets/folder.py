"""`jaxgan_folder`: a user's folder of pictures as a TFDS dataset, built once and read like any other.

FOLDER/watercolor/*.jpg, FOLDER/ink/**/*.png, ... -> one class ("style") per sub-folder, named after
it, sorted by name; pictures in deeper folders belong to their top-level sub-folder. A folder with
no sub-folders is one unconditional set. JPEG, PNG, WebP and BMP files of any size are read with
`images.load_rgb` (RGBA composited on white, grey made RGB) and stored shrunk to at most
`max_shorter_side`, so later reads decode small pictures. The built dataset lives in the TFDS data
dir under a name made of the folder's name and a hash of its path, file names, sizes and times (and
the storage size and bad-file policy): change a file and the next run builds it again.
"""

import dataclasses
import hashlib
import logging
import os

import tensorflow_datasets as tfds

from jaxgan.datasets import images
from jaxgan.datasets.build_lock import build_lock
from jaxgan.errors import UserError


@dataclasses.dataclass(frozen=True)
class FolderListing:
    """The usable pictures of a folder. labels: int [N] in [0, len(class_names)); class_names may be ()."""

    folder: str
    paths: tuple[str, ...]
    labels: tuple[int, ...]
    class_names: tuple[str, ...]


def _picture_files(directory: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        found += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(images.EXTENSIONS)]
    return found


def list_folder(folder: str) -> FolderListing:
    """Finds the picture files and classes of `folder` by name, without opening them."""
    folder = os.path.abspath(os.path.expanduser(folder))
    if not os.path.isdir(folder):
        raise UserError(f"--config.data.folder {folder} is not a directory; point it at a folder of pictures")
    subfolders = sorted(d for d in os.listdir(folder)
                        if os.path.isdir(os.path.join(folder, d)) and not d.startswith("."))
    top_level = [os.path.join(folder, f) for f in sorted(os.listdir(folder))
                 if f.lower().endswith(images.EXTENSIONS) and os.path.isfile(os.path.join(folder, f))]
    classes = [(name, _picture_files(os.path.join(folder, name))) for name in subfolders]
    classes = [(name, files) for name, files in classes if files]
    if classes and top_level:
        raise UserError(f"{folder} has pictures both in sub-folders (styles) and at its top level "
                        f"(e.g. {os.path.basename(top_level[0])}); move them into a sub-folder")
    if not classes and not top_level:
        raise UserError(f"{folder} holds no pictures ({', '.join(images.EXTENSIONS)}); add some, one "
                        f"sub-folder per style")
    entries = [(p, c) for c, (_, files) in enumerate(classes) for p in files] or [(p, 0) for p in top_level]
    paths, labels = zip(*entries)
    return FolderListing(folder, paths, labels, tuple(name for name, _ in classes))


def readable_pictures(listing: FolderListing, bad_images: str) -> FolderListing:
    """`listing` without the files that are no readable picture (bad_images: "error" or "skip")."""
    good = []
    for path, label in zip(listing.paths, listing.labels):
        try:
            images.load_rgb(path)
            good.append((path, label))
        except images.BadImageError as e:
            if bad_images != "skip":
                raise UserError(f"{e}; remove or fix it, or pass --config.data.bad_images=skip") from None
            logging.warning("Skipping %s", e)
    if not good:
        raise UserError(f"{listing.folder} holds no readable pictures")
    paths, labels = zip(*good)
    return dataclasses.replace(listing, paths=paths, labels=labels)


def listing_fingerprint(listing: FolderListing, max_shorter_side: int, bad_images: str) -> str:
    """A hash of everything the built dataset depends on."""
    digest = hashlib.sha256(f"{listing.folder}|{max_shorter_side}|{bad_images}|{listing.class_names}".encode())
    for path, label in zip(listing.paths, listing.labels):
        stat = os.stat(path)
        digest.update(f"{path}|{label}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


class FolderConfig(tfds.core.BuilderConfig):
    """One folder: named after its files as listed, holding `listing` (its readable pictures once checked)."""

    def __init__(self, *, listing: FolderListing, max_shorter_side: int, fingerprint: str):
        stem = "".join(c if c.isalnum() else "_" for c in os.path.basename(listing.folder)).lower() or "folder"
        super().__init__(name=f"{stem}_{fingerprint}", description=f"Pictures of {listing.folder}")
        self.listing = listing
        self.max_shorter_side = max_shorter_side


class JaxganFolder(tfds.core.GeneratorBasedBuilder):
    """A folder of pictures; build it with `builder(folder, max_shorter_side, bad_images, data_dir)`."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Pictures as RGB, shorter side at most max_shorter_side."}

    def _info(self) -> tfds.core.DatasetInfo:
        listing = self.builder_config.listing
        features = {"image": tfds.features.Image(shape=(None, None, 3))}
        if listing.class_names:
            features["label"] = tfds.features.ClassLabel(names=list(listing.class_names))
        return self.dataset_info_from_configs(features=tfds.features.FeaturesDict(features))

    def _split_generators(self, dl_manager):
        del dl_manager  # Local files only.
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        listing = self.builder_config.listing
        for index, (path, label) in enumerate(zip(listing.paths, listing.labels)):
            example = {"image": images.png_bytes(images.load_rgb(path, self.builder_config.max_shorter_side))}
            if listing.class_names:
                example["label"] = label
            yield index, example


def builder(folder: str, max_shorter_side: int, bad_images: str, data_dir: str | None) -> JaxganFolder:
    """The TFDS builder of `folder`, built (array_record files in the data dir) if not yet.

    Only a build opens the pictures (to check them, then to store them): a run on a folder that is
    already built lists its files and reads nothing else.
    """
    listing = list_folder(folder)
    fingerprint = listing_fingerprint(listing, max_shorter_side, bad_images)

    def folder_builder(listing):
        config = FolderConfig(listing=listing, max_shorter_side=max_shorter_side, fingerprint=fingerprint)
        return JaxganFolder(config=config, data_dir=data_dir)

    if folder_builder(listing).is_prepared():
        return folder_builder(listing)
    checked = folder_builder(readable_pictures(listing, bad_images))  # before writing anything, the lock too
    with build_lock(checked):
        if folder_builder(listing).is_prepared():  # a run started beside this one built it meanwhile
            return folder_builder(listing)
        print(f"Building the dataset of {len(checked.builder_config.listing.paths)} pictures in {listing.folder} "
              f"({len(listing.class_names) or 'no'} styles) into {checked.data_dir} ...", flush=True)
        checked.download_and_prepare(file_format="array_record")
    return checked
