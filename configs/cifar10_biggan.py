"""Class-conditional BigGAN-style ResNet on CIFAR-10 (32x32, 10 classes).

Command:  python train.py --config configs/cifar10_biggan.py
          python -m jaxgan.evaluate --workdir runs/cifar10_biggan --features inception --num 50000
          (needs TFDS's cifar10 prepared in array_record format and the Inception weights file)
Expect:   not measured in this repository (no network here to fetch CIFAR-10 or the Inception weights).
Anchor:   PyTorch-StudioGAN's BigGAN on CIFAR-10: FID 4.16, 50k generated vs the train split,
          Inception-v3 2015-12-05 pool3. Recipe of BigGAN-PyTorch's CIFAR script (Brock et al. 2019):
          shared class embedding and hierarchical latent into conditional batch norm, projection D,
          spectral norm in G and D, orthogonal init, hinge loss, Adam(2e-4, 0.0, 0.999) for both,
          4 D steps per G step, EMA of G with decay 0.9999; batch 64 (the script's is 50).
Time:     100,000 steps of 4 D updates: hours on one GPU; not practical on a 2-core CPU.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.data.name = "cifar10"
    config.data.random_flip = True
    config.model.name = "biggan"
    config.model.latent_dim = 128
    config.model.g_width = 256
    config.model.d_width = 256
    config.loss.name = "hinge"
    config.optim.b1 = 0.0
    config.optim.b2 = 0.999
    config.optim.n_dis = 4
    config.optim.ema_decay = 0.9999
    config.steps = 100_000
    config.checkpoint_every = 5000
    config.sample_every = 5000
    return config
