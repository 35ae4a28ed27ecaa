"""The settings of a training run, each declared once: `TrainConfig`.

    python -m train.train --dataset=digits --model_dir=runs/digits

Every field with a `help` is a flag of `train.train` of the same name, type
and default (`train.configs.flags` generates them), and carries the check of
its value. Fields left None take their value from the recipe, the dataset
or the preset when the run starts (`train.configs.resolve`).

A run directory is resumed only by a run whose settings agree with the
recorded ones on every field that changes the trained result; the fields
declared with `may_differ=True` (where files go, how often to checkpoint,
what to report) may differ (`TrainConfig.differences`).

This module is plain data: the program checks its flags before it imports
TensorFlow.
"""

import dataclasses
import math

from train.configs import recipes

# The `tf.distribute` strategies a run can use (see train.distribute).
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
# The values of `--mixed_precision` (see train.mixed_precision).
MIXED_PRECISIONS = ("bfloat16", "float16")


def setting(default, help=None, *, choices=None, check=None, may_differ=False):
    """A `TrainConfig` field: its default, its documentation, its check.

    Args:
        default: the flag's default (None: resolved when the run starts).
        help: the flag's documentation; None for a field that is not a flag.
        choices: the values an enum flag accepts.
        check: `fn(name, value)` raising ValueError for a bad resolved
            value (not called for None).
        may_differ: True if the field does not change the trained model,
            so a run may resume a directory whose record holds another value.
    """
    return dataclasses.field(
        default=default,
        metadata={
            "help": help,
            "choices": choices,
            "check": check,
            "may_differ": may_differ,
        },
    )


def positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )


def _non_negative_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"`{name}` must be non-negative. Received: {name}={value!r}"
        )


def _positive(name: str, value) -> None:
    if not value > 0:
        raise ValueError(f"`{name}` must be positive. Received: {name}={value}")
    _finite(name, value)


def _non_negative(name: str, value) -> None:
    if not value >= 0:
        raise ValueError(
            f"`{name}` must be non-negative. Received: {name}={value}"
        )
    _finite(name, value)


def _finite(name: str, value) -> None:
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be finite. Received: {name}={value}")


def _momentum(name: str, value) -> None:
    if not 0 <= value < 1:
        raise ValueError(
            f"`{name}` must be in [0, 1). Received: {name}={value}"
        )


def _one_of(choices: tuple, what: str):
    def check(name: str, value) -> None:
        if value not in choices:
            raise ValueError(
                f"Unknown {what} {value!r}. Available: {', '.join(choices)}. "
                f"Received: {name}={value!r}"
            )

    return check


@dataclasses.dataclass
class TrainConfig:
    """A training run. Each field's `help` metadata documents it."""

    dataset: str = setting(
        "digits",
        "digits (scikit-learn's handwritten digits, no download), cifar10, "
        "cifar100, imagenet2012 (TensorFlow Datasets), or folder:PATH (one "
        "sub-folder of images per class).",
    )
    preset: str | None = setting(
        None,
        "Model preset (irevnet_tf.PRESETS). Default: digits for digits, "
        "cifar10 for CIFAR and folders, irevnet301 for imagenet2012.",
    )
    image_size: int | None = setting(
        None, "Image side in pixels. Default: the preset's.", check=positive_int
    )
    batch_size: int | None = setting(
        None, "Global batch size, over all replicas.", check=positive_int
    )
    epochs: int | None = setting(
        None, "Length of the run in epochs.", check=positive_int
    )
    train_steps: int | None = setting(
        None,
        "Length of the run in steps (instead of --epochs).",
        check=positive_int,
    )
    learning_rate: float | None = setting(
        None, "Initial SGD learning rate.", check=_positive
    )
    momentum: float | None = setting(None, "SGD momentum.", check=_momentum)
    weight_decay: float | None = setting(
        None,
        "Coupled L2 weight decay, added to the gradients before momentum.",
        check=_non_negative,
    )
    lr_schedule: str | None = setting(
        None,
        "step: the recipe's drops at fixed fractions of the run; cosine; "
        "constant.",
        choices=recipes.LR_SCHEDULES,
        check=_one_of(recipes.LR_SCHEDULES, "learning-rate schedule"),
    )
    recipe: str | None = setting(
        None,
        "cifar: the authors' CIFAR recipe; imagenet: the paper's ImageNet "
        "recipe; digits: a short run for scikit-learn's digits. Default: the "
        "dataset's.",
        choices=tuple(recipes.RECIPES),
    )
    memory_saving: bool = setting(
        True,
        "Recompute activations from the inverse during backpropagation "
        "instead of storing them.",
    )
    mixed_precision: str | None = setting(
        None,
        "Mixed precision: the residual functions compute in bfloat16 or "
        "float16 (with loss scaling); weights, the invertible stream and "
        "the logits stay float32. Default: off (float32 throughout).",
        choices=MIXED_PRECISIONS,
        check=_one_of(MIXED_PRECISIONS, "mixed precision"),
    )
    strategy: str = setting(
        "auto",
        "tf.distribute strategy. auto: multi_worker if TF_CONFIG holds a "
        "cluster, mirrored with several GPUs, else one_device.",
        choices=STRATEGIES,
        check=_one_of(STRATEGIES, "strategy"),
    )
    model_dir: str | None = setting(
        None,
        "Checkpoints, TensorBoard logs, model.keras and metrics.json. "
        "Default: runs/<dataset>.",
        may_differ=True,
    )
    data_dir: str | None = setting(
        None, "TensorFlow Datasets directory.", may_differ=True
    )
    manual_dir: str | None = setting(
        None,
        "imagenet2012's manual download directory (ILSVRC2012_img_train.tar, "
        "ILSVRC2012_img_val.tar). Default: <data_dir>/downloads/manual.",
        may_differ=True,
    )
    seed: int = setting(0, "Seeds initialisation, shuffling and augmentation.")
    deterministic: bool = setting(
        False,
        "Reproducible runs: deterministic ops (slower). A run killed at any "
        "moment and run again then ends bit-identical to an uninterrupted "
        "one. (The input order is always a function of the seed and step.)",
    )
    checkpoint_steps: int = setting(
        200,
        "Save the training state every this many steps.",
        check=positive_int,
        may_differ=True,
    )
    reconstruction_examples: int = setting(
        1000,
        "Test images whose reconstruction error metrics.json reports.",
        check=_non_negative_int,
        may_differ=True,
    )
    export_dir: str | None = setting(
        None,
        "If set, export the final model for TF Serving there (see export/).",
        may_differ=True,
    )
    # Not a flag: 0 silences the run's messages and progress bar.
    verbose: int = setting(1, may_differ=True)

    def check(self) -> None:
        """Checks every set field (see each field's `check`).

        Raises:
            ValueError: naming the first bad setting.
        """
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            check = field.metadata["check"]
            if check is not None and value is not None:
                check(field.name, value)
        if self.epochs is not None and self.train_steps is not None:
            raise ValueError(
                "Give the length of the run as epochs or as train_steps, not "
                f"both. Received: epochs={self.epochs}, "
                f"train_steps={self.train_steps}"
            )

    def differences(self, recorded: dict) -> list[tuple[str, object, object]]:
        """The settings that change the result and differ from `recorded`.

        Args:
            recorded: the fields of an earlier run's config, by name.

        Returns:
            `(name, recorded value, value)` for each differing field, in
            field order.
        """
        return [
            (field.name, recorded.get(field.name), getattr(self, field.name))
            for field in dataclasses.fields(self)
            if not field.metadata["may_differ"]
            and recorded.get(field.name) != getattr(self, field.name)
        ]
