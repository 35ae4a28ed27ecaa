"""Forward and inverse SavedModels of an i-RevNet classifier for TF Serving.

TensorFlow Serving loads SavedModels and knows nothing of this project's
Python code, so each model is exported as a self-contained inference graph
(`training=False`: BatchNorm moving statistics, no dropout, no gradients),
in the server's versioned layout:

    OUTPUT_DIR/irevnet_forward/VERSION/   images -> logits, probabilities,
                                                    features
    OUTPUT_DIR/irevnet_inverse/VERSION/   features -> images
    OUTPUT_DIR/models.config              serves both from one model server

Both take and return float32 tensors under the `serving_default` signature.
Inputs are checked at serving time, inside the graph: TF Serving feeds
tensors of any shape to a signature, so a check on the signature's static
shape alone would never run there.
"""

import dataclasses
import os
import re

import keras
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from irevnet_tf import IRevNetClassifier
from irevnet_tf import files
from irevnet_tf.serving import signatures
from irevnet_tf.serving.signatures import FORWARD_NAME
from irevnet_tf.serving.signatures import INVERSE_NAME

# The model server's configuration of both models, beside them.
MODELS_CONFIG_FILENAME = "models.config"

_MODEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")


@dataclasses.dataclass(frozen=True)
class ServingExport:
    """What `export_for_serving` wrote.

    Attributes:
        forward_dir: the forward SavedModel, `OUTPUT_DIR/forward_name/VERSION`.
        inverse_dir: the inverse SavedModel, `OUTPUT_DIR/inverse_name/VERSION`.
        models_config: path of the model server's `models.config`.
        version: the version both SavedModels were written as.
    """

    forward_dir: str
    inverse_dir: str
    models_config: str
    version: int


def image_spec(model: IRevNetClassifier) -> tf.TensorSpec:
    """The forward signature's input: float32 `[batch, H, W, C]`.

    Height and width are those of `backbone.image_shape`, None if unknown.
    """
    return tf.TensorSpec(
        (None,) + tuple(model.backbone.image_shape),
        tf.float32,
        name=signatures.FORWARD_INPUT,
    )


def feature_spec(model: IRevNetClassifier) -> tf.TensorSpec:
    """The inverse signature's input: float32 `[batch, h, w, channels]`."""
    return tf.TensorSpec(
        (None,) + tuple(model.backbone.feature_shape),
        tf.float32,
        name=signatures.INVERSE_INPUT,
    )


def forward_function(model: IRevNetClassifier, model_name: str = FORWARD_NAME):
    """The forward serving function: images to logits, probabilities, features.

    Returns:
        A function of a float32 images tensor returning a dict of float32
        tensors `logits` `[batch, num_classes]`, `probabilities` (softmax of
        the logits) and `features` `[batch, h, w, channels]`.
    """
    spec = image_spec(model)
    factor = model.backbone.downsampling_factor

    def forward(images):
        images = _checked_shape(images, spec, factor, model_name)
        features = model.features(
            tf.cast(images, model.compute_dtype), training=False
        )
        logits = tf.cast(
            model.logits_from_features(features, training=False), tf.float32
        )
        return {
            signatures.LOGITS: logits,
            signatures.PROBABILITIES: tf.nn.softmax(logits),
            signatures.FEATURES: tf.cast(features, tf.float32),
        }

    return forward


def inverse_function(model: IRevNetClassifier, model_name: str = INVERSE_NAME):
    """The inverse serving function: features back to images.

    Returns:
        A function of a float32 features tensor returning `{"images": ...}`.
        Features with NaN or Inf values are an error, not garbage images.
    """
    spec = feature_spec(model)

    def inverse(features):
        features = _checked_shape(features, spec, 1, model_name)
        features = tf.debugging.check_numerics(
            features,
            f"{model_name}: `features` must be finite (the forward model's "
            "`features` output), but hold NaN or Inf",
        )
        images = model.inverse(
            tf.cast(features, model.compute_dtype), training=False
        )
        return {signatures.IMAGES: tf.cast(images, tf.float32)}

    return inverse


def export_forward(
    model: IRevNetClassifier, export_dir: str, model_name: str = FORWARD_NAME
) -> None:
    """Writes the forward SavedModel (see `forward_function`) to export_dir."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        signatures.SIGNATURE_NAME,
        forward_function(model, model_name),
        input_signature=[image_spec(model)],
    )
    archive.write_out(export_dir, verbose=False)


def export_inverse(
    model: IRevNetClassifier, export_dir: str, model_name: str = INVERSE_NAME
) -> None:
    """Writes the inverse SavedModel (see `inverse_function`) to export_dir.

    It holds the backbone's weights only: the head is not inverted.
    """
    archive = keras.export.ExportArchive()
    archive.track(model.backbone)
    archive.add_endpoint(
        signatures.SIGNATURE_NAME,
        inverse_function(model, model_name),
        input_signature=[feature_spec(model)],
    )
    archive.write_out(export_dir, verbose=False)


def models_config(
    base_paths: dict[str, str],
) -> model_server_config_pb2.ModelServerConfig:
    """A `ModelServerConfig` serving each named model from its base path.

    Args:
        base_paths: model name to absolute base path (the directory holding
            the numbered versions).
    """
    config = model_server_config_pb2.ModelServerConfig()
    for name, base_path in base_paths.items():
        if not os.path.isabs(base_path):
            raise ValueError(
                "The model server needs absolute base paths. Received: "
                f"base_path={base_path!r} for model {name!r}"
            )
        config.model_config_list.config.add(
            name=name, base_path=base_path, model_platform="tensorflow"
        )
    return config


def write_models_config(path: str, base_paths: dict[str, str]) -> None:
    """Writes `models_config(base_paths)` as a text proto to `path`."""
    # Replaced in one step: a server that polls the file never reads half.
    files.write_text(
        path, text_format.MessageToString(models_config(base_paths))
    )


def next_version(output_dir: str, model_names: list[str]) -> int:
    """One more than the highest version of any of the models, else 1."""
    versions = [0]
    for name in model_names:
        base_path = os.path.join(output_dir, name)
        if os.path.isdir(base_path):
            versions += [int(v) for v in os.listdir(base_path) if v.isdigit()]
    return max(versions) + 1


def export_for_serving(
    model: IRevNetClassifier,
    output_dir: str,
    version: int | None = None,
    forward_name: str = FORWARD_NAME,
    inverse_name: str = INVERSE_NAME,
    serving_root: str | None = None,
) -> ServingExport:
    """Exports the forward and inverse SavedModels and `models.config`.

    Args:
        model: the classifier to export.
        output_dir: where the model directories and `models.config` go.
        version: the version to write both models as; by default one more
            than the highest version already in `output_dir` (1 if none).
            TF Serving loads a new version when it appears.
        forward_name, inverse_name: the model names (and directory names).
        serving_root: the absolute path at which the model server sees
            `output_dir`, for the base paths in `models.config` (e.g.
            `/models` inside a container); by default `output_dir`'s absolute
            path.

    Returns:
        A `ServingExport` with the paths written.

    Raises:
        ValueError: for invalid names or versions, or a version that exists.
    """
    names = [forward_name, inverse_name]
    for name in names:
        if not _MODEL_NAME_PATTERN.fullmatch(name):
            raise ValueError(
                "Model names must be non-empty and hold only letters, digits, "
                f"'_', '.' and '-'. Received: {name!r}"
            )
    if forward_name == inverse_name:
        raise ValueError(
            "The forward and inverse models need different names. Received: "
            f"forward_name={forward_name!r}, inverse_name={inverse_name!r}"
        )
    if version is None:
        version = next_version(output_dir, names)
    elif (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        raise ValueError(
            "`version` must be a positive integer. "
            f"Received: version={version!r}"
        )
    if serving_root is not None and not os.path.isabs(serving_root):
        raise ValueError(
            "`serving_root` must be an absolute path. Received: "
            f"serving_root={serving_root!r}"
        )
    export_dirs = {
        name: os.path.join(output_dir, name, str(version)) for name in names
    }
    for export_dir in export_dirs.values():
        if os.path.exists(export_dir):
            raise ValueError(
                "Version already exists; a serving model version is never "
                "overwritten. Pass another version or leave it out for the "
                f"next one. Received: version={version}, existing {export_dir}"
            )
    for (name, export_dir), export in zip(
        export_dirs.items(), (export_forward, export_inverse)
    ):
        # Written next to the final directory and renamed into place: the
        # model server only loads numeric directories, so it never sees a
        # half-written version.
        os.makedirs(os.path.dirname(export_dir), exist_ok=True)
        with files.atomic_path(export_dir, directory=True) as staging:
            export(model, staging, name)
    root = serving_root or os.path.abspath(output_dir)
    config_path = os.path.join(output_dir, MODELS_CONFIG_FILENAME)
    write_models_config(
        config_path, {name: os.path.join(root, name) for name in names}
    )
    return ServingExport(
        forward_dir=export_dirs[forward_name],
        inverse_dir=export_dirs[inverse_name],
        models_config=config_path,
        version=version,
    )


def _checked_shape(tensor, spec: tf.TensorSpec, factor: int, model_name: str):
    """`tensor`, after a serving-time check that it has `spec`'s shape.

    Unknown height and width must be positive multiples of `factor`.
    """
    expected = spec.shape.as_list()
    rank = len(expected)
    # Dimensions beyond the tensor's rank read as -1, so one comparison
    # catches a wrong rank too. (`tf.rank` would not: TensorFlow folds it to
    # the signature's static rank.)
    shape = tf.shape(tensor)
    padded = tf.concat([shape, tf.fill([rank + 1], -1)], axis=0)
    conditions = [tf.equal(padded[rank], -1), padded[0] >= 0]
    for axis in range(1, rank):
        if expected[axis] is not None:
            conditions.append(tf.equal(padded[axis], expected[axis]))
        else:
            conditions.append(padded[axis] > 0)
            conditions.append(tf.equal(padded[axis] % factor, 0))
    check = tf.debugging.Assert(
        tf.reduce_all(tf.stack(conditions)),
        [
            f"{model_name}: `{spec.name}` must be a float32 tensor of shape "
            f"{_shape_text(expected, factor)}. Received shape:",
            shape,
        ],
        summarize=rank + 2,
    )
    with tf.control_dependencies([check]):
        return tf.identity(tensor)


def _shape_text(expected: list, factor: int) -> str:
    """`[batch, 16, 16, 3]`, or `[batch, height, width, 3]` with a rule."""
    names = ["batch", "height", "width"]
    dims = [
        names[axis] if size is None else str(size)
        for axis, size in enumerate(expected)
    ]
    text = f"[{', '.join(dims)}]"
    if None in expected[1:3]:
        text += (
            f" with height and width positive multiples of {factor}"
            if factor > 1
            else " with positive height and width"
        )
    return text
