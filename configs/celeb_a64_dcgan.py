"""Unconditional DCGAN on CelebA faces at 64x64 (162,770 training images of 218x178) from TFDS.

Command:  python train.py --config configs/celeb_a64_dcgan.py
          (celeb_a's files must be fetched and prepared in array_record format beforehand;
          train.py prints how when they are not)
Expect:   not measured in this repository (no network to fetch CelebA).
Anchor:   DCGAN at 64x64 (Radford et al. 2016): centre square crop of each face, resized to 64.
Time:     100,000 steps; the images are decoded as they are read (too many to keep in memory).
"""

from configs import default


def get_config():
    config = default.get_config()
    config.data.name = "celeb_a"
    config.data.label_key = ""  # unconditional: celeb_a has attributes, not classes
    config.data.image_size = 64
    config.data.random_flip = True
    config.model.latent_dim = 100
    config.steps = 100_000
    config.checkpoint_every = 5000
    config.sample_every = 5000
    return config
