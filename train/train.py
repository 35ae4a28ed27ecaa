r"""Trains an i-RevNet classifier and reports its test accuracy and inverse.

    python -m train.train --model_dir=runs/digits --export_dir=serving
    python -m train.train --dataset=cifar10 --model_dir=runs/cifar10
    python -m train.train --dataset=imagenet2012 --manual_dir=~/imagenet \
        --strategy=mirrored --model_dir=runs/imagenet
    python -m train.train --dataset=folder:/data/pets --image_size=64

Every flag is a field of `train.configs.base.TrainConfig`, which documents
it. Unset flags take the values of the recipe (`--recipe`, by default the
dataset's: see train/configs/recipes.py). Run the same command again after
an interruption and training continues from its last checkpoint. Bad input
prints one line on stderr and exits with status 2, before anything is
written; a run whose loss stops being finite prints one line and exits with
status 1, keeping its last good checkpoint.
"""

import os
import sys

# TensorFlow's C++ INFO lines (such as oneDNN's notice, which it logs again
# after start-up) are not the user's business; a user who sets the level
# keeps it. It must be set before TensorFlow is imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import logging  # noqa: E402

from irevnet_tf import cli  # noqa: E402
from train.configs import flags as flags_lib  # noqa: E402
from train.configs.base import TrainConfig  # noqa: E402

PROGRAM = "train"

_FLAGS = flags_lib.define_flags(TrainConfig)


def main() -> None:
    from train import train_lib

    # TensorFlow Datasets logs every pipeline it builds (INFO) and every
    # dataset directory it looks into (WARNING).
    logging.set_verbosity(logging.ERROR)
    config = flags_lib.config_from_flags(TrainConfig, _FLAGS)
    try:
        train_lib.train_and_evaluate(config)
    except train_lib.TrainingDiverged as error:
        sys.exit(f"{PROGRAM}: error: {error}")  # One line, status 1.


def run() -> None:
    """The `irevnet-train` console script."""
    cli.run(main, PROGRAM)


if __name__ == "__main__":
    run()
