"""Forward and inverse SavedModels of an i-RevNet classifier for TF Serving.

TensorFlow Serving loads SavedModels and knows nothing of this project's
Python code, so each model is exported as a self-contained inference graph
(`training=False`: BatchNorm moving statistics, no dropout, no gradients),
in the server's versioned layout:

    OUTPUT_DIR/irevnet_forward/VERSION/   images -> logits, probabilities,
                                                    features
    OUTPUT_DIR/irevnet_inverse/VERSION/   features -> images
    OUTPUT_DIR/models.config              serves both from one model server

Both take and return float32 tensors under the `serving_default` signature:
pixel images in [0, 1] in, pixel images out (a model trained on normalised
images standardises them itself). The forward model also has the signature
`image_bytes`: encoded images (PNG, JPEG, GIF, BMP) in, prepared as the
training recipe evaluated. All check their inputs at serving time (see
`serving_functions`).

Versions: see `export.versions`. Exporting the model that the highest
version already holds writes nothing; a version that a killed export left
half written is completed.
"""

import contextlib
import dataclasses
import functools
import os
import re

import keras
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from export import versions
from export.serving_functions import feature_spec
from export.serving_functions import forward_function
from export.serving_functions import image_bytes_function
from export.serving_functions import image_bytes_spec
from export.serving_functions import image_spec
from export.serving_functions import inverse_function
from irevnet_tf import IRevNetClassifier
from irevnet_tf import files
from irevnet_tf.datasets import preprocessing as preprocessing_lib
from irevnet_tf.serving import signatures
from irevnet_tf.serving.signatures import FORWARD_NAME
from irevnet_tf.serving.signatures import INVERSE_NAME

# The model server's configuration of both models, beside them.
MODELS_CONFIG_FILENAME = "models.config"

_MODEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")


@dataclasses.dataclass(frozen=True)
class ServingExport:
    """Where `export_for_serving` put the model.

    Attributes:
        forward_dir: the forward SavedModel, `OUTPUT_DIR/forward_name/VERSION`.
        inverse_dir: the inverse SavedModel, `OUTPUT_DIR/inverse_name/VERSION`.
        models_config: path of the model server's `models.config`.
        version: the version both SavedModels have.
        written: the model names written now: both, one (completing a pair
            that a killed export left), or none (the pair was there).
    """

    forward_dir: str
    inverse_dir: str
    models_config: str
    version: int
    written: tuple[str, ...] = ()


def export_forward(
    model: IRevNetClassifier,
    export_dir: str,
    model_name: str = FORWARD_NAME,
    preprocessing: str = "resize",
) -> None:
    """Writes the forward SavedModel to export_dir.

    Signatures: `serving_default` (`forward_function`) and, for a model of
    one square size, `image_bytes` (`image_bytes_function` with the recipe's
    `preprocessing`).
    """
    archive = keras.export.ExportArchive()
    archive.track(model)
    # The first endpoint added is the SavedModel's default signature.
    archive.add_endpoint(
        signatures.SIGNATURE_NAME,
        forward_function(model, model_name),
        input_signature=[image_spec(model)],
    )
    from_bytes = image_bytes_function(model, preprocessing, model_name)
    if from_bytes is not None:
        archive.add_endpoint(
            signatures.IMAGE_BYTES_SIGNATURE_NAME,
            from_bytes,
            input_signature=[image_bytes_spec()],
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


def export_for_serving(
    model: IRevNetClassifier,
    output_dir: str,
    version: int | None = None,
    forward_name: str = FORWARD_NAME,
    inverse_name: str = INVERSE_NAME,
    serving_root: str | None = None,
    preprocessing: str = "resize",
) -> ServingExport:
    """Exports the forward and inverse SavedModels and `models.config`.

    Args:
        model: the classifier to export.
        output_dir: where the model directories and `models.config` go.
        version: the version to write both models as. By default the
            highest version in `output_dir` if it holds (half of) this
            model's pair, else one more (1 if none). TF Serving loads a new
            version when it appears.
        forward_name, inverse_name: the model names (and directory names).
        serving_root: the absolute path at which the model server sees
            `output_dir`, for the base paths in `models.config` (e.g.
            `/models` inside a container); by default `output_dir`'s absolute
            path.
        preprocessing: the training recipe's preprocessing style
            ("resize", "cifar", "imagenet"): how the `image_bytes` signature
            brings images to the model's size (its evaluation transform).

    Returns:
        A `ServingExport` with the paths of the version.

    Raises:
        ValueError: for invalid names or versions, a version that holds
            another model, an output directory that is a file or cannot be
            written to, or another export writing to it; nothing is written.
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
    if version is not None and (
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
    files.check_writable_directory(output_dir, "output_dir")
    for name in names:
        if os.path.exists(os.path.join(output_dir, name)):
            files.check_writable_directory(
                os.path.join(output_dir, name), "output_dir"
            )
    preprocessing_lib.validate_style(preprocessing)
    fingerprint = versions.model_fingerprint(model, preprocessing)
    with versions.exclusive(output_dir):
        # What killed exports left; the lock keeps a running one's.
        for directory in [output_dir] + [
            os.path.join(output_dir, name) for name in names
        ]:
            files.remove_stale_staging(directory)
        plan = versions.plan(output_dir, names, fingerprint, version)
        export_dirs = {
            name: os.path.join(output_dir, name, str(plan.version))
            for name in names
        }
        _write_pair(
            model,
            {name: export_dirs[name] for name in plan.missing},
            {
                forward_name: functools.partial(
                    export_forward, preprocessing=preprocessing
                ),
                inverse_name: export_inverse,
            },
            fingerprint,
        )
        root = serving_root or os.path.abspath(output_dir)
        config_path = os.path.join(output_dir, MODELS_CONFIG_FILENAME)
        base_paths = {name: os.path.join(root, name) for name in names}
        if _read(config_path) != text_format.MessageToString(
            models_config(base_paths)
        ):
            write_models_config(config_path, base_paths)
    return ServingExport(
        forward_dir=export_dirs[forward_name],
        inverse_dir=export_dirs[inverse_name],
        models_config=config_path,
        version=plan.version,
        written=plan.missing,
    )


def _write_pair(model, export_dirs, exporters, fingerprint) -> None:
    """Writes the SavedModels of `export_dirs` (name -> version directory).

    All are staged first and renamed into place at the end, one right after
    the other: the model server only loads numeric directories, so it never
    sees a half-written SavedModel, and a failure or a kill while writing
    publishes none of them.
    """
    with contextlib.ExitStack() as staging:
        staged = {}
        # The stack renames in reverse: the forward (entered last) first.
        for name in reversed(list(export_dirs)):
            os.makedirs(os.path.dirname(export_dirs[name]), exist_ok=True)
            staged[name] = staging.enter_context(
                files.atomic_path(export_dirs[name], directory=True)
            )
        for name in export_dirs:
            exporters[name](model, staged[name], name)
            versions.write_record(staged[name], fingerprint)


def _read(path: str) -> str | None:
    try:
        with open(path) as file:
            return file.read()
    except OSError:
        return None
