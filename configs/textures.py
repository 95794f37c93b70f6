"""Texture GAN on patches of five pictures that ship inside scikit-image (brick, grass, gravel, stars, stain).

Command:  python train.py --config configs/textures.py
          python sample.py --workdir runs/textures --labels brick,grass,gravel,stars,stain --num 40 --out t.png
Expect:   64x64 patches in the colours and grain of each texture, conditioned on its name; after
          2,000 steps (one H100) the rows differ by texture but the brick row has collapsed to one
          flat pattern: a demonstration of patch training, not a tuned texture model
          (docs/textures_grid.png).
Anchor:   patch-based texture synthesis with a GAN (Jetchev et al. 2016, Spatial GAN) using the
          DCGAN of configs/default.py at 64x64; each epoch is 256 random crops of each picture.
Time:     57 s on one NVIDIA H100 (118 steps/s); about 0.6 s per step on a 2-core CPU (20 minutes).
"""

from configs import default


def get_config():
    config = default.get_config()
    config.data.name = "jaxgan_textures"
    config.data.image_size = 64
    config.data.patches = 256
    config.data.random_flip = True
    config.model.g_width = 32
    config.model.d_width = 32
    config.steps = 2000
    config.checkpoint_every = 500
    config.sample_every = 500
    return config
