"""A StyleGAN2-style GAN with adaptive augmentation on your own pictures (one sub-folder per style).

Command:  python train.py --config configs/folder_stylegan2.py --config.data.folder=~/my_art
          python sample.py --workdir runs/folder_stylegan2 --labels watercolor,ink --num 32 --out styles.png
Expect:   as configs/folder.py, with a stronger generator; a few hundred pictures is little for a GAN,
          so D's overfitting is held back by DiffAugment ops applied with ADA's adaptive strength
          (the log prints `augment p`). What the samples look like depends on the pictures.
Anchor:   StyleGAN2-ADA (Karras et al. 2020a), made for small datasets: ADA target 0.6, lazy R1;
          its ops here are DiffAugment's colour, translation and cutout (Zhao et al. 2020), not ADA's
          full pipeline. The rest as configs/celeb_a64_stylegan2.py.
Time:     about 25,000 steps are needed for a few hundred pictures: hours on one GPU.
"""

from configs import celeb_a64_stylegan2


def get_config():
    config = celeb_a64_stylegan2.get_config()
    config.data.name = "jaxgan_folder"
    config.data.folder = ""  # set with --config.data.folder=PATH
    config.data.label_key = "label"  # one style per sub-folder
    config.data.crop = "random"
    config.augment.policy = "color,translation,cutout"
    config.augment.ada_target = 0.6
    config.steps = 25_000
    config.checkpoint_every = 1000
    config.sample_every = 1000
    return config
