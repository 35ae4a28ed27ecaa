"""`resolve_config`: a run's complete settings, from flags and defaults.

Unset fields take the recipe's value (the recipe defaults to the dataset's),
the preset's image size and the dataset's model preset; then every field is
checked (`TrainConfig.check`), the image size against the preset's
down-sampling factor, and the output directories for being writable.
"""

import dataclasses
import inspect
import os
import types

import irevnet_tf
from irevnet_tf import datasets
from irevnet_tf import files
from train.configs import recipes as recipes_lib
from train.configs.base import TrainConfig
from train.configs.base import positive_int


def resolve_config(
    config: TrainConfig,
) -> tuple[TrainConfig, recipes_lib.Recipe]:
    """Fills the unset fields of `config` and checks every field.

    Returns:
        The completed config (a copy) and its recipe.

    Raises:
        ValueError: naming the first bad setting.
    """
    dataset = config.dataset or ""
    kind = dataset_kind(dataset)
    recipe_name = config.recipe or recipes_lib.DEFAULT_RECIPES[kind]
    if recipe_name not in recipes_lib.RECIPES:
        raise ValueError(
            f"Unknown recipe {recipe_name!r}. Available recipes: "
            f"{', '.join(recipes_lib.RECIPES)}. "
            f"Received: recipe={recipe_name!r}"
        )
    recipe = recipes_lib.RECIPES[recipe_name]
    preset = config.preset or recipes_lib.DEFAULT_PRESETS[kind]
    if preset not in irevnet_tf.PRESETS:
        raise ValueError(
            f"Unknown preset {preset!r}. Available presets: "
            f"{', '.join(sorted(irevnet_tf.PRESETS))}. "
            f"Received: preset={preset!r}"
        )
    image_size = (
        config.image_size or irevnet_tf.PRESETS[preset]["image_shape"][0]
    )
    positive_int("image_size", image_size)
    factor = downsampling_factor(preset)
    if image_size % factor:
        raise ValueError(
            f"Image size {image_size} is not divisible by {factor}, the "
            f"down-sampling factor of preset {preset!r}; pick a multiple of "
            f"{factor}. Received: image_size={image_size}"
        )
    if config.epochs is None and config.train_steps is None:
        epochs, train_steps = recipe.epochs, recipe.train_steps
    else:
        epochs, train_steps = config.epochs, config.train_steps
    resolved = dataclasses.replace(
        config,
        dataset=dataset,
        recipe=recipe_name,
        preset=preset,
        image_size=image_size,
        batch_size=_first(config.batch_size, recipe.batch_size),
        epochs=epochs,
        train_steps=train_steps,
        learning_rate=_first(config.learning_rate, recipe.learning_rate),
        momentum=_first(config.momentum, recipe.momentum),
        weight_decay=_first(config.weight_decay, recipe.weight_decay),
        lr_schedule=config.lr_schedule or recipe.lr_schedule,
        model_dir=config.model_dir or os.path.join("runs", kind),
    )
    resolved.check()
    # Found now, not when the run tries to write there after training.
    files.check_writable_directory(resolved.model_dir, "model_dir")
    if resolved.export_dir:
        files.check_writable_directory(resolved.export_dir, "export_dir")
    return resolved, recipe


def dataset_kind(dataset: str) -> str:
    """The key of `dataset` in the recipes' tables ("folder" for folders).

    Raises:
        ValueError: for an unknown dataset or a folder without a path.
    """
    if dataset.startswith(datasets.FOLDER_PREFIX):
        if not dataset[len(datasets.FOLDER_PREFIX) :]:
            raise ValueError(
                "`folder:` needs a path, as in folder:/data/pets. "
                f"Received: dataset={dataset!r}"
            )
        return "folder"
    if dataset in recipes_lib.DEFAULT_RECIPES:
        return dataset
    raise ValueError(
        f"Unknown dataset {dataset!r}. Available datasets: "
        f"{', '.join(datasets.DATASET_NAMES)}. Received: dataset={dataset!r}"
    )


def downsampling_factor(preset: str) -> int:
    """`IRevNet.downsampling_factor` of the preset's backbone.

    Asked of the model class without building it (the largest presets take
    seconds and gigabytes to build): the property reads only constructor
    arguments, taken from the preset and, where the preset leaves one out,
    from `IRevNet`'s own defaults.
    """
    arguments = {
        name: parameter.default
        for name, parameter in inspect.signature(
            irevnet_tf.IRevNet
        ).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    arguments.update(irevnet_tf.PRESETS[preset])
    return irevnet_tf.IRevNet.downsampling_factor.fget(
        types.SimpleNamespace(**arguments)
    )


def _first(value, default):
    return default if value is None else value
