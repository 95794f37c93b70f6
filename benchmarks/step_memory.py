"""Device memory of one compiled train step, by gradient-accumulation factor.

python benchmarks/step_memory.py --config configs/celeb_a64_dcgan.py --image-shape 64,64,3 \
       --batch-size 256 --grad-accum 1,4,16 [--num-classes 0]

Compiles `train.py`'s step for the config (no data needed: the image shape is given) with each
`optim.grad_accum` and prints XLA's memory analysis of it: the state and batch it takes, and the
temporaries (activations, gradients) it allocates while running. With accumulation the temporaries
are those of one micro-batch of batch_size / grad_accum rows.
"""

import argparse
import importlib.util
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgan import train  # noqa: E402


def load_config(path: str):
    spec = importlib.util.spec_from_file_location("benchmarked_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/default.py")
    parser.add_argument("--image-shape", default="28,28,1", help="height,width,channels of the dataset")
    parser.add_argument("--num-classes", type=int, default=None, help="default: 10 when the config has labels")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the config's")
    parser.add_argument("--grad-accum", default="1,4", help="comma-separated optim.grad_accum values")
    args = parser.parse_args()
    image_shape = tuple(int(n) for n in args.image_shape.split(","))
    print("| config | batch | grad_accum | state + batch MiB | temporaries MiB | compile s |\n"
          "| --- | --- | --- | --- | --- | --- |")
    for accum in (int(k) for k in args.grad_accum.split(",")):
        config = load_config(args.config)
        config.optim.grad_accum = accum
        if args.batch_size:
            config.batch_size = args.batch_size
        num_classes = args.num_classes if args.num_classes is not None else 10 if config.data.label_key else 0
        train.validate(config)
        generator, discriminator = train.build_models(config, image_shape, num_classes)
        abstract_state = jax.eval_shape(lambda: train.init_state(config, generator, discriminator, image_shape))
        start = time.perf_counter()
        compiled = train.compile_step(config, generator, discriminator, train.make_shardings(), abstract_state,
                                      image_shape)
        seconds = time.perf_counter() - start
        memory = compiled.memory_analysis()
        print(f"| {os.path.basename(args.config)} | {config.batch_size} | {accum} | "
              f"{memory.argument_size_in_bytes / 2 ** 20:.1f} | {memory.temp_size_in_bytes / 2 ** 20:.1f} | "
              f"{seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
