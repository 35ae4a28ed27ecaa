"""Interpolation in feature space, mapped back to images (paper, Figure 5).

For two images `x0`, `x1` and `t` from 0 to 1,

    x_t = Phi^-1((1 - t) Phi(x0) + t Phi(x1))

(the paper's `Phi^-1(t Phi(x0) + (1 - t) Phi(x1))` with `t` and `1 - t`
exchanged, so strips read from `x0` on the left to `x1` on the right).
Because `Phi` is invertible, the endpoints are the two images themselves;
in between, the path follows the features rather than the pixels. The
straight line in pixel space, `(1 - t) x0 + t x1`, is shown for comparison.
For an injective model the mixed features may lie off `Phi`'s image;
`Phi^-1` is then its left inverse.
"""

import os

import numpy as np
import tensorflow as tf
from absl import flags
from matplotlib import figure as figure_lib

from irevnet_tf import files
from irevnet_tf.analysis import command_line
from irevnet_tf.analysis import data as data_lib
from irevnet_tf.analysis import figures
from irevnet_tf.analysis import outputs
from irevnet_tf.reconstruction_error import relative_errors

# `python -m irevnet_tf.analysis interpolation`: the flags beyond those of
# every analysis (`command_line`).
FLAGS = flags.FlagValues()
_NUM_PAIRS = flags.DEFINE_integer(
    "num_pairs", 4, "Random pairs.", lower_bound=1, flag_values=FLAGS
)
_STEPS = flags.DEFINE_integer(
    "steps", 9, "Values of t, >= 2.", lower_bound=2, flag_values=FLAGS
)
_PAIRS = command_line.define_index_pairs(
    "pairs",
    None,
    "Image indices in the split instead of random pairs: 0:5,3:9.",
    FLAGS,
)


def interpolation_path(model, x0, x1, steps: int) -> dict:
    """Images along the feature-space line from `x0` to `x1`.

    Args:
        model: an `IRevNetClassifier`.
        x0, x1: two images `(H, W, C)` as the model takes them.
        steps: number of values of `t`, evenly spaced in [0, 1] (>= 2).

    Returns:
        A dict of numpy arrays: "t" `(steps,)`; "features_path" and
        "pixel_path" `(steps, H, W, C)`, the images along the feature-space
        and pixel-space lines; "predictions" `(steps,)`, the model's class
        for each image of the feature-space path.
    """
    if not isinstance(steps, int) or steps < 2:
        raise ValueError(
            f"`steps` must be an integer >= 2. Received: steps={steps!r}"
        )
    t = np.linspace(0.0, 1.0, steps)
    endpoints = tf.constant(np.stack([x0, x1]), tf.float32)
    features = model.features(endpoints, training=False)
    weights = tf.constant(t, features.dtype)[:, None, None, None]
    mixed = (1 - weights) * features[0] + weights * features[1]
    images = model.inverse(mixed, training=False)
    logits = model.logits_from_features(mixed, training=False)
    x0 = np.asarray(x0, np.float64)
    x1 = np.asarray(x1, np.float64)
    pixel_path = (1 - t)[:, None, None, None] * x0 + t[:, None, None, None] * x1
    return {
        "t": t,
        "features_path": images.numpy(),
        "pixel_path": pixel_path.astype(np.float32),
        "predictions": np.argmax(logits.numpy(), axis=-1),
    }


def choose_pairs(labels, num_pairs: int, seed: int) -> list:
    """`num_pairs` random index pairs, of different labels where possible."""
    labels = np.asarray(labels)
    if labels.size < 2:
        raise ValueError(
            "Interpolation needs at least two images. "
            f"Received: {labels.size} image(s)"
        )
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(num_pairs):
        first = int(rng.integers(labels.size))
        others = np.flatnonzero(labels != labels[first])
        if others.size == 0:
            others = np.delete(np.arange(labels.size), first)
        pairs.append((first, int(rng.choice(others))))
    return pairs


def endpoint_errors(path: dict, x0, x1) -> list:
    """Relative errors of the path's ends against `x0` and `x1`."""
    ends = [path["features_path"][0], path["features_path"][-1]]
    return [float(e) for e in relative_errors(np.stack([x0, x1]), ends)]


def plot_interpolations(
    paths: list, captions: list, title: str
) -> figure_lib.Figure:
    """Two strips per pair: through the features, and through the pixels.

    Args:
        paths: dicts from `interpolation_path`.
        captions: one string per pair (e.g. its indices and labels).
        title: the figure's title.
    """
    steps = len(paths[0]["t"])
    rows = 2 * len(paths)
    fig = figure_lib.Figure(
        figsize=(1.1 * steps + 2, 1.2 * rows + 1), layout="constrained"
    )
    axes = fig.subplots(rows, steps, squeeze=False)
    for p, (path, caption) in enumerate(zip(paths, captions)):
        for r, (key, name) in enumerate(
            (("features_path", "features"), ("pixel_path", "pixels"))
        ):
            row = axes[2 * p + r]
            images = figures.displayable(path[key])
            for j, ax in enumerate(row):
                figures.show_image(ax, images[j])
                if p == 0 and r == 0:
                    ax.set_title(f"t={path['t'][j]:.2f}", fontsize=9)
            row[0].set_ylabel(f"{caption}\n{name}", fontsize=8)
    fig.suptitle(
        f"{title}\nrows: x_t = Phi^-1((1-t) Phi(x0) + t Phi(x1)) (features), "
        "(1-t) x0 + t x1 (pixels)",
        fontsize=10,
    )
    return fig


def run_interpolation(
    model,
    settings: data_lib.DataSettings,
    output_dir: str,
    model_name: str = "model",
    split: str | None = None,
    num_pairs: int = 4,
    steps: int = 9,
    pairs=None,
    pool_size: int = 256,
    seed: int = 0,
) -> dict:
    """Interpolates pairs of images; writes interpolation.json/.png/.npz.

    Args:
        model: an `IRevNetClassifier`.
        settings: a `DataSettings`.
        output_dir: where the outputs go.
        model_name: how the outputs name the model.
        split: the dataset split; None for the dataset's evaluation split.
        num_pairs: random pairs (of different classes where possible) of
            the split's first `pool_size` images, if `pairs` is None.
        steps: values of `t` per strip.
        pairs: optional list of `(i, j)` image indices in the split.
        pool_size: how many of the first images random pairs come from.
        seed: seeds the choice of pairs.

    Returns:
        The record written to interpolation.json. interpolation.npz holds the
        strips: "t", "features_paths" and "pixel_paths" `(pairs, steps, H,
        W, C)` pixels, "pairs".
    """
    if pairs is None and (not isinstance(num_pairs, int) or num_pairs < 1):
        raise ValueError(
            f"`num_pairs` must be a positive integer. Received: "
            f"num_pairs={num_pairs!r}"
        )
    split = split or data_lib.eval_split(settings.dataset)
    if pairs is not None:
        pairs = [(int(i), int(j)) for i, j in pairs]
        if not pairs or min(min(p) for p in pairs) < 0:
            raise ValueError(
                f"Pairs are non-negative image indices. Received: pairs={pairs}"
            )
        pool_size = max(max(p) for p in pairs) + 1
    images, labels, info = data_lib.load_examples(
        model,
        settings,
        split,
        pool_size,
        too_few=None
        if pairs is None
        else lambda size: (
            f"{settings.dataset} {split} has {size} images; indices "
            f"go from 0 to {size - 1}. Received: pairs={pairs}"
        ),
    )
    if pairs is None:
        pairs = choose_pairs(labels, num_pairs, seed)
    paths, captions, entries = [], [], []
    for i, j in data_lib.progress(pairs, len(pairs), "pairs"):
        path = interpolation_path(model, images[i], images[j], steps)
        paths.append(path)
        captions.append(f"#{i} ({labels[i]}) to #{j} ({labels[j]})")
        entries.append(
            {
                "indices": [i, j],
                "labels": [int(labels[i]), int(labels[j])],
                "endpoint_errors": endpoint_errors(path, images[i], images[j]),
                "predictions": path["predictions"],
                "distance_from_pixel_path": [
                    float(np.linalg.norm(a - b))
                    for a, b in zip(path["features_path"], path["pixel_path"])
                ],
            }
        )
    record = {
        "analysis": "interpolation",
        "model": outputs.model_record(model, model_name),
        "data": outputs.data_record(settings, info, split, len(images)),
        "t": paths[0]["t"],
        "pairs": entries,
        "notes": {
            "path": "x_t = Phi^-1((1 - t) Phi(x0) + t Phi(x1)), inference mode",
            "endpoint_errors": (
                "||x_0 - x0|| / ||x0|| and ||x_1 - x1|| / ||x1||: the "
                "reconstruction error at the ends"
            ),
            "predictions": "the model's class for each x_t",
            "distance_from_pixel_path": (
                "||x_t - ((1 - t) x0 + t x1)||, in pixels"
            ),
        },
    }

    fig = plot_interpolations(
        paths,
        captions,
        f"Interpolation in feature space: {model_name}, "
        f"{settings.dataset} {split}",
    )
    outputs.write_outputs(output_dir, "interpolation", record, fig)
    with files.atomic_path(
        os.path.join(output_dir, "interpolation.npz")
    ) as staged:
        np.savez_compressed(
            staged,
            t=paths[0]["t"],
            features_paths=np.stack([p["features_path"] for p in paths]),
            pixel_paths=np.stack([p["pixel_path"] for p in paths]),
            pairs=np.asarray(pairs),
        )
    return record


def main(inputs: command_line.Inputs) -> str:
    """Runs the analysis from its flags; returns a one-line summary."""
    record = run_interpolation(
        inputs.model,
        inputs.required_settings("interpolation"),
        inputs.output_dir,
        model_name=inputs.model_name,
        split=inputs.split,
        num_pairs=_NUM_PAIRS.value,
        steps=_STEPS.value,
        pairs=_PAIRS.value,
        seed=inputs.seed,
    )
    worst = max(max(pair["endpoint_errors"]) for pair in record["pairs"])
    return (
        f"Interpolated {len(record['pairs'])} pairs in {_STEPS.value} "
        f"steps; endpoint reconstruction error at most {worst:.3g}"
    )
