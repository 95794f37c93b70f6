"""PacGAN's 2-D grid: 25 Gaussians (std 0.05) at {-4, -2, 0, 2, 4}^2, drawn on the fly.

Command:  python train.py --config configs/grid25.py --workdir runs/grid25
          python sample.py --workdir runs/grid25 --num 2500 --out grid25.npy     (float32 [2500, 2])
          python benchmarks/mode_coverage.py --only grid25 --seeds 10             (the table, 10 seeds at once)
Expect:   see README "Mode coverage": modes of 25, high-quality %, reverse KL over seeds. With
          --methods PacGAN2 --no-ema --set optim.lr_decay=linear: --steps 200000 (one H200, 189 s of
          training) 25.0 +- 0.0 modes (all 10 seeds all 25), 96.6 % high quality, reverse KL 0.017,
          the README's goal; --steps 20000 (2-core CPU, about 85 minutes) 25.0 modes, 79.8 %, 0.046.
Anchor:   PacGAN (Lin et al. 2018, Table 1), same protocol and the settings of its code
          (fjxmlzn/PacGAN, 2DGrid_GAN&PacGAN): G 4 x 400 ReLU + batch norm, D 3 x 200 maxout (5
          pieces), 2-D N(0, I) latent, batch 100, every weight from N(0, 0.02^2), Adam with rate 1e-4
          and b1 = 0.2 (the code's Blocks `beta1: 0.8` weights the NEW gradient by 0.8, which is
          optax's b1 = 0.2; the paper's text says 0.8); 2,500 samples per trial. GAN 17.3 +- 0.8
          modes / 94.8 % / KL 0.70; PacGAN4 24.8 +- 0.2 / 93.6 % / 0.04. This config is the plain
          GAN; --config.model.d_pack=4 is PacGAN4.
Time:     about 2 minutes on a 2-core CPU.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.steps = 10_000
    config.batch_size = 100
    config.data.name = "grid25"
    config.data.label_key = ""
    config.model.name = "mlp"
    config.model.latent_dim = 2
    config.model.g_width = 400
    config.model.d_width = 200
    config.model.d_spectral_norm = False
    config.model.mlp_init_std = 0.02
    config.optim.g_lr = config.optim.d_lr = 1e-4
    config.optim.b1 = 0.2
    config.log_every = 500
    config.sample_every = 1000
    config.checkpoint_every = 5000
    return config
