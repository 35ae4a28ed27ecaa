r"""Exports a trained i-RevNet classifier for TensorFlow Serving.

    python -m export.export --model MODEL_DIR_OR_FILE.keras \
        --output_dir /srv/irevnet [--version N]

writes the forward and inverse SavedModels and the model server's
`models.config` (see `export_lib`). Serve them with

    tensorflow_model_server --model_config_file=/srv/irevnet/models.config
"""

import sys

from absl import app
from absl import flags
from absl import logging

from export import export_lib

_MODEL = flags.DEFINE_string(
    "model",
    None,
    "A .keras file holding an IRevNetClassifier, or a training --model_dir "
    f"(its {export_lib.MODEL_FILENAME} is exported).",
)
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir",
    None,
    "Where the model directories and models.config go.",
)
_VERSION = flags.DEFINE_integer(
    "version",
    None,
    "Version to export both models as. Default: one more than the highest "
    "version already in --output_dir, 1 if none.",
)
_FORWARD_NAME = flags.DEFINE_string(
    "forward_name",
    export_lib.FORWARD_NAME,
    "Model name (and directory) of the forward model.",
)
_INVERSE_NAME = flags.DEFINE_string(
    "inverse_name",
    export_lib.INVERSE_NAME,
    "Model name (and directory) of the inverse model.",
)
_SERVING_ROOT = flags.DEFINE_string(
    "serving_root",
    None,
    "Absolute path at which the model server sees --output_dir, for the base "
    "paths in models.config (e.g. /models in a container). Default: the "
    "absolute path of --output_dir.",
)


def main(argv):
    if not flags.FLAGS["verbosity"].present:
        # TensorFlow's INFO lines on tracing and saving are noise here.
        logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        _fail(f"Unexpected arguments: {' '.join(argv[1:])}")
    for flag in (_MODEL, _OUTPUT_DIR):
        if not flag.value:
            _fail(f"--{flag.name} is required.")
    try:
        model = export_lib.load_classifier(_MODEL.value)
        result = export_lib.export_for_serving(
            model,
            _OUTPUT_DIR.value,
            version=_VERSION.value,
            forward_name=_FORWARD_NAME.value,
            inverse_name=_INVERSE_NAME.value,
            serving_root=_SERVING_ROOT.value,
        )
    except ValueError as error:
        _fail(str(error))
    print(f"Forward SavedModel: {result.forward_dir}")
    print(f"Inverse SavedModel: {result.inverse_dir}")
    print(f"Model server config: {result.models_config}")


def _fail(message: str) -> None:
    # One line, no traceback, exit status 2 (the project's CLI convention).
    message = " ".join(message.split())
    print(f"export: error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    app.run(main)
