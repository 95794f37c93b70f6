"""Class-conditional SNGAN ResNet (cGAN-PD) on the 4,000 embedded digits: the zoo's CPU-sized ResNet.

Command:  python train.py --config configs/digits_sngan.py --workdir runs/digits_sngan
          python -m jaxgan.evaluate --workdir runs/digits_sngan --features digits --metrics fid,kid,pr,dc,acc
Expect:   after 1,000 steps: classifier-FID 120.5, conditional accuracy 18.4 % (one seed);
          the README table "Architectures on the embedded digits" sets it beside DCGAN and the other
          ResNet at the same step budget (2-core CPU).
Anchor:   SNGAN's ResNet G and D (Miyato et al. 2018) with class-conditional batch norm in G and a
          projection D (Miyato & Koyama 2018), hinge loss, Adam(2e-4, 0.0, 0.9) as Mimicry, at 28x28
          (7x7 start, two up blocks) and a width a CPU can train; one D step per G step (Mimicry: 5).
Time:     18.5 minutes for 1,000 steps on a 2-core CPU shared with a test suite (compile 12.9 s;
          1.4-1.7 steps/s when less busy).
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model.name = "sngan"
    config.model.g_width = 32
    config.model.d_width = 32
    config.loss.name = "hinge"
    config.optim.b1 = 0.0
    config.optim.b2 = 0.9
    config.steps = 1000  # the README's comparison: DCGAN, SNGAN and BigGAN-style at 1,000 steps each
    config.checkpoint_every = 500
    config.sample_every = 500
    return config
