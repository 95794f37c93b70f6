"""SNGAN ResNet on CIFAR-10 (unconditional, 32x32), Mimicry's recipe.

Command:  python train.py --config configs/cifar10_sngan.py
          python -m jaxgan.evaluate --workdir runs/cifar10_sngan --features inception --num 50000 --no-ema
          (needs TFDS's cifar10 prepared in array_record format and the Inception weights file;
          train.py and jaxgan.evaluate print how when they are missing)
Expect:   not measured in this repository (no network here to fetch CIFAR-10 or the Inception weights).
Anchor:   Mimicry (Lee & Town 2020) SNGAN on CIFAR-10: FID 16.77, 50k generated vs 50k train images,
          Inception-v3 2015-12-05 pool3, the raw generator (Mimicry keeps no EMA: compare with --no-ema).
          Recipe: ResNet G (256 channels) and spectrally normalised D (128 channels) of Miyato et al.
          2018, hinge loss, Adam(2e-4, 0.0, 0.9), 5 D steps per G step, batch 64, 100k G steps,
          both learning rates decaying linearly to 0.
Time:     100,000 steps of 5 D updates: hours on one GPU; not practical on a 2-core CPU.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.data.name = "cifar10"
    config.data.label_key = ""  # Mimicry's SNGAN row is unconditional
    config.model.name = "sngan"
    config.model.latent_dim = 128
    config.model.g_width = 256
    config.model.d_width = 128
    config.loss.name = "hinge"
    config.optim.b1 = 0.0
    config.optim.b2 = 0.9
    config.optim.n_dis = 5
    config.optim.lr_decay = "linear"
    config.steps = 100_000
    config.checkpoint_every = 5000
    config.sample_every = 5000
    return config
