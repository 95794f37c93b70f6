"""Class-conditional BigGAN-style ResNet on the 4,000 embedded digits: the zoo's CPU-sized BigGAN.

Command:  python train.py --config configs/digits_biggan.py --workdir runs/digits_biggan
          python -m jaxgan.evaluate --workdir runs/digits_biggan --features digits --metrics fid,kid,pr,dc,acc
Expect:   after 1,000 steps: classifier-FID 136.2, conditional accuracy 34.5 % (one seed);
          the README table "Architectures on the embedded digits" sets it beside DCGAN and the other
          ResNet at the same step budget (2-core CPU).
Anchor:   configs/cifar10_biggan.py (Brock et al. 2019: shared embedding, hierarchical latent, spectral
          norm in G and D, orthogonal init, hinge) at 28x28 and a width a CPU can train, with one D
          step per G step instead of 4 and latent 60 (three chunks of 20).
Time:     23 minutes for 1,000 steps on a 2-core CPU shared with a test suite (compile 18.6 s).
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model.name = "biggan"
    config.model.latent_dim = 60
    config.model.g_width = 32
    config.model.d_width = 32
    config.loss.name = "hinge"
    config.optim.b1 = 0.0
    config.optim.b2 = 0.999
    config.steps = 1000  # the README's comparison: DCGAN, SNGAN and BigGAN-style at 1,000 steps each
    config.checkpoint_every = 500
    config.sample_every = 500
    return config
