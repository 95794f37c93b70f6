"""Latents, seeds, walks between them, and the files pictures are written to (PNG, GIF, MP4).

The latent of image i under seed s is drawn from `fold_in(key(s), i)`, so an image does not change
when more images are asked for, and the same (seed, index, label) gives the same picture. The
picture of a seed (`--seeds`) is image 0 of that seed.
"""

import io
import json
import os
import re
import warnings
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, PngImagePlugin

from jaxgan.errors import UserError

MAX_SEED = 2**32 - 1
MAX_IMAGES = 100_000  # per command: the images are held in memory before they are written
ARGUMENTS_KEY = "sample.py arguments"  # the PNG text chunk from which `sample.py --from-image` works


def latents(seed: int, num: int, latent_dim: int, truncation: float = 1.0, start: int = 0) -> jax.Array:
    """float32 [num, latent_dim]: N(0, I) latents of images start .. start + num - 1 of `seed`, scaled
    by `truncation` (< 1 trades variety for fidelity)."""
    root = jax.random.key(seed)
    keys = jax.vmap(lambda i: jax.random.fold_in(root, i))(start + jnp.arange(num))
    return truncation * jax.vmap(lambda k: jax.random.normal(k, (latent_dim,)))(keys)


def seed_latents(seeds: Sequence[int], latent_dim: int) -> np.ndarray:
    """float32 [len(seeds), latent_dim]: the latent of each seed (image 0 of `latents(seed, ...)`)."""
    return np.stack([np.asarray(latents(seed, 1, latent_dim)[0]) for seed in seeds])


def slerp(start: np.ndarray, end: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """float32 [T, D]: spherical interpolation from `start` [D] to `end` [D] at `fractions` [T] in [0, 1].

    Gaussian latents live near a sphere, so the walk follows the great circle between them
    (White 2016) rather than the chord, whose middle is unusually short. Fraction 0 gives `start`
    and 1 gives `end` exactly (sin(w) / sin(w) is exactly 1), so a walk starts and ends at the
    seeds' own pictures.
    """
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    t = np.asarray(fractions, np.float64)[:, None]
    cosine = np.dot(start, end) / (np.linalg.norm(start) * np.linalg.norm(end))
    angle = np.arccos(np.clip(cosine, -1.0, 1.0))
    if np.sin(angle) < 1e-6:  # (anti)parallel: the great circle is not unique; the chord is as good
        return ((1.0 - t) * start + t * end).astype(np.float32)
    return ((np.sin((1.0 - t) * angle) * start + np.sin(t * angle) * end) / np.sin(angle)).astype(np.float32)


def walk_positions(num_stops: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """For a walk through `num_stops` points in `frames` frames: (segment int [F], fraction float [F]).

    Frame 0 is stop 0 and the last frame is the last stop; frames are spaced evenly along the path.
    """
    position = np.linspace(0.0, num_stops - 1, frames)
    segment = np.minimum(np.floor(position).astype(np.int64), num_stops - 2)
    return segment, position - segment


def block_labels(num: int, labels: Sequence[int]) -> np.ndarray:
    """int32 [num]: `labels` in contiguous, equal-as-possible blocks (image i gets labels[i * L // num])."""
    return np.asarray(labels, np.int32)[np.arange(num) * len(labels) // num]


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float [N, H, W, C] in [-1, 1] -> uint8 [N, H, W, C] in [0, 255], rounded (NaN -> 0)."""
    pixels = np.nan_to_num(np.rint((np.asarray(images, np.float32) + 1.0) * 127.5))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def image_grid(images: np.ndarray, columns: int, padding: int = 2) -> np.ndarray:
    """uint8 [N, H, W, C] -> one uint8 [rows*(H+p)+p, columns*(W+p)+p, C] image, row-major, white gaps."""
    n, h, w, c = images.shape
    rows = -(-n // columns)
    grid = np.full((rows * (h + padding) + padding, columns * (w + padding) + padding, c), 255, np.uint8)
    for i, image in enumerate(images):
        y = padding + (i // columns) * (h + padding)
        x = padding + (i % columns) * (w + padding)
        grid[y:y + h, x:x + w] = image
    return grid


def upscale(images: np.ndarray, factor: int) -> np.ndarray:
    """uint8 [N, H, W, C] -> [N, H*factor, W*factor, C], each pixel repeated (nearest neighbour)."""
    return np.repeat(np.repeat(images, factor, axis=1), factor, axis=2)


def grid_columns(num: int, num_rows_wanted: int) -> int:
    """Columns for `num` images: one row per label block when they divide evenly, else near-square."""
    if num_rows_wanted > 1 and num % num_rows_wanted == 0:
        return num // num_rows_wanted
    return int(np.ceil(np.sqrt(num)))


def write_atomically(path: str, write: Callable[[BinaryIO], Any]) -> None:
    """Calls write(file) on a temporary file beside `path`, then renames it: no half-written file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    stem, extension = os.path.splitext(os.path.basename(path))
    temporary = os.path.join(directory, f".{stem}.tmp{extension}")  # the extension kept for writers that read it
    try:
        with open(temporary, "wb") as f:
            write(f)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def save_png(path: str, grid: np.ndarray, text: dict[str, str] | None = None) -> None:
    """Writes uint8 [H, W, C] (C = 1 or 3) as a PNG, with `text` as its tEXt chunks."""
    write_atomically(path, lambda f: f.write(png_bytes(grid, text)))


def png_bytes(image: np.ndarray, text: dict[str, str] | None = None) -> bytes:
    """uint8 [H, W, C] (C = 1 or 3) -> the bytes of a PNG file carrying `text` as tEXt chunks."""
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def read_png_text(path: str) -> dict[str, str]:
    """The tEXt chunks of the PNG at `path` (a clear error when it is not a readable PNG)."""
    try:
        with Image.open(path) as image:
            image.load()
            return dict(getattr(image, "text", {}))
    except (OSError, SyntaxError) as e:
        raise UserError(f"cannot read {path} as a PNG ({e})") from None


def animation_bytes(frames: np.ndarray, fps: float, extension: str) -> bytes:
    """uint8 [T, H, W, C] -> the bytes of a looping GIF (extension ".gif") or an H.264 MP4 (".mp4")."""
    if extension == ".gif":
        buffer = io.BytesIO()
        pictures = [Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame) for frame in frames]
        pictures[0].save(buffer, format="GIF", save_all=True, append_images=pictures[1:],
                         duration=round(1000 / fps), loop=0)
        return buffer.getvalue()
    import imageio.v3 as iio

    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    # imageio-ffmpeg writes yuv420p, which every player reads; it needs even sizes, which every
    # generator here makes (sizes are a power of two times 4..7, and upscaling keeps them even).
    with warnings.catch_warnings():
        # imageio starts ffmpeg with fork + exec and runs no Python in the child: JAX's threads are safe.
        warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
        return iio.imwrite("<bytes>", frames, extension=extension, plugin="FFMPEG", codec="libx264", fps=fps,
                           macro_block_size=2)


def save_animation(path: str, frames: np.ndarray, fps: float) -> None:
    """Writes uint8 [T, H, W, C] frames to `path` (.gif or .mp4)."""
    data = animation_bytes(frames, fps, os.path.splitext(path)[1].lower())
    write_atomically(path, lambda f: f.write(data))


def provenance_text(workdir: str, step: int, arguments: Sequence[str], **picture: Any) -> dict[str, str]:
    """PNG tEXt chunks saying how a picture was made.

    `picture` (seed, label, truncation, ...) is there for people to read; "sample.py arguments" is
    the JSON list of arguments with which `sample.py` makes the same picture again (`--from-image`).
    """
    workdir = os.path.abspath(workdir)
    text = {"Software": "jaxgan sample.py", "workdir": workdir, "step": str(step)}
    text.update({key: str(value) for key, value in picture.items()})
    text[ARGUMENTS_KEY] = json.dumps(["--workdir", workdir, "--step", str(step), *arguments])
    return text


def picture_provenance(workdir: str, step: int, seed: int, style: str | None, truncation: float,
                       upscale: int = 1, use_ema: bool = True,
                       variation_of: tuple[int, float] | None = None) -> dict[str, str]:
    """The tEXt chunks of one picture: seed `seed` in `style` (None: unconditional).

    With `variation_of=(seed0, strength)` the picture is the variation of seed0 toward `seed`.
    Every tool that writes one picture (sample.py, the explorer page) describes it here, so the
    same picture carries the same text whichever tool wrote it.
    """
    arguments = ["--seeds", str(seed)] + (["--labels", style] if style is not None else [])
    picture = {"seed": seed, "label": style or "", "truncation": truncation}
    if variation_of is not None:
        arguments += ["--variations", str(variation_of[0]), "--strength", repr(variation_of[1])]
        picture = {"seed": variation_of[0], "variation": seed, "strength": variation_of[1],
                   "label": style or "", "truncation": truncation}
    arguments += ["--truncation", repr(truncation), "--upscale", str(upscale)] + ([] if use_ema else ["--no-ema"])
    return provenance_text(workdir, step, arguments, **picture)


def parse_seeds(text: str, flag: str = "--seeds") -> list[int]:
    """'0-63' or '3,17,42' or '0-3,9' -> seeds, in order; a clear error for anything else."""
    seeds = []
    for item in (part.strip() for part in text.split(",")):
        match = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", item)
        if not match:
            raise UserError(f"{flag}: {item!r} is not a seed or a range; write seeds as 0-63 or 3,17,42")
        first, last = int(match[1]), int(match[2] or match[1])
        if last > MAX_SEED or first > last:
            raise UserError(f"{flag}: {item!r} must be a seed or a rising range within 0..{MAX_SEED}")
        if len(seeds) + last - first + 1 > MAX_IMAGES:
            raise UserError(f"{flag}: more than {MAX_IMAGES:,} seeds; split the range over several commands")
        seeds.extend(range(first, last + 1))
    return seeds


def parse_labels(text: str | None, class_names: Sequence[str]) -> list[int]:
    """'0,3,7' or 'seven,two' -> class indices; None -> every class; [] for an unconditional model."""
    if not class_names:
        if text:
            raise UserError("this run is unconditional; drop --labels")
        return []
    if text is None:
        return list(range(len(class_names)))
    labels = []
    for item in (part.strip() for part in text.split(",")):
        if item in class_names:
            labels.append(list(class_names).index(item))
        elif re.fullmatch(r"[0-9]+", item) and int(item) < len(class_names):
            labels.append(int(item))
        else:
            raise UserError(f"--labels: unknown class {item!r}; use 0..{len(class_names) - 1} "
                            f"or one of the names {', '.join(class_names[:20])}")
    return labels
