"""Generating images from a trained generator and laying them out as PNG grids.

The latent of image i under seed s is drawn from `fold_in(key(s), i)`, so an image does not change
when more images are asked for, and the same (seed, index, label) gives the same picture.
"""

import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image


def latents(seed: int, num: int, latent_dim: int, truncation: float = 1.0) -> jax.Array:
    """float32 [num, latent_dim]: N(0, I) latents, scaled by `truncation` (< 1 trades variety for fidelity)."""
    root = jax.random.key(seed)
    keys = jax.vmap(lambda i: jax.random.fold_in(root, i))(jnp.arange(num))
    return truncation * jax.vmap(lambda k: jax.random.normal(k, (latent_dim,)))(keys)


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


def grid_columns(num: int, num_rows_wanted: int) -> int:
    """Columns for `num` images: one row per label block when they divide evenly, else near-square."""
    if num_rows_wanted > 1 and num % num_rows_wanted == 0:
        return num // num_rows_wanted
    return int(np.ceil(np.sqrt(num)))


def write_atomically(path: str, write) -> None:
    """Calls write(file) on a temporary file beside `path`, then renames it: no half-written file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temporary = os.path.join(directory, f".{os.path.basename(path)}.tmp")
    try:
        with open(temporary, "wb") as f:
            write(f)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def save_png(path: str, grid: np.ndarray) -> None:
    """Writes uint8 [H, W, C] (C = 1 or 3) as a PNG."""
    image = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    write_atomically(path, lambda f: image.save(f, format="PNG"))


def parse_labels(text: str | None, class_names: Sequence[str]) -> list[int]:
    """'0,3,7' or 'seven,two' -> class indices; None -> every class; [] for an unconditional model."""
    from jaxgan.errors import UserError

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
        elif item.isdigit() and int(item) < len(class_names):
            labels.append(int(item))
        else:
            raise UserError(f"--labels: unknown class {item!r}; use 0..{len(class_names) - 1} "
                            f"or one of the names {', '.join(class_names[:20])}")
    return labels
