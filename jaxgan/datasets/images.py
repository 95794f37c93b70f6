"""Reading one picture file into a uint8 RGB array, the way every jaxgan dataset of files does it, and
encoding arrays as PNG for the TFDS builders."""

import io

import numpy as np
from PIL import Image, ImageOps

# Modes PIL converts to RGB without losing meaning; "I;16" (16-bit grey) is scaled to 8 bits.
SUPPORTED_MODES = {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "I;16",
                   "I;16B", "I;16L"}
EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


class BadImageError(ValueError):
    """A file that cannot be used as a picture: unreadable, truncated, or of an unsupported mode."""


def load_rgb(path: str, max_shorter_side: int | None = None) -> np.ndarray:
    """uint8 [H, W, 3] of the picture at `path`.

    Transparent pictures are composited on white, grey ones repeated over three channels, EXIF
    rotations applied; with `max_shorter_side` the picture is shrunk (never enlarged) so that its
    shorter side is at most that many pixels. Raises BadImageError naming the file and the reason.
    """
    try:
        with Image.open(path) as image:
            image.load()  # decode now: truncated files fail here, not later
            if image.mode not in SUPPORTED_MODES:
                raise BadImageError(f"{path}: unsupported image mode {image.mode}; save it as 8-bit RGB or grey")
            image = ImageOps.exif_transpose(image)
            if image.mode.startswith("I;16"):
                image = Image.fromarray((np.asarray(image, np.uint16) >> 8).astype(np.uint8))
            if "A" in image.getbands() or (image.mode == "P" and "transparency" in image.info):
                rgba = image.convert("RGBA")
                image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            image = image.convert("RGB")
            if max_shorter_side and min(image.size) > max_shorter_side:
                scale = max_shorter_side / min(image.size)
                size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
                image = image.resize(size, Image.Resampling.LANCZOS)
            return np.asarray(image, np.uint8)
    except BadImageError:
        raise
    except (OSError, ValueError, SyntaxError) as e:  # PIL's ways of saying "not a readable picture"
        raise BadImageError(f"{path}: cannot read it as a picture ({e})") from None


def png_bytes(image: np.ndarray) -> bytes:
    """The PNG file of uint8 [H, W, 1 or 3], encoded by Pillow (lossless: decoding gives `image` back).

    The builders hand TFDS these bytes rather than arrays: TFDS stores bytes as they are, while it
    encodes arrays with TensorFlow, which many GPU machines lack (and which takes seconds to import).
    """
    buffer = io.BytesIO()
    Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image).save(buffer, format="PNG")
    return buffer.getvalue()
