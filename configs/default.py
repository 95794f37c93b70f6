"""Class-conditional DCGAN on 4,000 real handwritten digits (28x28, 10 classes) that ship offline.

Command:  python train.py                      (same as: make train; writes runs/default/)
          python sample.py --workdir runs/default --labels 0,1,2,3,4,5,6,7,8,9 --num 100 --out grid.png
Expect:   recognisable digits of the requested class: a digit classifier (97.9 % on held-out real
          digits) labels the EMA generator's samples as the requested class 95.3 ± 0.2 % of the time
          for seed 0 on a 2-core CPU (python benchmarks/class_accuracy.py --workdir runs/default);
          95.2 ± 0.9 % over training seeds 0-3 on an H100 (README.md).
Anchor:   DCGAN (Radford et al. 2016) with the class as a latent embedding and conditional batch norm
          in G, a spectrally normalised projection D (Miyato et al. 2018; Miyato & Koyama 2018),
          non-saturating loss, Adam(2e-4, 0.5, 0.999).
Time:     8 minutes on a 2-core CPU (5,000 steps of batch 64, 10.6 steps/s); 45 s on one H100.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.steps = 5000  # optimizer steps of G (optim.n_dis D steps each)
    config.batch_size = 64  # global, over all devices and processes; per D update and per G update

    config.data = ml_collections.ConfigDict()
    config.data.name = "jaxgan_digits"  # a TFDS dataset name; jaxgan_* ones are built locally
    config.data.split = "train"
    config.data.label_key = "label"  # "" for an unconditional GAN
    config.data.data_dir = ""  # "" = TFDS's default (~/tensorflow_datasets or $TFDS_DATA_DIR)
    config.data.folder = ""  # a folder of pictures (one sub-folder per style) instead of data.name
    config.data.image_size = 0  # 0 = the dataset's own size
    config.data.crop = "center"  # or "random": a square of 80-100 % of the shorter side
    config.data.random_flip = False
    config.data.patches = 0  # N > 0: N random image_size crops per picture per epoch (textures)
    config.data.bad_images = "error"  # or "skip": unreadable pictures in a folder
    config.data.cache_mb = 1024  # decode datasets this small into memory once
    config.data.workers = 2  # threads preparing batches
    config.data.prefetch = 2  # batches prepared ahead

    config.model = ml_collections.ConfigDict()
    config.model.name = "dcgan"  # or "sngan", "biggan", "stylegan2"; "mlp" for 2-D data (jaxgan.train.MODELS)
    config.model.latent_dim = 64
    config.model.g_width = 64  # channels before G's last upsampling; doubles per block inwards
    config.model.d_width = 64  # channels of D's first convolution; doubles per block
    config.model.d_spectral_norm = True  # dcgan: spectral normalisation of every D layer (Miyato et al. 2018)
    config.model.attention_resolution = 0  # biggan: a self-attention block at this resolution (0 = none)
    config.model.mapping_layers = 8  # stylegan2: layers of the mapping network
    config.model.d_pack = 1  # m > 1: D judges m samples at once, joined along channels (PacGAN; unconditional)
    config.model.d_mbstd_group = 0  # k > 0: a minibatch-stddev feature over groups of k in D (stylegan2: always 4)
    config.model.mlp_init_std = 0.0  # mlp: s > 0 draws every weight from N(0, s^2) (PacGAN's 0.02); 0: LeCun normal


    config.loss = ml_collections.ConfigDict()
    config.loss.name = "nonsaturating"  # or "hinge", "wasserstein", "least_squares"
    config.loss.gp_weight = 0.0  # WGAN-GP gradient penalty weight (Gulrajani et al. 2017 use 10)
    config.loss.r1_gamma = 0.0  # R1 penalty gamma on real images (Mescheder et al. 2018)
    config.loss.r1_every = 16  # lazy R1: every k-th D update, weighted by k (Karras et al. 2020)

    config.augment = ml_collections.ConfigDict()
    config.augment.policy = ""  # DiffAugment ops applied to every image D sees: "color,translation,cutout"
    # > 0: each op is applied with a strength p steered so that E[sign D(real)] -> target (ADA: 0.6)
    config.augment.ada_target = 0.0
    config.augment.ada_images = 500_000  # real images over which p may move by 1 (ADA's 500 kimg)

    config.optim = ml_collections.ConfigDict()
    config.optim.g_lr = 2e-4
    config.optim.d_lr = 2e-4
    config.optim.b1 = 0.5
    config.optim.b2 = 0.999
    config.optim.n_dis = 1  # D updates per G update, each on its own batch of real images
    config.optim.grad_accum = 1  # k > 1: each update averages k micro-batches of batch_size / k (less memory)
    config.optim.lr_decay = "constant"  # or "linear": both learning rates fall linearly to 0 at `steps`
    config.optim.ema_decay = 0.999  # EMA of G's parameters, warmed up as min(decay, (1+t)/(10+t))
    config.optim.nonfinite = "skip"  # a NaN/Inf loss or gradient: "skip" the update (counted), or "stop"

    config.log_every = 100
    config.checkpoint_every = 1000
    config.keep_checkpoints = 3
    config.sample_every = 1000
    config.eval_every = 0  # > 0: evaluate the EMA generator every this many steps (and at the end)

    config.eval = ml_collections.ConfigDict()
    config.eval.metrics = "fid,acc"  # as `python -m jaxgan.evaluate --metrics`: fid,kid,pr,dc,is,acc
    config.eval.num_samples = 2000
    config.eval.features = "digits"  # or "inception" (needs its weights file; see the README)
    # fid, kid_mean (lower is better) or acc, precision, recall, density, coverage, is_mean (higher)
    config.eval.best_metric = "fid"
    config.eval.keep_best = 2  # checkpoints with the best best_metric kept in WORKDIR/best/
    return config
