"""Train-step time of jaxgan beside the same network, loss, optimizer and batch in PyTorch.

make bench          (a Python 3.11 venv with torch 2.13 CPU and jaxgan; then runs this script)
.venv-bench/bin/python benchmarks/step_time.py [--steps 30] [--json out.json]

For each network the two steps run interleaved (jaxgan, torch, jaxgan, torch, ...) after warm-up,
so drift of the machine hits both sides alike; each side's figure is the median over --steps.
A step is one D update on real + fake, one G update against the updated D (G forward once), and
the EMA of G. FLOPs per step are XLA's cost analysis of the compiled jaxgan step; model FLOPs
utilisation (MFU) divides FLOPs / step time by the float32 matmul peak measured in the same run
(a 2048x2048 matmul under jax). Sampling rows time the generator alone in inference mode at
batch 256.
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

from configs import celeb_a64_dcgan, default  # noqa: E402
from jaxgan import models, train  # noqa: E402

# name -> (config, image shape, classes); SNGAN ResNet 32x32 waits for the architectures of the zoo.
NETWORKS = {
    "classic DCGAN 28x28 (conditional, configs/default.py)": (default.get_config, (28, 28, 1), 10),
    "DCGAN 64x64 (configs/celeb_a64_dcgan.py)": (celeb_a64_dcgan.get_config, (64, 64, 3), 0),
}


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


def torch_step_fn(config, image_shape, num_classes, real, labels):
    """A closure running one PyTorch train step identical in work to jaxgan's; also the generator."""
    height, _, channels = image_shape
    generator = TorchGenerator(height, channels, num_classes, config.model.g_width, config.model.latent_dim)
    discriminator = TorchDiscriminator(height, channels, num_classes, config.model.d_width)
    o = config.optim
    g_opt = torch.optim.Adam(generator.parameters(), o.g_lr, betas=(o.b1, o.b2))
    d_opt = torch.optim.Adam(discriminator.parameters(), o.d_lr, betas=(o.b1, o.b2))
    ema = [p.detach().clone() for p in generator.parameters()]
    real = torch.from_numpy(np.transpose(real, (0, 3, 1, 2)).copy())
    labels = torch.from_numpy(labels.astype(np.int64)) if num_classes else None
    softplus = nn.functional.softplus
    counter = [0]

    def step():
        z = torch.randn(real.shape[0], config.model.latent_dim)
        fake = generator(z, labels)
        d_opt.zero_grad(set_to_none=True)
        both = None if labels is None else torch.cat([labels, labels])
        logits = discriminator(torch.cat([real, fake.detach()]), both)
        real_logits, fake_logits = logits.chunk(2)
        (softplus(-real_logits).mean() + softplus(fake_logits).mean()).backward()
        d_opt.step()
        g_opt.zero_grad(set_to_none=True)
        softplus(-discriminator(fake, labels)).mean().backward()
        g_opt.step()
        with torch.no_grad():
            t = counter[0]
            decay = min(o.ema_decay, (1 + t) / (10 + t))
            params = list(generator.parameters())
            torch._foreach_mul_(ema, decay)
            torch._foreach_add_(ema, params, alpha=1 - decay)
        counter[0] += 1

    return step, generator


def jax_step_fn(config, image_shape, num_classes, real, labels):
    """A closure running one jaxgan train step (train.py's compiled step), and its compile time and FLOPs."""
    generator, discriminator = train.build_models(config, image_shape, num_classes)
    mesh = train.make_mesh()
    state = jax.jit(lambda: train.init_state(config, generator, discriminator, image_shape))()
    batch = {"image": jnp.asarray(real), "label": jnp.asarray(labels)}
    step = train.jit_step(train.make_step(config, generator, discriminator), mesh)
    started = time.perf_counter()
    compiled = step.lower(state, batch).compile()
    compile_s = time.perf_counter() - started
    cost = compiled.cost_analysis()
    flops = (cost[0] if isinstance(cost, list) else cost).get("flops", float("nan"))
    holder = [state]

    def run():
        holder[0], metrics = compiled(holder[0], batch)
        jax.block_until_ready(metrics)

    return run, compile_s, flops, generator, holder


def matmul_peak_flops() -> float:
    """float32 FLOP/s of a 2048x2048 matmul under jax on this machine (median of 10)."""
    a = jnp.ones((2048, 2048), jnp.float32)
    matmul = jax.jit(lambda x: x @ x)
    matmul(a).block_until_ready()
    times = []
    for _ in range(10):
        started = time.perf_counter()
        matmul(a).block_until_ready()
        times.append(time.perf_counter() - started)
    return 2 * 2048**3 / statistics.median(times)


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()

    torch.manual_seed(0)
    peak = matmul_peak_flops()
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); float32 matmul peak {peak / 1e9:.0f} GFLOP/s\n")
    rows = []
    for name, (get_config, image_shape, num_classes) in NETWORKS.items():
        config = get_config()
        batch_size = config.batch_size
        rng = np.random.default_rng(0)
        real = rng.uniform(-1, 1, (batch_size, *image_shape)).astype(np.float32)
        labels = rng.integers(0, max(num_classes, 1), batch_size).astype(np.int32)
        jax_run, compile_s, flops, jax_generator, holder = jax_step_fn(config, image_shape, num_classes, real, labels)
        torch_run, torch_generator = torch_step_fn(config, image_shape, num_classes, real, labels)
        for _ in range(args.warmup):
            jax_run()
            torch_run()
        jax_times, torch_times = [], []
        for _ in range(args.steps):
            jax_times.append(timed(jax_run))
            torch_times.append(timed(torch_run))
        jax_s, torch_s = statistics.median(jax_times), statistics.median(torch_times)

        # Sampling: the generator alone, inference mode, batch 256.
        z = np.random.default_rng(1).standard_normal((256, config.model.latent_dim)).astype(np.float32)
        sample_labels = np.arange(256, dtype=np.int32) % max(num_classes, 1)
        generate = train.make_generate(jax_generator)
        state = holder[0]
        jax_sample = lambda: generate(state.ema_params, state.g_batch_stats, z,  # noqa: E731
                                      sample_labels if num_classes else None).block_until_ready()
        torch_generator.eval()
        z_torch, labels_torch = torch.from_numpy(z), torch.from_numpy(sample_labels.astype(np.int64))

        def torch_sample():
            with torch.no_grad():
                torch_generator(z_torch, labels_torch if num_classes else None)

        jax_sample()
        torch_sample()
        jax_sample_s = statistics.median(timed(jax_sample) for _ in range(10))
        torch_sample_s = statistics.median(timed(torch_sample) for _ in range(10))
        rows.append({"network": name, "jaxgan_ms": 1000 * jax_s, "torch_ms": 1000 * torch_s,
                     "ratio": jax_s / torch_s, "images_per_s": batch_size / jax_s,
                     "torch_images_per_s": batch_size / torch_s, "compile_s": compile_s,
                     "gflops_per_step": flops / 1e9, "mfu": flops / jax_s / peak,
                     "sample_images_per_s": 256 / jax_sample_s, "torch_sample_images_per_s": 256 / torch_sample_s})
        print(f"done: {name}", file=sys.stderr)

    print("| network, batch 64, float32 | jaxgan ms/step | PyTorch ms/step | ratio | jaxgan img/s | compile s "
          "| GFLOP/step | MFU | sampling img/s (jaxgan / PyTorch, batch 256) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['network']} | {r['jaxgan_ms']:.1f} | {r['torch_ms']:.1f} | {r['ratio']:.2f}x | "
              f"{r['images_per_s']:.0f} | {r['compile_s']:.1f} | {r['gflops_per_step']:.2f} | {100 * r['mfu']:.0f} % | "
              f"{r['sample_images_per_s']:.0f} / {r['torch_sample_images_per_s']:.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"peak_gflops": peak / 1e9, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
