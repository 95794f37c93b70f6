"""Unconditional StyleGAN2-style GAN on CelebA faces at 64x64 (162,770 training images) from TFDS.

Command:  python train.py --config configs/celeb_a64_stylegan2.py
          (celeb_a's files must be fetched and prepared in array_record format beforehand;
          train.py prints how when they are not)
Expect:   not measured in this repository (no network here to fetch CelebA); no published FID
          exists under this exact protocol, so report it with `python -m jaxgan.evaluate
          --features inception --num 50000` and its protocol line.
Anchor:   StyleGAN2 (Karras et al. 2020) with StyleGAN2-ADA's "auto" settings for 64x64 and batch 64:
          2-layer mapping network, non-saturating loss, lazy R1 every 16 D steps with
          gamma = 0.0002 * 64^2 / 64 = 0.0128, Adam(0.0025, 0.0, 0.99), EMA of G with a half-life of
          20,000 images (batch * 10 / 32 kimg; decay 0.5 ** (64 / 20000) = 0.99778), feature maps
          min(16384 / resolution, 512). Simplifications: see jaxgan/stylegan2.py.
Time:     100,000 steps (6.4M images): many hours on one GPU; not practical on a 2-core CPU.
"""

from configs import celeb_a64_dcgan


def get_config():
    config = celeb_a64_dcgan.get_config()  # its data: unconditional 64x64 centre crops with flips
    config.model.name = "stylegan2"
    config.model.latent_dim = 512
    config.model.mapping_layers = 2
    config.model.g_width = 256  # 256 channels at 64x64, 512 below: ADA's channel_base 16384, channel_max 512
    config.model.d_width = 256
    config.loss.name = "nonsaturating"
    config.loss.r1_gamma = 0.0128
    config.loss.r1_every = 16
    config.optim.g_lr = 0.0025
    config.optim.d_lr = 0.0025
    config.optim.b1 = 0.0
    config.optim.b2 = 0.99
    config.optim.ema_decay = 0.99778
    config.steps = 100_000
    config.checkpoint_every = 5000
    config.sample_every = 5000
    return config
