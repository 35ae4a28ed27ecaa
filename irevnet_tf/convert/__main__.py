r"""Converts a checkpoint of the authors' PyTorch i-RevNet into a .keras file.

    python -m irevnet_tf.convert --checkpoint model_best.pth.tar \
        --config constructor.json --output irevnet301.keras

(`irevnet-convert` after `pip install .`). `--checkpoint` is a `.pth.tar` or
bare state_dict written by `torch.save` (needs PyTorch), or a `.npz` of
arrays; `--config` a JSON object of the authors' constructor arguments. The
written file loads with `keras.saving.load_model` after `import irevnet_tf`.
"""

import os

import numpy as np
from absl import flags

from irevnet_tf import cli
from irevnet_tf import files
from irevnet_tf.convert import checkpoint

PROGRAM = "convert"

_CHECKPOINT = flags.DEFINE_string(
    "checkpoint",
    None,
    "The authors' checkpoint: a .pth.tar (or bare state_dict) written by "
    "torch.save, or a .npz of arrays.",
)
_CONFIG = flags.DEFINE_string(
    "config",
    None,
    "JSON file of the authors' iRevNet constructor arguments (or an "
    "object holding them under 'constructor').",
)
_OUTPUT = flags.DEFINE_string(
    "output", None, "Where to write the Keras model (a .keras file)."
)
_ALLOW_PICKLE = flags.DEFINE_bool(
    "allow_pickle",
    False,
    "Read PyTorch files with full unpickling (torch.load with "
    "weights_only=False). Only for files from a trusted source.",
)
flags.mark_flags_as_required(["checkpoint", "config", "output"])


def main() -> None:
    output = _OUTPUT.value
    if not output.endswith(".keras") or os.path.isdir(output):
        raise cli.UsageError(
            f"--output must name a .keras file. Received: --output={output}"
        )
    try:
        files.check_writable_directory(
            os.path.dirname(os.path.abspath(output)),
            "the directory of --output",
        )
        model = checkpoint.convert_checkpoint(
            _CHECKPOINT.value, _CONFIG.value, allow_pickle=_ALLOW_PICKLE.value
        )
        checkpoint.save_model(model, output)
    except (ValueError, OSError, ImportError) as error:
        raise cli.UsageError(str(error)) from None
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    print(
        f"Converted {_CHECKPOINT.value} into an IRevNetClassifier with "
        f"{model.count_params():,} parameters ({trainable:,} trainable). "
        f"Wrote {_OUTPUT.value}"
    )


def run() -> None:
    """The `irevnet-convert` console script."""
    cli.run(main, PROGRAM)


if __name__ == "__main__":
    run()
