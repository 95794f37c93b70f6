"""Class-conditional DCGAN on CIFAR-10 (50,000 colour images, 32x32, 10 classes) from TFDS.

Command:  python train.py --config configs/cifar10_dcgan.py
          (needs TFDS's cifar10 prepared in array_record format; train.py prints how when it is not)
Expect:   not measured in this repository (no network to fetch CIFAR-10, no FID evaluator yet).
Anchor:   PyTorch-StudioGAN's DCGAN reaches FID 48.29 on CIFAR-10 (50k samples vs train); that is
          the figure to compare with once evaluation exists.
Time:     100,000 steps; the step runs on any device count (batch sharded over all of them).
"""

from configs import default


def get_config():
    config = default.get_config()
    config.data.name = "cifar10"
    config.data.random_flip = True
    config.model.latent_dim = 128
    config.steps = 100_000
    config.checkpoint_every = 5000
    config.sample_every = 5000
    return config
