"""Training recipes: the hyperparameters a run starts from.

    python -m train.train --dataset=cifar10 --recipe=cifar

Every flag left unset takes the recipe's value; the recipe defaults to the
dataset's (`DEFAULT_RECIPES`). Learning-rate boundaries are fractions of the
run, so a shorter run keeps the schedule's shape.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Optimisation and data settings of one recipe.

    Attributes:
        name: the `--recipe` value.
        batch_size: global batch size.
        epochs: length of the run in epochs, or None if given in steps.
        train_steps: length of the run in optimizer steps, or None.
        learning_rate: initial learning rate of SGD.
        momentum: SGD momentum.
        weight_decay: coupled L2 weight decay (`wd * w` added to every
            gradient before momentum, as PyTorch's SGD `weight_decay`).
        lr_schedule: "step", "cosine" or "constant".
        lr_boundaries: for "step": where the learning rate drops, as
            fractions of the run's steps.
        lr_decay_factor: for "step": the factor at every boundary.
        preprocessing: augmentation style (`irevnet_tf.datasets.load`).
        normalize: whether the model standardises its pixel inputs per
            channel with the training images' statistics (`IRevNet`'s
            `input_mean` and `input_std`). The pipeline yields pixels in
            [0, 1] either way.
    """

    name: str
    batch_size: int
    epochs: int | None
    train_steps: int | None
    learning_rate: float
    momentum: float
    weight_decay: float
    lr_schedule: str
    lr_boundaries: tuple
    lr_decay_factor: float
    preprocessing: str
    normalize: bool


# The authors' CIFAR recipe (pytorch-i-revnet CIFAR_main.py, utils_cifar.py):
# SGD 0.1, momentum 0.9, weight decay 5e-4, batch 128, 200 epochs, learning
# rate x0.2 after epochs 60, 120 and 160; pad-crop-flip, normalised (by the
# model's first layer, so that it takes pixels).
CIFAR = Recipe(
    name="cifar",
    batch_size=128,
    epochs=200,
    train_steps=None,
    learning_rate=0.1,
    momentum=0.9,
    weight_decay=5e-4,
    lr_schedule="step",
    lr_boundaries=(60 / 200, 120 / 200, 160 / 200),
    lr_decay_factor=0.2,
    preprocessing="cifar",
    normalize=True,
)

# The paper's ImageNet recipe (section 4.1): SGD 0.1, momentum 0.9, weight
# decay 1e-4, batch 256, 600k iterations, learning rate /10 every 160k;
# random scaling and cropping, flip, colour distortion; normalised (by the
# model).
IMAGENET = Recipe(
    name="imagenet",
    batch_size=256,
    epochs=None,
    train_steps=600_000,
    learning_rate=0.1,
    momentum=0.9,
    weight_decay=1e-4,
    lr_schedule="step",
    lr_boundaries=(160 / 600, 320 / 600, 480 / 600),
    lr_decay_factor=0.1,
    preprocessing="imagenet",
    normalize=True,
)

# scikit-learn's digits with the small "digits" preset: 97.5% to 99.4% test
# accuracy over the seeds measured (bench/train_digits.py; 15 epochs: 97.2%
# to 98.9%), in about a minute on 2 CPU cores. No augmentation (flips and
# crops change digits); the blocks see the pixels in [0, 1].
DIGITS = Recipe(
    name="digits",
    batch_size=64,
    epochs=20,
    train_steps=None,
    learning_rate=0.1,
    momentum=0.9,
    weight_decay=5e-4,
    lr_schedule="cosine",
    lr_boundaries=(0.3, 0.6, 0.8),
    lr_decay_factor=0.2,
    preprocessing="resize",
    normalize=False,
)

RECIPES = {recipe.name: recipe for recipe in (DIGITS, CIFAR, IMAGENET)}
LR_SCHEDULES = ("step", "cosine", "constant")

# Per dataset ("folder" stands for every "folder:PATH"): the recipe and the
# model preset used when --recipe and --preset are not given.
DEFAULT_RECIPES = {
    "digits": "digits",
    "cifar10": "cifar",
    "cifar100": "cifar",
    "imagenet2012": "imagenet",
    "folder": "cifar",
}
DEFAULT_PRESETS = {
    "digits": "digits",
    "cifar10": "cifar10",
    "cifar100": "cifar10",
    "imagenet2012": "irevnet301",
    "folder": "cifar10",
}
