"""Train-step time of jaxgan beside the same network, loss, optimizer and batch in PyTorch.

make bench          (a Python 3.11 venv with torch 2.13 CPU and jaxgan; then runs this script)
.venv-bench/bin/python benchmarks/step_time.py [--steps 30] [--only sngan] [--json out.json]

For each network the two steps run interleaved (jaxgan, torch, jaxgan, torch, ...) after warm-up,
so drift of the machine hits both sides alike; each side's figure is the median over --steps.
A step is what one call of `train.make_step` does: `optim.n_dis` D updates, each on its own
batch_size real images and fakes of new latents, one G update against the updated D (the last
D update's fakes, G forward once for both), and the EMA of G. It consumes batch_size * n_dis real
images; "img/s" counts those, as train.py's log does. FLOPs per step are XLA's cost analysis of
the lowered jaxgan step (the same count on every backend); model FLOPs utilisation (MFU) divides
FLOPs / step time by the float32 matmul peak measured in the same run (a 2048x2048 matmul under
jax on CPU, 8192x8192 on GPU).
Sampling rows time the generator alone in inference mode at batch 256.

On GPU (jax's default backend "gpu" and a CUDA build of torch) both sides run there, each with
its library's default precision: the "float32" matmul peak and jaxgan's step use whatever
precision XLA picks for float32 matmuls and convolutions by default (TF32 on recent NVIDIA GPUs),
torch whatever its allow_tf32 flags say. The header line prints both settings.
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.utils.parametrizations import spectral_norm  # noqa: E402

from configs import celeb_a64_dcgan, cifar10_sngan, default  # noqa: E402
from jaxgan import models, resnet, train  # noqa: E402

# name -> (config, image shape, classes)
NETWORKS = {
    "classic DCGAN 28x28 (conditional, configs/default.py)": (default.get_config, (28, 28, 1), 10),
    "DCGAN 64x64 (configs/celeb_a64_dcgan.py)": (celeb_a64_dcgan.get_config, (64, 64, 3), 0),
    "SNGAN ResNet 32x32 (configs/cifar10_sngan.py)": (cifar10_sngan.get_config, (32, 32, 3), 0),
}
# Side lengths of the square matmul that measures the peak: big enough to keep each device busy.
PEAK_MATMUL_SIZE = {"cpu": 2048, "gpu": 8192}
SAMPLE_BATCH = 256


class TorchConditionalBatchNorm(nn.Module):
    """jaxgan's ConditionalBatchNorm: batch norm, then per-class scale (1 + gamma) and offset beta."""

    def __init__(self, features: int, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.norm = nn.BatchNorm2d(features, affine=num_classes == 0, momentum=0.1)  # flax momentum 0.9
        if num_classes:
            self.gamma = nn.Embedding(num_classes, features)
            self.beta = nn.Embedding(num_classes, features)
            nn.init.zeros_(self.gamma.weight)
            nn.init.zeros_(self.beta.weight)

    def forward(self, x, labels):
        x = self.norm(x)
        if not self.num_classes:
            return x
        return x * (1 + self.gamma(labels)[:, :, None, None]) + self.beta(labels)[:, :, None, None]


class TorchGenerator(nn.Module):
    """jaxgan's Generator: [z, embed(label)] -> Linear -> CBN/ReLU -> 4x4 stride-2 transposed convs -> tanh."""

    def __init__(self, image_size, channels, num_classes, width, latent_dim):
        super().__init__()
        n = models.num_upsamplings(image_size)
        self.start, self.width = image_size >> n, width * 2 ** (n - 1)
        self.embed = nn.Embedding(num_classes, latent_dim) if num_classes else None
        in_features = latent_dim * (2 if num_classes else 1)
        self.dense = nn.Linear(in_features, self.start * self.start * self.width, bias=False)
        self.norms = nn.ModuleList([TorchConditionalBatchNorm(self.width, num_classes)])
        self.ups = nn.ModuleList()
        w = self.width
        for _ in range(n - 1):
            self.ups.append(nn.ConvTranspose2d(w, w // 2, 4, 2, 1, bias=False))
            w //= 2
            self.norms.append(TorchConditionalBatchNorm(w, num_classes))
        self.ups.append(nn.ConvTranspose2d(w, channels, 4, 2, 1))

    def forward(self, z, labels):
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], 1)
        x = self.dense(z).view(z.shape[0], self.width, self.start, self.start)
        x = torch.relu(self.norms[0](x, labels))
        for up, norm in zip(self.ups[:-1], self.norms[1:]):
            x = torch.relu(norm(up(x), labels))
        return torch.tanh(self.ups[-1](x))


class TorchDiscriminator(nn.Module):
    """jaxgan's Discriminator: spectrally normalised 4x4 stride-2 convs, leaky ReLU, projection head."""

    def __init__(self, image_size, channels, num_classes, width):
        super().__init__()
        layers, w, c = [], width, channels
        size = image_size
        for _ in range(models.num_upsamplings(image_size)):
            layers.append(spectral_norm(nn.Conv2d(c, w, 4, 2, 1)))
            c, w, size = w, w * 2, size // 2
        self.convs = nn.ModuleList(layers)
        self.linear = spectral_norm(nn.Linear(c * size * size, 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, c)) if num_classes else None

    def forward(self, images, labels):
        x = images
        for conv in self.convs:
            x = nn.functional.leaky_relu(conv(x), 0.2)
        logits = self.linear(x.flatten(1))[:, 0]
        if self.embed is not None:
            logits = logits + (self.embed(labels) * x.sum((2, 3))).sum(1)
        return logits


def _upsample(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour 2x upsampling, as resnet._upsample: [N, C, H, W] -> [N, C, 2H, 2W]."""
    return nn.functional.interpolate(x, scale_factor=2, mode="nearest")


class TorchGBlock(nn.Module):
    """resnet._GBlock of SNGAN: BN-ReLU-upsample-conv3x3 (no bias)-BN-ReLU-conv3x3, shortcut conv1x1-upsample."""

    def __init__(self, in_channels: int, out_channels: int, num_classes: int):
        super().__init__()
        self.norm1 = TorchConditionalBatchNorm(in_channels, num_classes)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = TorchConditionalBatchNorm(out_channels, num_classes)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x, labels):
        """x: float [N, C_in, H, W] -> float [N, C_out, 2H, 2W]."""
        h = self.conv1(_upsample(torch.relu(self.norm1(x, labels))))
        h = self.conv2(torch.relu(self.norm2(h, labels)))
        # As jaxgan: the 1x1 convolution before the upsampling, on 4x fewer pixels.
        return h + _upsample(self.shortcut(x))


class TorchSNGANGenerator(nn.Module):
    """resnet.SNGANGenerator: Linear(z) -> [ch, start, start] -> residual up blocks -> BN-ReLU-conv3x3-tanh."""

    def __init__(self, image_size, channels, num_classes, width, latent_dim):
        super().__init__()
        n = models.num_upsamplings(image_size)
        self.start = image_size >> n
        self.widths = resnet.block_channels(n, width)[::-1]  # G's channels are D's reversed
        self.linear = nn.Linear(latent_dim, self.start * self.start * self.widths[0])
        self.blocks = nn.ModuleList(TorchGBlock(c_in, c_out, num_classes)
                                    for c_in, c_out in zip(self.widths, self.widths[1:]))
        self.output_norm = nn.BatchNorm2d(self.widths[-1])  # never class-conditional, as jaxgan's
        self.output_conv = nn.Conv2d(self.widths[-1], channels, 3, padding=1)

    def forward(self, z, labels):
        """z: float [N, latent_dim]; labels: int [N] or None. Returns float [N, C, S, S] in [-1, 1]."""
        x = self.linear(z).view(z.shape[0], self.widths[0], self.start, self.start)
        for block in self.blocks:
            x = block(x, labels)
        return torch.tanh(self.output_conv(torch.relu(self.output_norm(x))))


class TorchDBlock(nn.Module):
    """resnet._DBlock: (ReLU)-conv3x3-ReLU-conv3x3-(avgpool), shortcut (avgpool)-conv1x1, all spectrally normalised."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool, preactivation: bool):
        super().__init__()
        self.downsample, self.preactivation = downsample, preactivation
        self.conv1 = spectral_norm(nn.Conv2d(in_channels, out_channels, 3, padding=1))
        self.conv2 = spectral_norm(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        has_shortcut_conv = downsample or in_channels != out_channels
        self.shortcut = spectral_norm(nn.Conv2d(in_channels, out_channels, 1)) if has_shortcut_conv else None

    def forward(self, x):
        """x: float [N, C_in, H, W] -> float [N, C_out, H/2, W/2] (H, W without `downsample`)."""
        h = self.conv1(torch.relu(x) if self.preactivation else x)
        h = self.conv2(torch.relu(h))
        shortcut = x
        if self.downsample:
            # As jaxgan: pool before the 1x1 convolution, on 4x fewer pixels.
            h, shortcut = nn.functional.avg_pool2d(h, 2), nn.functional.avg_pool2d(shortcut, 2)
        if self.shortcut is not None:
            shortcut = self.shortcut(shortcut)
        return h + shortcut


class TorchSNGANDiscriminator(nn.Module):
    """resnet.SNGANDiscriminator: residual blocks, ReLU, sum over positions, linear (+ projection) head."""

    def __init__(self, image_size, channels, num_classes, width):
        super().__init__()
        n = models.num_upsamplings(image_size)
        widths = resnet.block_channels(n, width)
        # n halving blocks, then one that keeps the 4x4..7x7 map; the first has no pre-activation.
        self.blocks = nn.Sequential(*(TorchDBlock(c_in, c_out, downsample=i < n, preactivation=i > 0)
                                      for i, (c_in, c_out) in enumerate(zip([channels, *widths], widths))))
        self.linear = spectral_norm(nn.Linear(widths[-1], 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, widths[-1])) if num_classes else None

    def forward(self, images, labels):
        """images: float [N, C, H, W]; labels: int [N] or None. Returns logits float [N]."""
        pooled = torch.relu(self.blocks(images)).sum((2, 3))
        logits = self.linear(pooled)[:, 0]
        if self.embed is not None:
            logits = logits + (self.embed(labels) * pooled).sum(1)
        return logits


# config.model.name -> (generator, discriminator), constructed as G(image_size, channels,
# num_classes, g_width, latent_dim) and D(image_size, channels, num_classes, d_width).
# Initialisation is torch's default, not jaxgan's: it changes no step's work.
TORCH_MODELS = {
    "dcgan": (TorchGenerator, TorchDiscriminator),
    "sngan": (TorchSNGANGenerator, TorchSNGANDiscriminator),
}

# config.loss.name -> (D loss of real and fake logits, G loss of fake logits), as jaxgan.losses.
TORCH_LOSSES = {
    "nonsaturating": (lambda real, fake: nn.functional.softplus(-real).mean() + nn.functional.softplus(fake).mean(),
                      lambda fake: nn.functional.softplus(-fake).mean()),
    "hinge": (lambda real, fake: torch.relu(1 - real).mean() + torch.relu(1 + fake).mean(),
              lambda fake: -fake.mean()),
}


def lr_scheduler(optimizer: torch.optim.Optimizer, config, updates_per_step: int):
    """train.build_optimizers' learning rate for `optimizer`: constant, or linear decay to 0 at config.steps."""
    total = config.steps * updates_per_step
    if config.optim.lr_decay == "linear":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1 - min(t, total) / total)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1.0)


def synchronize(device: torch.device) -> None:
    """Waits for `device`'s queued work: CUDA kernels run asynchronously, CPU ops are done on return."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def torch_step_fn(config, image_shape, num_classes, real, labels, device):
    """A closure running one PyTorch train step identical in work to jaxgan's; also the generator.

    real: float32 [B * n_dis, H, W, C] in [-1, 1]; labels: int [B * n_dis]. As in train.make_step,
    row r feeds D update r % n_dis.
    """
    height, _, channels = image_shape
    m, o, n_dis = config.model, config.optim, config.optim.n_dis
    generator_class, discriminator_class = TORCH_MODELS[m.name]
    generator = generator_class(height, channels, num_classes, m.g_width, m.latent_dim).to(device)
    discriminator = discriminator_class(height, channels, num_classes, m.d_width).to(device)
    d_loss_fn, g_loss_fn = TORCH_LOSSES[config.loss.name]
    g_opt = torch.optim.Adam(generator.parameters(), o.g_lr, betas=(o.b1, o.b2))
    d_opt = torch.optim.Adam(discriminator.parameters(), o.d_lr, betas=(o.b1, o.b2))
    g_schedule, d_schedule = lr_scheduler(g_opt, config, 1), lr_scheduler(d_opt, config, n_dis)
    ema = [p.detach().clone() for p in generator.parameters()]
    batch_size = real.shape[0] // n_dis
    real = torch.from_numpy(np.transpose(real, (0, 3, 1, 2)).copy()).to(device)
    # n_dis views of [B, C, H, W] (and [B]): rows r with r % n_dis = i for D update i.
    real_rows = real.view(batch_size, n_dis, *real.shape[1:]).unbind(1)
    label_rows = (torch.from_numpy(labels.astype(np.int64)).to(device).view(batch_size, n_dis).unbind(1)
                  if num_classes else (None,) * n_dis)
    counter = [0]

    def new_latents():
        return torch.randn(batch_size, m.latent_dim, device=device)

    def d_update(real, fake, labels):
        d_opt.zero_grad(set_to_none=True)
        both = None if labels is None else torch.cat([labels, labels])
        # Real and fake in one call, as jaxgan: one power iteration of spectral norm per D update.
        real_logits, fake_logits = discriminator(torch.cat([real, fake.detach()]), both).chunk(2)
        d_loss_fn(real_logits, fake_logits).backward()
        d_opt.step()
        d_schedule.step()

    def step():
        for real, labels in zip(real_rows[:-1], label_rows[:-1]):
            # These fakes train D alone (G in training mode, its batch-norm statistics updated, as jaxgan's).
            with torch.no_grad():
                fake = generator(new_latents(), labels)
            d_update(real, fake, labels)
        labels = label_rows[-1]
        fake = generator(new_latents(), labels)  # kept for G's update: G runs forward once for both
        d_update(real_rows[-1], fake, labels)
        g_opt.zero_grad(set_to_none=True)
        # jaxgan differentiates G's loss through D with respect to the fakes only: no weight gradients of D.
        discriminator.requires_grad_(False)
        g_loss_fn(discriminator(fake, labels)).backward()
        discriminator.requires_grad_(True)
        g_opt.step()
        g_schedule.step()
        with torch.no_grad():
            t = counter[0]
            decay = min(o.ema_decay, (1 + t) / (10 + t))
            params = list(generator.parameters())
            torch._foreach_mul_(ema, decay)
            torch._foreach_add_(ema, params, alpha=1 - decay)
        counter[0] += 1
        synchronize(device)

    return step, generator


def jax_step_fn(config, image_shape, num_classes, real, labels):
    """A closure running one jaxgan train step (train.py's compiled step), and its compile time and FLOPs.

    real: float32 [B * n_dis, H, W, C] in [-1, 1]; labels: int32 [B * n_dis] (train.make_step's batch).
    """
    generator, discriminator = train.build_models(config, image_shape, num_classes)
    state = jax.jit(lambda: train.init_state(config, generator, discriminator, image_shape))()
    batch = {"image": jnp.asarray(real), "label": jnp.asarray(labels)}
    step = train.jit_step(train.make_step(config, generator, discriminator), train.make_shardings())
    started = time.perf_counter()
    lowered = step.lower(state, batch)
    compiled = lowered.compile()
    compile_s = time.perf_counter() - started
    # The lowered program's count: the compiled one's on GPU leaves out the convolutions cuDNN runs.
    cost = lowered.cost_analysis()
    flops = (cost[0] if isinstance(cost, list) else cost).get("flops", float("nan"))
    holder = [state]

    def run():
        holder[0], metrics = compiled(holder[0], batch)
        jax.block_until_ready(metrics)

    return run, compile_s, flops, generator, holder


def matmul_peak_flops(size: int) -> float:
    """FLOP/s of a float32 [size, size] @ [size, size] matmul under jax at its default precision (median of 10)."""
    a = jnp.ones((size, size), jnp.float32)
    matmul = jax.jit(lambda x: x @ x)
    matmul(a).block_until_ready()
    times = []
    for _ in range(10):
        started = time.perf_counter()
        matmul(a).block_until_ready()
        times.append(time.perf_counter() - started)
    return 2 * size**3 / statistics.median(times)


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def select_networks(only: str) -> dict:
    """The NETWORKS whose names contain one of the comma-separated substrings of `only` (any case); all if empty."""
    patterns = [p.strip().lower() for p in only.split(",") if p.strip()]
    return {name: spec for name, spec in NETWORKS.items()
            if not patterns or any(p in name.lower() for p in patterns)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--only", default="",
                        help="comma-separated substrings of network names, any case (e.g. sngan); default all")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()
    networks = select_networks(args.only)
    if not networks:
        parser.error(f"--only {args.only!r} matches none of: {'; '.join(NETWORKS)}")

    on_gpu = jax.default_backend() == "gpu"
    device = torch.device("cuda" if on_gpu and torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    peak_size = PEAK_MATMUL_SIZE["gpu" if on_gpu else "cpu"]
    peak = matmul_peak_flops(peak_size)
    torch_device = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    setup = {"jax_device": jax.devices()[0].device_kind,
             "jax_default_matmul_precision": jax.config.jax_default_matmul_precision or "default",
             "torch_device": torch_device, "torch_threads": torch.get_num_threads(),
             "torch_allow_tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
             "torch_allow_tf32_cudnn": torch.backends.cudnn.allow_tf32}
    print(f"jax {jax.__version__} on {setup['jax_device']} (default matmul precision "
          f"{setup['jax_default_matmul_precision']}), torch {torch.__version__} on {torch_device} "
          f"({setup['torch_threads']} threads; allow_tf32 matmul {setup['torch_allow_tf32_matmul']}, "
          f"cudnn {setup['torch_allow_tf32_cudnn']}); float32 matmul peak {peak / 1e9:.0f} GFLOP/s "
          f"({peak_size}x{peak_size} under jax)\n")
    rows = []
    for name, (get_config, image_shape, num_classes) in networks.items():
        config = get_config()
        batch_size, n_dis = config.batch_size, config.optim.n_dis
        rng = np.random.default_rng(0)
        real = rng.uniform(-1, 1, (batch_size * n_dis, *image_shape)).astype(np.float32)
        labels = rng.integers(0, max(num_classes, 1), batch_size * n_dis).astype(np.int32)
        jax_run, compile_s, flops, jax_generator, holder = jax_step_fn(config, image_shape, num_classes, real, labels)
        torch_run, torch_generator = torch_step_fn(config, image_shape, num_classes, real, labels, device)
        for _ in range(args.warmup):
            jax_run()
            torch_run()
        jax_times, torch_times = [], []
        for _ in range(args.steps):
            jax_times.append(timed(jax_run))
            torch_times.append(timed(torch_run))
        jax_s, torch_s = statistics.median(jax_times), statistics.median(torch_times)

        # Sampling: the generator alone, inference mode.
        z = np.random.default_rng(1).standard_normal((SAMPLE_BATCH, config.model.latent_dim)).astype(np.float32)
        sample_labels = np.arange(SAMPLE_BATCH, dtype=np.int32) % max(num_classes, 1)
        generate = train.make_generate(jax_generator)
        state = holder[0]
        jax_sample = lambda: generate(state.ema_params, state.g_batch_stats, z,  # noqa: E731
                                      sample_labels if num_classes else None).block_until_ready()
        torch_generator.eval()
        z_torch = torch.from_numpy(z).to(device)
        labels_torch = torch.from_numpy(sample_labels.astype(np.int64)).to(device) if num_classes else None

        def torch_sample():
            with torch.no_grad():
                torch_generator(z_torch, labels_torch)
            synchronize(device)

        jax_sample()
        torch_sample()
        jax_sample_s = statistics.median(timed(jax_sample) for _ in range(10))
        torch_sample_s = statistics.median(timed(torch_sample) for _ in range(10))
        images = batch_size * n_dis  # real images one step consumes
        rows.append({"network": name, "jaxgan_ms": 1000 * jax_s, "torch_ms": 1000 * torch_s,
                     "ratio": jax_s / torch_s, "n_dis": n_dis, "images_per_s": images / jax_s,
                     "torch_images_per_s": images / torch_s, "compile_s": compile_s,
                     "gflops_per_step": flops / 1e9, "mfu": flops / jax_s / peak,
                     "sample_images_per_s": SAMPLE_BATCH / jax_sample_s,
                     "torch_sample_images_per_s": SAMPLE_BATCH / torch_sample_s})
        print(f"done: {name}", file=sys.stderr)

    print("| network, batch 64, float32 | jaxgan ms/step | PyTorch ms/step | ratio | jaxgan img/s | compile s "
          f"| GFLOP/step | MFU | sampling img/s (jaxgan / PyTorch, batch {SAMPLE_BATCH}) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['network']} | {r['jaxgan_ms']:.1f} | {r['torch_ms']:.1f} | {r['ratio']:.2f}x | "
              f"{r['images_per_s']:.0f} | {r['compile_s']:.1f} | {r['gflops_per_step']:.2f} | {100 * r['mfu']:.0f} % | "
              f"{r['sample_images_per_s']:.0f} / {r['torch_sample_images_per_s']:.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"peak_gflops": peak / 1e9, "peak_matmul_size": peak_size, **setup, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
