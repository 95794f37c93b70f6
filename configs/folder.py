"""A GAN on your own pictures: one sub-folder per style, or none for a single set.

Command:  python train.py --config configs/folder.py --config.data.folder=~/my_art
          python sample.py --workdir runs/folder --labels watercolor,ink --num 32 --out styles.png
Expect:   the folder is checked (unreadable files named; --config.data.bad_images=skip to skip them),
          built once into the TFDS data dir, then trained on at 64x64 with random crops and flips.
          What the samples look like depends on the pictures: a few hundred per style is a start.
Anchor:   the DCGAN of configs/default.py at 64x64.
Time:     1.3 s per step of batch 64 on a 2-core CPU (49 images/s, benchmarks/input_pipeline.py;
          3,000 steps: 65 minutes); minutes on a GPU.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.data.name = "jaxgan_folder"
    config.data.folder = ""  # set with --config.data.folder=PATH
    config.data.image_size = 64
    config.data.crop = "random"
    config.data.random_flip = True
    config.model.latent_dim = 128
    config.steps = 3000
    config.checkpoint_every = 500
    config.sample_every = 500
    return config
