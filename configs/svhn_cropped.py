"""Class-conditional DCGAN on SVHN (73,257 cropped house-number digits, 32x32, 10 classes) from TFDS.

Command:  python train.py --config configs/svhn_cropped.py
          (needs TFDS's svhn_cropped prepared in array_record format; train.py prints how when it is not)
Expect:   not measured in this repository (no network to fetch SVHN).
Anchor:   the DCGAN of configs/cifar10_dcgan.py; no flips (digits are not mirror-symmetric).
Time:     50,000 steps.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.data.name = "svhn_cropped"
    config.model.latent_dim = 128
    config.steps = 50_000
    config.checkpoint_every = 5000
    config.sample_every = 5000
    return config
