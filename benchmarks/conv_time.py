"""One convolution layer, forward and both gradients, under XLA and under PyTorch on the same machine.

.venv-bench/bin/python benchmarks/conv_time.py [--repeats 9]
XLA_FLAGS=--xla_cpu_use_onednn=true .venv-bench/bin/python benchmarks/conv_time.py    (try XLA's options)

The layer is DCGAN's: a 4x4 stride-2 convolution, padding 1, batch 64 of 16x16x128 -> 8x8x256,
float32. The time is the median of --repeats calls after one warm-up call; the loss is the sum of
squares of the output, so a call is one forward and the gradients for the input and the kernel
(3 x 4.29 GFLOP). Also prints the float32 matmul peak of each library (2048x2048; jax's as
step_time.py measures it). This locates the train step's gap on CPUs (benchmarks/step_time.py):
it is in the convolution kernels.
"""

import argparse
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from step_time import matmul_peak_flops, timed  # noqa: E402  (beside this script)

BATCH, SIZE, IN_CHANNELS, OUT_CHANNELS, KERNEL, STRIDE = 64, 16, 128, 256, 4, 2
OUT_SIZE = SIZE // STRIDE
FLOPS = 3 * 2 * BATCH * OUT_SIZE * OUT_SIZE * OUT_CHANNELS * KERNEL * KERNEL * IN_CHANNELS  # fwd + 2 grads
MATMUL = 2048


def median_seconds(fn, repeats: int) -> float:
    """Median wall time of `repeats` calls of `fn`, after one warm-up call."""
    fn()
    return statistics.median(timed(fn) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images = rng.standard_normal((BATCH, SIZE, SIZE, IN_CHANNELS)).astype(np.float32)  # NHWC
    kernel = 0.01 * rng.standard_normal((KERNEL, KERNEL, IN_CHANNELS, OUT_CHANNELS)).astype(np.float32)  # HWIO

    def jax_loss(x, w):
        y = jax.lax.conv_general_dilated(x, w, (STRIDE, STRIDE), ((1, 1), (1, 1)),
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return (y**2).sum()

    jax_grads = jax.jit(jax.grad(jax_loss, argnums=(0, 1)))
    x, w = jnp.asarray(images), jnp.asarray(kernel)
    jax_s = median_seconds(lambda: jax.block_until_ready(jax_grads(x, w)), args.repeats)

    torch_x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy()).requires_grad_()  # NCHW
    torch_w = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()).requires_grad_()  # OIHW

    def torch_grads():
        torch_x.grad = torch_w.grad = None
        (torch.nn.functional.conv2d(torch_x, torch_w, stride=STRIDE, padding=1) ** 2).sum().backward()

    torch_s = median_seconds(torch_grads, args.repeats)

    jax_peak = matmul_peak_flops(MATMUL)
    torch_a = torch.ones(MATMUL, MATMUL)
    torch_peak = 2 * MATMUL**3 / median_seconds(lambda: torch_a @ torch_a, args.repeats)

    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print("| library | conv fwd + grads ms | conv GFLOP/s | matmul GFLOP/s (2048^2) |")
    print("| --- | --- | --- | --- |")
    print(f"| XLA (jax) | {1000 * jax_s:.1f} | {FLOPS / jax_s / 1e9:.1f} | {jax_peak / 1e9:.0f} |")
    print(f"| PyTorch | {1000 * torch_s:.1f} | {FLOPS / torch_s / 1e9:.1f} | {torch_peak / 1e9:.0f} |")


if __name__ == "__main__":
    main()
