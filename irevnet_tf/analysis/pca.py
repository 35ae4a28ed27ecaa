"""Dimensionality of the final features: probes on PCA projections (Fig. 7).

The final representation `Phi(x)` is averaged over space (the vector the
classifier head pools, and the last depth of `separability`), standardised,
and projected on its first `d` principal components (fitted on the training
split); a linear SVM and a 1-nearest-neighbour classifier are trained on
the projections (section 5.2). Accuracy that saturates at small `d` shows
that the classes live in a low-dimensional subspace of the features.

With `d` equal to the feature count, the projection is a rotation, to which
both probes are invariant: the accuracies then equal those without PCA.
"""

import numpy as np
import tensorflow as tf
from absl import flags
from matplotlib import figure as figure_lib
from sklearn import decomposition

from irevnet_tf.analysis import command_line
from irevnet_tf.analysis import data as data_lib
from irevnet_tf.analysis import features as features_lib
from irevnet_tf.analysis import outputs
from irevnet_tf.analysis import probes

# `python -m irevnet_tf.analysis pca`: the flags beyond those of every
# analysis (`command_line`).
FLAGS = flags.FlagValues()
_PROBES = probes.define_flags(FLAGS)
_DIMENSIONS = command_line.define_integer_list(
    "dimensions",
    None,
    "Values of d, e.g. 1,8,64. Default: 1, 2, 4, ... and the largest possible.",
    FLAGS,
)


def default_dimensions(max_dimension: int) -> list:
    """1, 2, 4, ... up to and including `max_dimension`."""
    dimensions = [1]
    while dimensions[-1] * 2 < max_dimension:
        dimensions.append(dimensions[-1] * 2)
    if dimensions[-1] != max_dimension:
        dimensions.append(max_dimension)
    return dimensions


def pca_accuracy(
    model,
    train: tf.data.Dataset,
    test: tf.data.Dataset,
    dimensions=None,
    batch_size: int = 64,
    svm_c: float = 1.0,
    seed: int = 0,
    num_train: int | None = None,
    num_test: int | None = None,
) -> dict:
    """Linear SVM and 1-NN test accuracy on the first `d` components.

    Args:
        model: an `IRevNetClassifier`.
        train: unbatched `(image, label)` pairs (PCA and probes are fitted on
            them).
        test: unbatched `(image, label)` pairs the probes are scored on.
        dimensions: the values of `d`; None for 1, 2, 4, ... and the largest
            possible, `min(features, training examples)`.
        batch_size: images per forward pass.
        svm_c: the SVM's regularisation parameter `C`.
        seed: seeds LinearSVC.
        num_train, num_test: sizes of `train` and `test`, for progress bars.

    Returns:
        A dict: "dimensions", "svm_accuracy", "nearest_neighbour_accuracy",
        "svm_converged", "explained_variance" (cumulative fraction of the
        standardised features' variance, per `d`), "full" (accuracies
        without PCA), "feature_dimensions", "train_examples",
        "test_examples", "chance_accuracy".

    Raises:
        ValueError: a dimension below 1 or above the maximum.
    """
    depth = len(model.backbone.blocks)
    extract = dict(depths=[depth], batch_size=batch_size)
    train_features = features_lib.extract_features(
        model, train, num_examples=num_train, description="train", **extract
    )
    test_features = features_lib.extract_features(
        model, test, num_examples=num_test, description="test", **extract
    )
    train_x, test_x = probes.standardize(
        train_features.by_depth[depth], test_features.by_depth[depth]
    )
    train_y, test_y = train_features.labels, test_features.labels
    max_dimension = min(train_x.shape)
    if dimensions is None:
        dimensions = default_dimensions(max_dimension)
    dimensions = sorted(set(int(d) for d in dimensions))
    if not dimensions or dimensions[0] < 1 or dimensions[-1] > max_dimension:
        raise ValueError(
            "PCA dimensions must lie between 1 and min(features, training "
            f"examples) = {max_dimension}. Received: dimensions={dimensions}"
        )
    # All components at once: the first d of a full PCA are those of PCA(d).
    pca = decomposition.PCA(n_components=max_dimension, svd_solver="full").fit(
        train_x
    )
    train_z, test_z = pca.transform(train_x), pca.transform(test_x)
    explained = np.cumsum(pca.explained_variance_ratio_)
    results = [
        probes.probe_standardized(
            train_z[:, :d], train_y, test_z[:, :d], test_y, svm_c, seed
        )
        for d in dimensions
    ]
    full = probes.probe_standardized(
        train_x, train_y, test_x, test_y, svm_c, seed
    )
    classes = np.union1d(train_y, test_y)
    return {
        "dimensions": dimensions,
        "svm_accuracy": [r.svm for r in results],
        "nearest_neighbour_accuracy": [r.nearest_neighbour for r in results],
        "svm_converged": [r.svm_converged for r in results],
        "explained_variance": [float(explained[d - 1]) for d in dimensions],
        "full": {
            "svm_accuracy": full.svm,
            "nearest_neighbour_accuracy": full.nearest_neighbour,
            "svm_converged": full.svm_converged,
        },
        "feature_dimensions": int(train_x.shape[1]),
        "train_examples": int(train_y.size),
        "test_examples": int(test_y.size),
        "chance_accuracy": 1.0 / max(len(classes), 1),
    }


def plot_pca(result: dict, title: str) -> figure_lib.Figure:
    """Accuracy and explained variance against the number of components."""
    fig = figure_lib.Figure(figsize=(11, 4.5), layout="constrained")
    accuracy_ax, variance_ax = fig.subplots(1, 2)
    d = result["dimensions"]
    accuracy_ax.plot(d, result["svm_accuracy"], "o-", label="linear SVM")
    accuracy_ax.plot(
        d, result["nearest_neighbour_accuracy"], "s-", label="1-NN"
    )
    full = result["full"]
    n = result["feature_dimensions"]
    accuracy_ax.axhline(
        full["svm_accuracy"],
        color="C0",
        linestyle="--",
        label=f"linear SVM, all {n} features",
    )
    accuracy_ax.axhline(
        full["nearest_neighbour_accuracy"],
        color="C1",
        linestyle="--",
        label=f"1-NN, all {n} features",
    )
    accuracy_ax.axhline(
        result["chance_accuracy"], color="gray", linestyle=":", label="chance"
    )
    accuracy_ax.set_ylim(0, 1.02)
    accuracy_ax.set_ylabel("test accuracy")
    accuracy_ax.set_title("Probes on the first d principal components")
    accuracy_ax.legend(loc="lower right")
    variance_ax.plot(
        d, result["explained_variance"], "o-", color="C2", label="PCA"
    )
    variance_ax.set_ylim(0, 1.02)
    variance_ax.set_ylabel("explained variance (cumulative fraction)")
    variance_ax.set_title("Variance of the standardised features")
    variance_ax.legend(loc="lower right")
    for ax in (accuracy_ax, variance_ax):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("principal components d")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return fig


def run_pca(
    model,
    settings: data_lib.DataSettings,
    output_dir: str,
    model_name: str = "model",
    train_split: str = "train",
    test_split: str | None = None,
    max_train_examples: int | None = None,
    max_test_examples: int | None = None,
    dimensions=None,
    batch_size: int = 64,
    svm_c: float = 1.0,
    seed: int = 0,
) -> dict:
    """Probes PCA projections of the final features; writes pca.json/.png.

    Args:
        model: an `IRevNetClassifier`.
        settings: a `DataSettings`.
        output_dir: where the outputs go.
        model_name: how the outputs name the model.
        train_split: the split PCA and the probes are fitted on.
        test_split: the split they are scored on; None for the dataset's
            evaluation split.
        max_train_examples, max_test_examples: use only the first this many
            images of each split; None for all.
        dimensions, batch_size, svm_c, seed: as in `pca_accuracy`.

    Returns:
        The record written to pca.json.
    """
    train, num_train, test, num_test, info, test_split = (
        probes.load_train_and_test(
            model,
            settings,
            train_split,
            test_split,
            max_train_examples,
            max_test_examples,
        )
    )
    result = pca_accuracy(
        model,
        train,
        test,
        dimensions=dimensions,
        batch_size=batch_size,
        svm_c=svm_c,
        seed=seed,
        num_train=num_train,
        num_test=num_test,
    )
    record = {
        "analysis": "pca",
        "model": outputs.model_record(model, model_name),
        "data": outputs.data_record(
            settings, info, test_split, result["test_examples"]
        ),
        "train_split": train_split,
        "svm_c": svm_c,
        **result,
        "notes": {
            "features": (
                "the final representation Phi(x) averaged over space (the "
                "last depth of `separability`), standardised with the "
                "training statistics; inference mode"
            ),
            "pca": (
                "sklearn PCA fitted on the standardised training features; "
                "the probes see the first d components (no whitening)"
            ),
            "full": "the same probes without PCA",
        },
    }
    fig = plot_pca(
        result,
        f"PCA of the final features: {model_name}, {settings.dataset} "
        f"{test_split}",
    )
    outputs.write_outputs(output_dir, "pca", record, fig)
    return record


def main(inputs: command_line.Inputs) -> str:
    """Runs the analysis from its flags; returns a one-line summary."""
    record = run_pca(
        inputs.model,
        inputs.required_settings("pca"),
        inputs.output_dir,
        model_name=inputs.model_name,
        test_split=inputs.split,
        dimensions=_DIMENSIONS.value,
        batch_size=inputs.batch_size,
        seed=inputs.seed,
        **_PROBES.values(),
    )
    return "Test accuracy (linear SVM / 1-NN) on d components: " + ", ".join(
        f"d={d} {svm:.3f}/{nearest:.3f}"
        for d, svm, nearest in zip(
            record["dimensions"],
            record["svm_accuracy"],
            record["nearest_neighbour_accuracy"],
        )
    )
