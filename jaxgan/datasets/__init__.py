"""Local TFDS dataset builders made from data that ships inside Python packages (no download).

Importing this package registers the builders with TFDS, so `tfds.builder("jaxgan_digits")` works.
"""

from jaxgan.datasets.digits import JaxganDigits

__all__ = ["JaxganDigits"]
