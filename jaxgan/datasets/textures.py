"""`jaxgan_textures`: photographs and textures that ship inside scikit-image, one class each.

Few, large pictures (300x451 to 872x1000): meant for patch training (`data.patches`), where each
example is a random crop. Stored as RGB (the grey textures repeated over three channels).
"""

import importlib.resources

import tensorflow_datasets as tfds

from jaxgan.datasets import images

# class name -> file in skimage/data
TEXTURES = {
    "brick": "brick.png",
    "grass": "grass.png",
    "gravel": "gravel.png",
    "stars": "hubble_deep_field.jpg",
    "stain": "ihc.png",
}


class JaxganTextures(tfds.core.GeneratorBasedBuilder):
    """Five textures from scikit-image's sample data: brick, grass, gravel, stars, stain."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "brick, grass, gravel, hubble_deep_field (stars), ihc (stain)."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3)),
                "label": tfds.features.ClassLabel(names=list(TEXTURES)),
            }),
            homepage="https://scikit-image.org/docs/stable/api/skimage.data.html",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download: the pictures ship inside scikit-image.
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        data = importlib.resources.files("skimage") / "data"
        for label, (name, filename) in enumerate(TEXTURES.items()):
            with importlib.resources.as_file(data / filename) as path:
                yield name, {"image": images.png_bytes(images.load_rgb(str(path))), "label": label}
