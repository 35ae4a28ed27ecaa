r"""Trains an i-RevNet classifier and reports its test accuracy and inverse.

    python -m train.train --model_dir=runs/digits --export_dir=serving
    python -m train.train --dataset=cifar10 --model_dir=runs/cifar10
    python -m train.train --dataset=imagenet2012 --manual_dir=~/imagenet \
        --strategy=mirrored --model_dir=runs/imagenet
    python -m train.train --dataset=folder:/data/pets --image_size=64

Unset flags take the values of the recipe (`--recipe`, by default the
dataset's: see train/configs/recipes.py). Run the same command again after
an interruption and training continues from its last checkpoint. Bad input
prints one line on stderr and exits with status 2.
"""

import contextlib
import os
import re
import sys
import tempfile

from absl import app
from absl import flags
from absl import logging

# TensorFlow's native start-up messages (CUDA probing on machines without
# a GPU, CPU instruction sets) are logged before its log level applies.
_STARTUP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|cudart_stub|cuda_|"
    r"cpu_feature_guard|To enable the following instructions"
)


@contextlib.contextmanager
def _without_startup_noise():
    """Drops TensorFlow's start-up noise from stderr; keeps anything else."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                if not _STARTUP_NOISE.search(line):
                    print(line, file=sys.stderr)


# Plain data: flags are checked before TensorFlow is imported.
from train.configs import recipes  # noqa: E402
from train.configs.base import STRATEGIES  # noqa: E402
from train.configs.base import TrainConfig  # noqa: E402

_DATASET = flags.DEFINE_string(
    "dataset",
    "digits",
    "digits (scikit-learn's handwritten digits, no download), cifar10, "
    "cifar100, imagenet2012 (TensorFlow Datasets), or folder:PATH (one "
    "sub-folder of images per class).",
)
_PRESET = flags.DEFINE_string(
    "preset",
    None,
    "Model preset (irevnet_tf.PRESETS). Default: digits for digits, cifar10 "
    "for CIFAR and folders, irevnet301 for imagenet2012.",
)
_IMAGE_SIZE = flags.DEFINE_integer(
    "image_size", None, "Image side in pixels. Default: the preset's."
)
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", None, "Global batch size, over all replicas."
)
_EPOCHS = flags.DEFINE_integer("epochs", None, "Length of the run in epochs.")
_TRAIN_STEPS = flags.DEFINE_integer(
    "train_steps", None, "Length of the run in steps (instead of --epochs)."
)
_LEARNING_RATE = flags.DEFINE_float(
    "learning_rate", None, "Initial SGD learning rate."
)
_MOMENTUM = flags.DEFINE_float("momentum", None, "SGD momentum.")
_WEIGHT_DECAY = flags.DEFINE_float(
    "weight_decay",
    None,
    "Coupled L2 weight decay, added to the gradients before momentum.",
)
_LR_SCHEDULE = flags.DEFINE_enum(
    "lr_schedule",
    None,
    list(recipes.LR_SCHEDULES),
    "step: the recipe's drops at fixed fractions of the run; cosine; constant.",
)
_RECIPE = flags.DEFINE_enum(
    "recipe",
    None,
    list(recipes.RECIPES),
    "cifar: the authors' CIFAR recipe; imagenet: the paper's ImageNet recipe; "
    "digits: a short run for scikit-learn's digits. Default: the dataset's.",
)
_MEMORY_SAVING = flags.DEFINE_boolean(
    "memory_saving",
    True,
    "Recompute activations from the inverse during backpropagation instead "
    "of storing them.",
)
_STRATEGY = flags.DEFINE_enum(
    "strategy",
    "auto",
    list(STRATEGIES),
    "tf.distribute strategy. auto: multi_worker if TF_CONFIG holds a "
    "cluster, mirrored with several GPUs, else one_device.",
)
_MODEL_DIR = flags.DEFINE_string(
    "model_dir",
    None,
    "Checkpoints, TensorBoard logs, model.keras and metrics.json. "
    "Default: runs/<dataset>.",
)
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "TensorFlow Datasets directory."
)
_MANUAL_DIR = flags.DEFINE_string(
    "manual_dir",
    None,
    "imagenet2012's manual download directory (ILSVRC2012_img_train.tar, "
    "ILSVRC2012_img_val.tar). Default: <data_dir>/downloads/manual.",
)
_SEED = flags.DEFINE_integer(
    "seed", 0, "Seeds initialisation, shuffling and augmentation."
)
_DETERMINISTIC = flags.DEFINE_boolean(
    "deterministic",
    False,
    "Reproducible runs: fixed input order and deterministic ops (slower).",
)
_CHECKPOINT_STEPS = flags.DEFINE_integer(
    "checkpoint_steps", 200, "Save the training state every this many steps."
)
_RECONSTRUCTION_EXAMPLES = flags.DEFINE_integer(
    "reconstruction_examples",
    1000,
    "Test images whose reconstruction error metrics.json reports.",
)
_EXPORT_DIR = flags.DEFINE_string(
    "export_dir",
    None,
    "If set, export the final model for TF Serving there (see export/).",
)


def main(argv):
    if len(argv) > 1:
        _fail(f"Unexpected arguments: {' '.join(argv[1:])}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _without_startup_noise():
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # Probes CUDA, quietly.
        from train import train_lib
    # TensorFlow Datasets logs every pipeline it builds (INFO) and every
    # dataset directory it looks into (WARNING).
    logging.set_verbosity(logging.ERROR)
    config = TrainConfig(
        dataset=_DATASET.value,
        preset=_PRESET.value,
        image_size=_IMAGE_SIZE.value,
        batch_size=_BATCH_SIZE.value,
        epochs=_EPOCHS.value,
        train_steps=_TRAIN_STEPS.value,
        learning_rate=_LEARNING_RATE.value,
        momentum=_MOMENTUM.value,
        weight_decay=_WEIGHT_DECAY.value,
        lr_schedule=_LR_SCHEDULE.value,
        recipe=_RECIPE.value,
        memory_saving=_MEMORY_SAVING.value,
        strategy=_STRATEGY.value,
        model_dir=_MODEL_DIR.value,
        data_dir=_DATA_DIR.value,
        manual_dir=_MANUAL_DIR.value,
        seed=_SEED.value,
        deterministic=_DETERMINISTIC.value,
        checkpoint_steps=_CHECKPOINT_STEPS.value,
        reconstruction_examples=_RECONSTRUCTION_EXAMPLES.value,
        export_dir=_EXPORT_DIR.value,
    )
    try:
        train_lib.train_and_evaluate(config)
    except train_lib.UsageError as error:
        _fail(str(error))


def _parse_flags(argv):
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        _fail(str(error))


def _fail(message: str) -> None:
    # One line, no traceback, exit status 2 (the project's CLI convention).
    message = " ".join(message.split())
    print(f"train: error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
