r"""Exports a trained i-RevNet classifier for TensorFlow Serving.

    python -m export.export --model MODEL_DIR_OR_FILE.keras \
        --output_dir /srv/irevnet [--version N]

(`irevnet-export` after `pip install .`) writes the forward and inverse
SavedModels and the model server's `models.config` (see `export_lib`).
The forward model takes pixel images in [0, 1] (`serving_default`) or
encoded images (`image_bytes`, prepared as the training recipe evaluated:
`--preprocessing`, by default the one a training --model_dir records); the
inverse returns pixel images.
Serve them with

    tensorflow_model_server --model_config_file=/srv/irevnet/models.config

Exporting the model that the highest version holds already writes nothing;
after a kill, the same command completes the version it was writing.
"""

from absl import flags
from absl import logging

from export import export_lib
from irevnet_tf import cli
from irevnet_tf import files
from irevnet_tf import run_directory
from irevnet_tf.models import loading
from irevnet_tf.run_directory import MODEL_FILENAME
from irevnet_tf.serving import signatures

PROGRAM = "export"

_MODEL = flags.DEFINE_string(
    "model",
    None,
    "A .keras file holding an IRevNetClassifier, or a training --model_dir "
    f"(its {MODEL_FILENAME} is exported).",
)
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir",
    None,
    "Where the model directories and models.config go.",
)
_VERSION = flags.DEFINE_integer(
    "version",
    None,
    "Version to export both models as. Default: the highest version in "
    "--output_dir if it holds (half of) this model's pair, else one more "
    "(1 if none).",
)
_FORWARD_NAME = flags.DEFINE_string(
    "forward_name",
    signatures.FORWARD_NAME,
    "Model name (and directory) of the forward model.",
)
_INVERSE_NAME = flags.DEFINE_string(
    "inverse_name",
    signatures.INVERSE_NAME,
    "Model name (and directory) of the inverse model.",
)
_PREPROCESSING = flags.DEFINE_enum(
    "preprocessing",
    None,
    ["resize", "cifar", "imagenet"],
    "How the image_bytes signature brings decoded images to the model's "
    "size: the evaluation transform of this recipe style (resize; resize "
    "and centre crop for imagenet). Default: the training run's, recorded "
    "in a --model_dir's config.json, else resize.",
)
_SERVING_ROOT = flags.DEFINE_string(
    "serving_root",
    None,
    "Absolute path at which the model server sees --output_dir, for the base "
    "paths in models.config (e.g. /models in a container). Default: the "
    "absolute path of --output_dir.",
)


def main() -> None:
    if not flags.FLAGS["verbosity"].present:
        # TensorFlow's INFO lines on tracing and saving are noise here.
        logging.set_verbosity(logging.WARNING)
    for flag in (_MODEL, _OUTPUT_DIR):
        if not flag.value:
            raise cli.UsageError(f"--{flag.name} is required.")
    try:
        # Before the (slow) model: a path that cannot be written to ends
        # the program before any work.
        files.check_writable_directory(_OUTPUT_DIR.value, "--output_dir")
        model = loading.load_classifier(_MODEL.value)
        result = export_lib.export_for_serving(
            model,
            _OUTPUT_DIR.value,
            version=_VERSION.value,
            forward_name=_FORWARD_NAME.value,
            inverse_name=_INVERSE_NAME.value,
            serving_root=_SERVING_ROOT.value,
            preprocessing=_preprocessing(),
        )
    except ValueError as error:
        raise cli.UsageError(str(error)) from None
    if not result.written:
        print(
            f"Version {result.version} holds this model already; nothing to "
            "export."
        )
    print(f"Forward SavedModel: {result.forward_dir}")
    print(f"Inverse SavedModel: {result.inverse_dir}")
    print(f"Model server config: {result.models_config}")


def _preprocessing() -> str:
    """`--preprocessing`, else the training run's, else "resize"."""
    if _PREPROCESSING.value is not None:
        return _PREPROCESSING.value
    run_dir = run_directory.RunDirectory.of_model(_MODEL.value)
    record = run_directory.read_run_record(run_dir.path) if run_dir else None
    if record is None:
        return "resize"
    return record.recipe.get("preprocessing", "resize")


def run() -> None:
    """The `irevnet-export` console script."""
    cli.run(main, PROGRAM)


if __name__ == "__main__":
    run()
