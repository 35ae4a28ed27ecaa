r"""Converts a checkpoint of the authors' PyTorch i-RevNet into a .keras file.

    python -m irevnet_tf.convert --checkpoint model_best.pth.tar \
        --config constructor.json --output irevnet301.keras

(`irevnet-convert` after `pip install .`). `--checkpoint` is a `.pth.tar` or
bare state_dict written by `torch.save` (needs PyTorch), or a `.npz` of
arrays; `--config` a JSON object of the authors' constructor arguments. The
written file loads with `keras.saving.load_model` after `import irevnet_tf`.

`--normalization=cifar10` (or `cifar100`) makes the model standardise its
pixel inputs with the statistics the authors' CIFAR code normalised with,
so that it takes pixels in [0, 1]; `--mean`/`--std` give other statistics.
Without them the model takes what the authors' model took.
"""

import math
import os

import numpy as np
from absl import flags

from irevnet_tf import cli
from irevnet_tf import files
from irevnet_tf.convert import checkpoint
from irevnet_tf.convert.constructor import AUTHORS_NORMALIZATIONS
from irevnet_tf.convert.constructor import config_from_authors

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
_NORMALIZATION = flags.DEFINE_enum(
    "normalization",
    None,
    sorted(AUTHORS_NORMALIZATIONS),
    "The model standardises its pixel inputs with the statistics the "
    "authors' CIFAR code normalised this dataset with, (x - mean) / std, "
    "so it takes pixels in [0, 1]. Default: no standardisation.",
)
_MEAN = flags.DEFINE_list(
    "mean",
    None,
    "Per-channel pixel mean the model subtracts first (comma-separated, "
    "one value or one per channel); instead of --normalization.",
)
_STD = flags.DEFINE_list(
    "std",
    None,
    "Per-channel pixel standard deviation the model divides by "
    "(comma-separated, positive); instead of --normalization.",
)
flags.mark_flags_as_required(["checkpoint", "config", "output"])


def _statistics(channels: int) -> dict:
    """`input_mean`/`input_std` from the flags; raises `cli.UsageError`."""
    if _NORMALIZATION.value is not None:
        if _MEAN.value is not None or _STD.value is not None:
            raise cli.UsageError(
                "Give --normalization or --mean/--std, not both. Received: "
                f"--normalization={_NORMALIZATION.value}"
            )
        statistics = AUTHORS_NORMALIZATIONS[_NORMALIZATION.value]
        if channels != len(statistics["mean"]):
            raise cli.UsageError(
                f"--normalization={_NORMALIZATION.value} is for 3-channel "
                f"images; the model takes {channels}. Received: "
                f"--normalization={_NORMALIZATION.value}"
            )
        return {
            "input_mean": statistics["mean"],
            "input_std": statistics["std"],
        }
    result = {}
    for flag, name in ((_MEAN, "input_mean"), (_STD, "input_std")):
        if flag.value is None:
            continue
        text = ",".join(flag.value)
        try:
            values = [float(v) for v in flag.value]
        except ValueError:
            values = []
        if not values or not all(math.isfinite(v) for v in values):
            raise cli.UsageError(
                f"--{flag.name} must be comma-separated finite numbers. "
                f"Received: --{flag.name}={text}"
            )
        if flag is _STD and not all(v > 0 for v in values):
            raise cli.UsageError(
                f"--std must be positive. Received: --std={text}"
            )
        if len(values) not in (1, channels):
            raise cli.UsageError(
                f"--{flag.name} needs one value or {channels} (one per "
                f"channel of the model's images). "
                f"Received: --{flag.name}={text}"
            )
        result[name] = values
    return result


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
        config = checkpoint.load_config(_CONFIG.value)
        channels = config_from_authors(config)["image_shape"][-1]
        model = checkpoint.convert_checkpoint(
            _CHECKPOINT.value,
            config,
            allow_pickle=_ALLOW_PICKLE.value,
            **_statistics(channels),
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
