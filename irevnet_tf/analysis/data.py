"""Images for the analyses: dataset splits the model can take, and noise."""

import dataclasses
import functools
from typing import Callable
from typing import Iterator

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from irevnet_tf import datasets
from irevnet_tf import run_directory
from irevnet_tf.datasets import loading as datasets_loading


@dataclasses.dataclass(frozen=True)
class DataSettings:
    """How images are read and prepared for the model.

    Attributes:
        dataset: a name `irevnet_tf.datasets.load` accepts ("digits",
            "cifar10", "cifar100", "imagenet2012", "folder:PATH").
        image_size: side of the images; None for the model's own size (or
            the dataset's if the model takes any size).
        preprocessing: evaluation transform style ("resize", "cifar",
            "imagenet").
        data_dir: TensorFlow Datasets directory, None for the default.
        manual_dir: imagenet2012's manual download directory.
    """

    dataset: str
    image_size: int | None = None
    preprocessing: str = "resize"
    data_dir: str | None = None
    manual_dir: str | None = None


def recorded_settings(model_path: str) -> DataSettings | None:
    """The dataset and preparation the training run of `model_path` used.

    Read from the run's `config.json` (`irevnet_tf.run_directory`) if
    `model_path` is a training `--model_dir` or the `model.keras` in one.

    Returns:
        `DataSettings` with the recorded dataset and preprocessing (other
        fields at their defaults), or None if there is
        no record.

    Raises:
        ValueError: naming the file, if the record cannot be read.
    """
    run = run_directory.RunDirectory.of_model(model_path)
    record = run_directory.read_run_record(run.path) if run else None
    if record is None:
        return None
    return DataSettings(
        dataset=record.dataset.name,
        preprocessing=record.recipe.get("preprocessing", "resize"),
    )


def eval_split(dataset: str) -> str:
    """The split a dataset is evaluated on: "test", or ImageNet's
    "validation"."""
    return datasets_loading.TFDS_DATASETS.get(dataset, {}).get(
        "eval_split", "test"
    )


def load_split(
    model, settings: DataSettings, split: str, max_examples: int | None = None
) -> tuple[tf.data.Dataset, datasets.DatasetInfo]:
    """A dataset split as the model takes it, in a fixed order.

    Args:
        model: an `IRevNetClassifier`.
        settings: a `DataSettings`.
        split: the split (or a TensorFlow Datasets slice).
        max_examples: keep only the first this many examples.

    Returns:
        `(dataset, info)`: unbatched `(image, label)` pairs and the
        `DatasetInfo` (its `num_examples` is the whole split's).

    Raises:
        ValueError: an unknown or unreadable dataset, or images the model
            cannot take (other channels, or a size its strides do not
            divide).
    """
    backbone = model.backbone
    height, width, channels = backbone.image_shape
    size = settings.image_size
    if (
        size is not None
        and height is not None
        and (size, size)
        != (
            height,
            width,
        )
    ):
        raise ValueError(
            f"The model takes {height}x{width} images only. "
            f"Received: image_size={size}"
        )
    if size is None and height is not None:
        if height != width:
            raise ValueError(
                "The model takes non-square images, which the datasets do "
                f"not give. Received: model image_shape={(height, width)}"
            )
        size = height
    load = functools.partial(
        datasets.load,
        settings.dataset,
        image_size=size,
        preprocessing=settings.preprocessing,
        data_dir=settings.data_dir,
        manual_dir=settings.manual_dir,
    )
    dataset, info = load(split)
    if info.image_shape[-1] != channels:
        raise ValueError(
            f"The model takes images with {channels} channels; "
            f"{settings.dataset} has {info.image_shape[-1]}. "
            f"Received: dataset={settings.dataset!r}"
        )
    factor = backbone.downsampling_factor
    if info.image_shape[0] % factor:
        raise ValueError(
            f"The model's strides divide the image size by {factor}; pass an "
            f"--image_size it divides. Received: image_size="
            f"{info.image_shape[0]}"
        )
    if max_examples is not None and max_examples < info.num_examples:
        if settings.dataset in datasets_loading.TFDS_DATASETS and (
            "[" not in split
        ):
            # TensorFlow Datasets caches a small split as it is read. A
            # `take` would stop reading before the end, and TensorFlow then
            # discards the partial cache with a warning on stderr; a slice
            # read to its end completes it.
            dataset, _ = load(f"{split}[:{max_examples}]")
        else:
            dataset = dataset.take(max_examples)
    return dataset, info


def split_size(info: datasets.DatasetInfo, max_examples: int | None) -> int:
    """How many examples `load_split(..., max_examples)` yields."""
    if max_examples is None:
        return info.num_examples
    return min(info.num_examples, max_examples)


def load_examples(
    model,
    settings: DataSettings,
    split: str,
    count: int,
    too_few: Callable[[int], str] | None = None,
) -> tuple[np.ndarray, np.ndarray, datasets.DatasetInfo]:
    """The first `count` images and labels of a split, as arrays.

    Args:
        too_few: if given, a split with fewer than `count` examples is an
            error: `too_few(examples_in_split)` is its message. Raised
            before any example is read, so that nothing TensorFlow logs
            while reading precedes the error line.

    Returns:
        `(images, labels, info)`, as `load_split(..., max_examples=count)`
        yields them (fewer if the split is shorter).
    """
    dataset, info = load_split(model, settings, split, count)
    if too_few is not None and info.num_examples < count:
        raise ValueError(too_few(info.num_examples))
    images, labels = [], []
    # Read to the end, never stopped early: see `load_split`.
    for image, label in dataset.as_numpy_iterator():
        images.append(image)
        labels.append(label)
    if not images:
        raise ValueError("The dataset split is empty. Received: an empty split")
    return np.stack(images), np.asarray(labels), info


def uniform_noise(
    shape: tuple, count: int, seed: int, batch_size: int
) -> Iterator[np.ndarray]:
    """`count` images of i.i.d. uniform noise in [0, 1), in batches."""
    # A plain generator: `tf.data.Dataset.from_generator` would add nothing
    # but a notice of TensorFlow's on stderr.
    rng = np.random.default_rng(seed)
    for start in range(0, count, batch_size):
        n = min(batch_size, count - start)
        yield rng.random((n,) + tuple(shape), dtype=np.float32)


def image_shape(model, settings: DataSettings | None) -> tuple:
    """The `(H, W, C)` images the model is analysed at."""
    height, width, channels = model.backbone.image_shape
    if height is not None:
        return (height, width, channels)
    size = settings.image_size if settings else None
    if size is None:
        raise ValueError(
            "The model takes images of any size: pass --image_size. "
            "Received: image_size=None"
        )
    if size % model.backbone.downsampling_factor:
        raise ValueError(
            "The model's strides divide the image size by "
            f"{model.backbone.downsampling_factor}. Received: image_size={size}"
        )
    return (size, size, channels)


def progress(iterable, total: int | None, description: str):
    """A progress bar on terminals; silent when stderr is not a terminal."""
    return tqdm(
        iterable, total=total, desc=description, unit="batch", disable=None
    )
