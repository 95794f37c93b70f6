"""Local TFDS dataset builders: data that ships inside Python packages, and users' folders.

Importing this package registers the builders with TFDS, so `tfds.builder("jaxgan_digits")` works.
"""

from jaxgan.datasets.digits import JaxganDigits
from jaxgan.datasets.folder import JaxganFolder
from jaxgan.datasets.textures import JaxganTextures

__all__ = ["JaxganDigits", "JaxganFolder", "JaxganTextures"]
