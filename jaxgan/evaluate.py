"""Evaluate a generator: FID, KID, precision/recall, density/coverage, Inception Score, class accuracy.

    python -m jaxgan.evaluate --workdir DIR [--metrics fid,kid,pr,dc,is,acc] [--num 10000]
        [--features inception|digits] [--step N] [--seed 0] [--reference-split SPLIT]
        [--num-reference N] [--kid-subset-size 1000] [--inception-weights PATH] [--no-ema]

prints a markdown table and writes DIR/eval.json, one row per number with its protocol beside it.

From a training loop, build an `Evaluator` once (it loads the feature network and the cached
reference features) and call it with the generator:

    evaluator = evaluate.Evaluator.for_run(config, class_names, image_shape, metric_names=("fid", "acc"),
                                           num_samples=10_000, feature_network="digits")
    results = evaluator(generate)  # generate(z [B, latent_dim], label_weights [B, classes] | None)
                                   #   -> images float32 [B, H, W, C] in [-1, 1]
    evaluator.rows(results, step=step)  # the same rows as eval.json
"""

import argparse
import dataclasses
import functools
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from jaxgan import classifier, data, features, inception, metrics, sampling, trained
from jaxgan.errors import UserError

METRICS = ("fid", "kid", "pr", "dc", "is", "acc")
REFERENCE_METRICS = ("fid", "kid", "pr", "dc")  # the ones that compare with real images
KID_SUBSETS = 100
PRDC_NEAREST_K = 5
IS_SPLITS = 10
GENERATE_CHUNK = 500  # samples generated, then embedded, at a time: memory stays flat in --num


@dataclasses.dataclass(frozen=True)
class Reference:
    """Features of the real images a generator is compared with.

    Attributes:
      features: float32 [N, D] (KID and PRDC need them; FID only their mean and covariance).
      mean, covariance: float64 [D] and [D, D], streamed while embedding.
      description: which images, e.g. "jaxgan_digits 1.0.0 train: 4000 images, centre crops at 28x28".
    """

    features: np.ndarray
    mean: np.ndarray
    covariance: np.ndarray
    description: str


def reference_features(data_config: ml_collections.ConfigDict, split: str, network: features.FeatureNetwork,
                       num_reference: int = 0) -> Reference:
    """The features of `split` of a run's dataset at the run's resolution, computed once and cached.

    The cache file, in the TFDS data dir, is keyed by dataset, version, split, resolution, crop,
    image count, feature network and jax version (another jax computes other features: the digit
    classifier itself differs), so that no other protocol ever reads it. `num_reference` = 0
    takes the whole split; fewer takes the first of a fixed (seed 0) permutation.
    """
    if data_config.folder or data_config.patches:
        raise UserError("evaluation compares with a TFDS dataset's whole pictures; folder datasets and patch "
                        "mode are not supported yet")
    data_dir = data_config.data_dir or None
    dataset = data.load_dataset(data_config.name, split, data_config.label_key or None, data_dir)
    count = num_reference or len(dataset)
    if count > len(dataset):
        raise UserError(f"--num-reference={count} is more than the {len(dataset)} images of "
                        f"{data_config.name}/{split}; pass at most {len(dataset)} (0: all)")
    size = data_config.image_size or dataset.image_shape[0]  # as the run's Pipeline: 0 is the dataset's own
    version = tfds.builder(data_config.name, data_dir=data_dir).version
    description = f"{data_config.name} {version} {split}: {count} images, centre crops at {size}x{size}"
    key = f"{data_config.name}-{version}-{split}-center{size}px-n{count}-{network.name}-jax{jax.__version__}"
    path = os.path.join(data.cache_dir(data_dir), "reference_features", key + ".npz")
    if os.path.exists(path):
        with np.load(path) as cached:
            return Reference(cached["features"], cached["mean"], cached["covariance"], description)
    pipeline = data.Pipeline(dataset, seed=0, batch_size=GENERATE_CHUNK, image_size=size, crop="center",
                             process_index=0, process_count=1)
    all_features, statistics = [], None
    for step in range(math.ceil(count / GENERATE_CHUNK)):
        images = pipeline.batch(step)["image"][:count - step * GENERATE_CHUNK]
        batch_features, _ = network(images)
        statistics = statistics or metrics.FeatureStatistics(batch_features.shape[1])
        statistics.update(batch_features)
        all_features.append(batch_features)
    reference = Reference(np.concatenate(all_features), statistics.mean, statistics.covariance, description)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = f"{path}.{os.getpid()}.tmp.npz"  # renamed into place whole: a cache entry is complete or absent
    np.savez(partial, features=reference.features, mean=reference.mean, covariance=reference.covariance)
    os.replace(partial, path)
    return reference


def parse_metrics(text: str) -> tuple[str, ...]:
    """"fid,kid" -> ("fid", "kid"); UserError naming an unknown metric."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        raise UserError(f"unknown metric {', '.join(map(repr, unknown)) or '(none given)'} in --metrics; "
                        f"choose from {','.join(METRICS)}")
    return names


@dataclasses.dataclass(frozen=True)
class Evaluator:
    """Draws `num_samples` samples from a generator, embeds them, and computes `metric_names`.

    Latent i is latent i of `seed` (jaxgan.sampling.latents); a conditional generator gets the
    classes in equal contiguous blocks (sampling.block_labels), as `sample.py --labels 0,...,K-1`.
    """

    metric_names: tuple[str, ...]
    num_samples: int
    seed: int
    latent_dim: int
    num_classes: int
    network: features.FeatureNetwork
    reference: Reference | None
    digit_classifier: classifier.TrainedClassifier | None  # for "acc"
    kid_subset_size: int
    reference_split: str

    @classmethod
    def for_run(cls, config: ml_collections.ConfigDict, class_names: Sequence[str], image_shape: tuple[int, ...],
                metric_names: Sequence[str], num_samples: int, feature_network: str = "inception", seed: int = 0,
                reference_split: str | None = None, num_reference: int = 0, kid_subset_size: int = 1000,
                inception_weights: str | None = None, workdir: str = "this run") -> "Evaluator":
        """An evaluator for generators of the run `config` (its dataset, resolution and latent size).

        Raises UserError for a request that cannot be met: unknown metric or feature network, too few
        samples for KID subsets or nearest neighbours, a non-digits run for the digit classifier,
        missing Inception weights.
        """
        metric_names = parse_metrics(",".join(metric_names))
        if feature_network not in ("inception", "digits"):
            raise UserError(f"--features={feature_network} must be 'inception' or 'digits'")
        data_dir = config.data.data_dir or None
        if feature_network == "digits" or "acc" in metric_names:
            classifier.require_digits_run(class_names, workdir)
            if tuple(image_shape) != (28, 28, 1):
                raise UserError(f"{workdir} makes {image_shape} images, not 28x28 grey digits; "
                                f"the digit classifier cannot read them: use --features inception")
        smallest = {"fid": 2, "pr": PRDC_NEAREST_K + 1, "dc": PRDC_NEAREST_K + 1, "kid": kid_subset_size,
                    "is": IS_SPLITS, "acc": 1}
        for name in metric_names:
            if num_samples < smallest[name]:
                hint = " or lower --kid-subset-size" if name == "kid" else ""
                raise UserError(f"--num={num_samples} is too few samples for {name}: it needs at least "
                                f"{smallest[name]}; raise --num{hint}")
        network = (features.digit_features(data_dir=data_dir) if feature_network == "digits"
                   else features.inception_features(inception_weights))
        split = reference_split or config.data.split
        reference = None
        if any(name in REFERENCE_METRICS for name in metric_names):
            reference = reference_features(config.data, split, network, num_reference)
            for name in ("kid", "pr", "dc"):
                if name in metric_names and len(reference.features) < smallest[name]:
                    raise UserError(f"{reference.description} are too few for {name}: it needs at least "
                                    f"{smallest[name]} real images")
        digits = classifier.load_or_train_digit_classifier(data_dir=data_dir) if "acc" in metric_names else None
        return cls(metric_names, num_samples, seed, config.model.latent_dim, len(class_names), network, reference,
                   digits, kid_subset_size, split)

    def __call__(self, generate: Callable[[np.ndarray, np.ndarray | None], np.ndarray]) -> dict:
        """Metric name -> value, for the generator `generate`.

        Args:
          generate: (z float32 [B, latent_dim], label weights float32 [B, classes] or None when
            unconditional) -> images float32 [B, H, W, C] in [-1, 1]; B <= GENERATE_CHUNK.
        Returns:
          the requested ones of: fid; kid_mean, kid_std; precision, recall; density, coverage;
          is_mean, is_std; acc (fraction of samples labelled as requested), acc_per_class (list).
        """
        z = np.asarray(sampling.latents(self.seed, self.num_samples, self.latent_dim), np.float32)
        labels = (sampling.block_labels(self.num_samples, range(self.num_classes)) if self.num_classes else None)
        statistics, fake_features, fake_logits, predicted = None, [], [], []
        for start in range(0, self.num_samples, GENERATE_CHUNK):
            chunk = slice(start, start + GENERATE_CHUNK)
            weights = None if labels is None else np.eye(self.num_classes, dtype=np.float32)[labels[chunk]]
            images = generate(z[chunk], weights)
            chunk_features, chunk_logits = self.network(images)
            statistics = statistics or metrics.FeatureStatistics(chunk_features.shape[1])
            statistics.update(chunk_features)
            fake_features.append(chunk_features)
            fake_logits.append(chunk_logits)
            if self.digit_classifier is not None:
                predicted.append(self.digit_classifier.predict(images))
        fake_features = np.concatenate(fake_features)
        results = {}
        if "fid" in self.metric_names:
            results["fid"] = metrics.frechet_distance_from_statistics(
                statistics.mean, statistics.covariance, self.reference.mean, self.reference.covariance)
        if "kid" in self.metric_names:
            results["kid_mean"], results["kid_std"] = metrics.kernel_inception_distance(
                fake_features, self.reference.features, KID_SUBSETS, self.kid_subset_size)
        if "pr" in self.metric_names or "dc" in self.metric_names:
            prdc = metrics.prdc(self.reference.features, fake_features, PRDC_NEAREST_K)
            for name, keys in (("pr", ("precision", "recall")), ("dc", ("density", "coverage"))):
                if name in self.metric_names:
                    results.update({key: prdc[key] for key in keys})
        if "is" in self.metric_names:
            # The samples come in class blocks; the splits must not (a split of one class scores ~1).
            shuffled = np.concatenate(fake_logits)[np.random.default_rng(0).permutation(self.num_samples)]
            results["is_mean"], results["is_std"] = metrics.inception_score(shuffled, IS_SPLITS)
        if "acc" in self.metric_names:
            predicted = np.concatenate(predicted)
            results["acc"] = float(np.mean(predicted == labels))
            results["acc_per_class"] = classifier.accuracy_per_class(predicted, labels, self.num_classes).tolist()
        return results

    def protocol(self) -> dict:
        """What every number depends on besides the generator (eval.json puts it beside each)."""
        protocol = {"num_samples": self.num_samples, "sample_seed": self.seed,
                    "labels": f"{self.num_classes} classes in equal blocks" if self.num_classes else "unconditional",
                    "features": self.network.name, "features_description": self.network.description,
                    "resize": self.network.resize}
        if self.reference is not None:
            protocol.update(reference_split=self.reference_split, reference=self.reference.description)
        if "kid" in self.metric_names:
            protocol.update(kid_subsets=KID_SUBSETS, kid_subset_size=self.kid_subset_size)
        if "pr" in self.metric_names or "dc" in self.metric_names:
            protocol["prdc_nearest_k"] = PRDC_NEAREST_K
        if "is" in self.metric_names:
            protocol["is_splits"] = f"{IS_SPLITS}, of the samples in a fixed random order (seed 0)"
        if "acc" in self.metric_names:
            protocol["acc_classifier_held_out_accuracy"] = self.digit_classifier.held_out_accuracy
        return protocol

    def rows(self, results: dict, **context) -> list[dict]:
        """One dict per number: {"metric", "value", **context (e.g. step, generator), **protocol}."""
        return [{"metric": name, "value": value, **context, **self.protocol()} for name, value in results.items()]


def markdown_table(results: dict) -> str:
    lines = ["| metric | value |", "| --- | --- |"]
    for name, value in results.items():
        shown = ", ".join(f"{v:.3f}" for v in value) if isinstance(value, list) else f"{value:.4g}"
        lines.append(f"| {name} | {shown} |")
    return "\n".join(lines)


def write_rows(path: str, rows: list[dict]) -> None:
    """Adds `rows` to the JSON file `path` ({"results": [...]}), replacing rows of the same metric,
    step, generator and protocol; written through a rename, so the file is always whole."""
    kept = []
    if os.path.exists(path):
        with open(path) as f:
            kept = json.load(f)["results"]
    def identity(row):
        return json.dumps({k: v for k, v in row.items() if k != "value"}, sort_keys=True)
    new = {identity(row) for row in rows}
    kept = [row for row in kept if identity(row) not in new] + rows
    with open(f"{path}.{os.getpid()}.tmp", "w") as f:
        json.dump({"results": kept}, f, indent=1)
    os.replace(f"{path}.{os.getpid()}.tmp", path)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m jaxgan.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, help="a run of train.py")
    parser.add_argument("--metrics", default="fid,kid,pr,dc", help=f"comma-separated, of {','.join(METRICS)}")
    parser.add_argument("--num", type=int, default=10_000, help="generated samples")
    parser.add_argument("--features", default="inception", help="inception or digits")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    parser.add_argument("--seed", type=int, default=0, help="latent seed of the samples")
    parser.add_argument("--reference-split", default=None,
                        help="real images to compare with (default: the run's split)")
    parser.add_argument("--num-reference", type=int, default=0, help="real images used (0: the whole split)")
    parser.add_argument("--kid-subset-size", type=int, default=1000)
    parser.add_argument("--inception-weights", default=None, help=f"path of {inception.WEIGHTS_FILE}")
    parser.add_argument("--no-ema", action="store_true", help="evaluate the raw generator, not its EMA")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        gan = trained.load(args.workdir, args.step)
        evaluator = Evaluator.for_run(
            gan.config, gan.class_names, gan.image_shape, parse_metrics(args.metrics), args.num, args.features,
            args.seed, args.reference_split, args.num_reference, args.kid_subset_size, args.inception_weights,
            args.workdir)
        if evaluator.digit_classifier is not None:
            print(f"digit classifier: {100 * evaluator.digit_classifier.held_out_accuracy:.1f} % on the "
                  f"held-out real digits")
        results = evaluator(functools.partial(gan.generate, use_ema=not args.no_ema))
    except UserError as e:
        sys.exit(f"evaluate: error: {e}")
    generator = "raw" if args.no_ema else "EMA"
    protocol = evaluator.protocol()
    print(f"{args.workdir}, step {gan.step}, {generator} generator: {args.num} samples (latent seed {args.seed}, "
          f"{protocol['labels']}); features: {protocol['features_description']}; resize: {protocol['resize']}"
          + (f"; reference: {protocol['reference']}" if "reference" in protocol else ""))
    print(markdown_table(results))
    write_rows(os.path.join(args.workdir, "eval.json"), evaluator.rows(results, step=gan.step, generator=generator))
    print(f"wrote {os.path.join(args.workdir, 'eval.json')} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
