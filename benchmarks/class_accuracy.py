"""How often a conditional digit GAN draws the digit it is asked for.

python benchmarks/class_accuracy.py --workdir runs/default [--workdir runs/other ...]
       [--num-per-class 100] [--sample-seeds 10] [--no-ema] [--json out.json]

A CNN classifier (jaxgan.classifier) is trained on jaxgan_digits/train (once: it is cached in the
TFDS data dir) and its accuracy on the held-out test split is printed first. For each run it then
samples --num-per-class images of every class for each of --sample-seeds latent seeds (the same path
as `sample.py --labels`) and reports the fraction the classifier labels as the requested class: per
seed, mean ± standard error over seeds, and per class. With several workdirs (e.g. runs of different
training seeds) it also reports the mean ± standard error over runs.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def mean_and_standard_error(values) -> tuple[float, float]:
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", action="append", required=True, help="a run of train.py (repeatable)")
    parser.add_argument("--num-per-class", type=int, default=100)
    parser.add_argument("--sample-seeds", type=int, default=10)
    parser.add_argument("--no-ema", action="store_true", help="measure the raw generator, not its EMA")
    parser.add_argument("--classifier-seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()

    from jaxgan import classifier, trained
    from jaxgan.errors import UserError

    digits = classifier.load_or_train_digit_classifier(seed=args.classifier_seed)
    print(f"digit classifier: {100 * digits.held_out_accuracy:.1f} % on the 1,000 held-out real digits")
    results = {"classifier_held_out_accuracy": digits.held_out_accuracy, "runs": []}
    print("| run | step | generator | accuracy over sample seeds (mean ± SE) | worst class |")
    print("| --- | --- | --- | --- | --- |")
    for workdir in args.workdir:
        try:
            gan = trained.load(workdir)
            classifier.require_digits_run(gan.class_names, workdir)
        except UserError as e:
            sys.exit(f"class_accuracy.py: error: {e}")
        num = 10 * args.num_per_class
        requested = np.repeat(np.arange(10), args.num_per_class)
        per_seed, per_class = [], np.zeros(10)
        for seed in range(args.sample_seeds):
            images = gan.sample(seed, num, list(range(10)), use_ema=not args.no_ema)
            predicted = digits.predict(images)
            per_seed.append(float(np.mean(predicted == requested)))
            per_class += classifier.accuracy_per_class(predicted, requested) / args.sample_seeds
        mean, se = mean_and_standard_error(per_seed)
        worst = int(np.argmin(per_class))
        generator = "raw" if args.no_ema else "EMA"
        print(f"| {workdir} | {gan.step} | {generator} | {100 * mean:.1f} ± {100 * se:.1f} % "
              f"| {worst}: {100 * per_class[worst]:.1f} % |", flush=True)
        results["runs"].append({"workdir": workdir, "step": gan.step, "generator": generator,
                                "accuracy_per_sample_seed": per_seed, "accuracy_per_class": per_class.tolist()})
    if len(args.workdir) > 1:
        mean, se = mean_and_standard_error([np.mean(r["accuracy_per_sample_seed"]) for r in results["runs"]])
        print(f"over {len(args.workdir)} runs: {100 * mean:.1f} ± {100 * se:.1f} % (mean ± SE)")
        results["mean_over_runs"], results["standard_error_over_runs"] = mean, se
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
