"""Progressive separation: probe accuracy against depth (paper, Figure 6).

At every block depth `j`, each image's representation `Phi_j(x)` is averaged
over space, the averages are standardised, and a linear SVM and a
1-nearest-neighbour classifier are fitted on the training split and scored
on the test split (section 5.1). Accuracy that grows with depth shows the
classes being separated progressively, although no information is lost.
"""

import numpy as np
import tensorflow as tf
from absl import flags
from matplotlib import figure as figure_lib

from irevnet_tf.analysis import command_line
from irevnet_tf.analysis import data as data_lib
from irevnet_tf.analysis import features as features_lib
from irevnet_tf.analysis import outputs
from irevnet_tf.analysis import probes

# Above this many pixel values per image the pixel baseline is skipped by
# default (1-NN and an SVM on raw ImageNet pixels would dominate the run).
PIXEL_BASELINE_MAX_DIM = 4096

# `python -m irevnet_tf.analysis separability`: the flags beyond those of
# every analysis (`command_line`).
FLAGS = flags.FlagValues()
_PROBES = probes.define_flags(FLAGS)
_DEPTHS = command_line.define_integer_list(
    "depths",
    None,
    "Block depths (1-based), e.g. 1,2,6. Default: all.",
    FLAGS,
)
_PIXEL_BASELINE = flags.DEFINE_boolean(
    "pixel_baseline",
    None,
    "Also probe the raw pixels. Default: if an image has at most "
    f"{PIXEL_BASELINE_MAX_DIM} values.",
    flag_values=FLAGS,
)


def accuracy_by_depth(
    model,
    train: tf.data.Dataset,
    test: tf.data.Dataset,
    depths=None,
    batch_size: int = 64,
    svm_c: float = 1.0,
    pixel_baseline: bool | None = None,
    seed: int = 0,
    num_train: int | None = None,
    num_test: int | None = None,
) -> dict:
    """Linear SVM and 1-NN test accuracy at every block depth.

    Args:
        model: an `IRevNetClassifier`.
        train: unbatched `(image, label)` pairs the probes are fitted on.
        test: unbatched `(image, label)` pairs they are scored on.
        depths: 1-based block indices, None for all.
        batch_size: images per forward pass.
        svm_c: the SVM's regularisation parameter `C`.
        pixel_baseline: also probe the raw pixels (flattened, standardised);
            None to do it when an image has at most `PIXEL_BASELINE_MAX_DIM`
            values.
        seed: seeds LinearSVC.
        num_train, num_test: sizes of `train` and `test`, for progress bars.

    Returns:
        A dict: "depths", "channels" (features per depth), "svm_accuracy",
        "nearest_neighbour_accuracy", "svm_converged" (lists by depth),
        "pixel_baseline" (accuracies on raw pixels, or None),
        "train_examples", "test_examples", "chance_accuracy".
    """
    depths = features_lib.check_depths(depths, len(model.backbone.blocks))
    if pixel_baseline is None:
        size = np.prod(train.element_spec[0].shape)
        pixel_baseline = size <= PIXEL_BASELINE_MAX_DIM
    extract = dict(depths=depths, batch_size=batch_size, pixels=pixel_baseline)
    train_features = features_lib.extract_features(
        model, train, num_examples=num_train, description="train", **extract
    )
    test_features = features_lib.extract_features(
        model, test, num_examples=num_test, description="test", **extract
    )
    results = [
        probes.probe(
            train_features.by_depth[depth],
            train_features.labels,
            test_features.by_depth[depth],
            test_features.labels,
            svm_c=svm_c,
            seed=seed,
        )
        for depth in depths
    ]
    baseline = None
    if pixel_baseline:
        pixels = probes.probe(
            train_features.pixels,
            train_features.labels,
            test_features.pixels,
            test_features.labels,
            svm_c=svm_c,
            seed=seed,
        )
        baseline = {
            "svm_accuracy": pixels.svm,
            "nearest_neighbour_accuracy": pixels.nearest_neighbour,
            "svm_converged": pixels.svm_converged,
            "dimensions": int(train_features.pixels.shape[1]),
        }
    classes = np.union1d(train_features.labels, test_features.labels)
    return {
        "depths": depths,
        "channels": [int(train_features.by_depth[d].shape[1]) for d in depths],
        "svm_accuracy": [r.svm for r in results],
        "nearest_neighbour_accuracy": [r.nearest_neighbour for r in results],
        "svm_converged": [r.svm_converged for r in results],
        "pixel_baseline": baseline,
        "train_examples": int(train_features.labels.size),
        "test_examples": int(test_features.labels.size),
        "chance_accuracy": 1.0 / max(len(classes), 1),
    }


def plot_separability(result: dict, title: str) -> figure_lib.Figure:
    """Accuracy against depth, with the pixel baseline and chance level."""
    fig = figure_lib.Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    depths = result["depths"]
    ax.plot(depths, result["svm_accuracy"], "o-", label="linear SVM")
    ax.plot(depths, result["nearest_neighbour_accuracy"], "s-", label="1-NN")
    baseline = result["pixel_baseline"]
    if baseline is not None:
        ax.axhline(
            baseline["svm_accuracy"],
            color="C0",
            linestyle="--",
            label="linear SVM on pixels",
        )
        ax.axhline(
            baseline["nearest_neighbour_accuracy"],
            color="C1",
            linestyle="--",
            label="1-NN on pixels",
        )
    ax.axhline(
        result["chance_accuracy"], color="gray", linestyle=":", label="chance"
    )
    ax.set_xlabel("depth (blocks)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    if len(depths) <= 20:
        ax.set_xticks(depths)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title)
    return fig


def run_separability(
    model,
    settings: data_lib.DataSettings,
    output_dir: str,
    model_name: str = "model",
    train_split: str = "train",
    test_split: str | None = None,
    max_train_examples: int | None = None,
    max_test_examples: int | None = None,
    depths=None,
    batch_size: int = 64,
    svm_c: float = 1.0,
    pixel_baseline: bool | None = None,
    seed: int = 0,
) -> dict:
    """Probes every depth; writes separability.json/.png.

    Args:
        model: an `IRevNetClassifier`.
        settings: a `DataSettings`.
        output_dir: where the outputs go.
        model_name: how the outputs name the model.
        train_split: the split the probes are fitted on.
        test_split: the split they are scored on; None for the dataset's
            evaluation split.
        max_train_examples, max_test_examples: use only the first this many
            images of each split; None for all.
        depths, batch_size, svm_c, pixel_baseline, seed: as in
            `accuracy_by_depth`.

    Returns:
        The record written to separability.json.
    """
    depths = features_lib.check_depths(depths, len(model.backbone.blocks))
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
    result = accuracy_by_depth(
        model,
        train,
        test,
        depths=depths,
        batch_size=batch_size,
        svm_c=svm_c,
        pixel_baseline=pixel_baseline,
        seed=seed,
        num_train=num_train,
        num_test=num_test,
    )
    record = {
        "analysis": "separability",
        "model": outputs.model_record(model, model_name),
        "data": outputs.data_record(
            settings, info, test_split, result["test_examples"]
        ),
        "train_split": train_split,
        "svm_c": svm_c,
        **result,
        "notes": {
            "features": (
                "output of block `depth` (1-based), both halves merged, "
                "averaged over space, standardised with the training "
                "statistics; inference mode"
            ),
            "probes": (
                "sklearn LinearSVC(C=svm_c) and KNeighborsClassifier(1) "
                "fitted on train_split, accuracy on the test split"
            ),
            "pixel_baseline": (
                "the same probes on the flattened, standardised input images"
            ),
        },
    }
    fig = plot_separability(
        result,
        f"Progressive separation: {model_name}, {settings.dataset} "
        f"{test_split}",
    )
    outputs.write_outputs(output_dir, "separability", record, fig)
    return record


def main(inputs: command_line.Inputs) -> str:
    """Runs the analysis from its flags; returns a one-line summary."""
    record = run_separability(
        inputs.model,
        inputs.required_settings("separability"),
        inputs.output_dir,
        model_name=inputs.model_name,
        test_split=inputs.split,
        depths=_DEPTHS.value,
        batch_size=inputs.batch_size,
        pixel_baseline=_PIXEL_BASELINE.value,
        seed=inputs.seed,
        **_PROBES.values(),
    )
    return (
        f"Test accuracy from depth {record['depths'][0]} to "
        f"{record['depths'][-1]}: linear SVM "
        f"{record['svm_accuracy'][0]:.3f} -> "
        f"{record['svm_accuracy'][-1]:.3f}, 1-NN "
        f"{record['nearest_neighbour_accuracy'][0]:.3f} -> "
        f"{record['nearest_neighbour_accuracy'][-1]:.3f}"
    )
