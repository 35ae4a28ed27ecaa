"""`load`: image classification datasets as `tf.data` pipelines."""

import dataclasses
import random

import tensorflow as tf
import tensorflow_datasets as tfds

from irevnet_tf.datasets import folder as folder_lib
from irevnet_tf.datasets import preparation
from irevnet_tf.datasets import preprocessing as preprocessing_lib
from irevnet_tf.datasets.digits import Digits

FOLDER_PREFIX = "folder:"

# The TensorFlow Datasets names `load` accepts, with the split to evaluate on
# and the per-channel pixel statistics a model standardises its inputs with
# (`IRevNet(input_mean=..., input_std=...)`).
TFDS_DATASETS = {
    # Of the 1,437 training images.
    "digits": {"eval_split": "test", "mean": (0.3054,), "std": (0.3760,)},
    # The authors' statistics (pytorch-i-revnet models/utils_cifar.py).
    "cifar10": {
        "eval_split": "test",
        "mean": (0.4914, 0.4822, 0.4465),
        "std": (0.2023, 0.1994, 0.2010),
    },
    "cifar100": {
        "eval_split": "test",
        "mean": (0.5071, 0.4867, 0.4408),
        "std": (0.2675, 0.2565, 0.2761),
    },
    # The usual ImageNet statistics.
    "imagenet2012": {
        "eval_split": "validation",
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
    },
}
DATASET_NAMES = tuple(TFDS_DATASETS) + (FOLDER_PREFIX + "PATH",)

# Examples held in the shuffle buffer (decoded images, or JPEG bytes for
# imagenet2012).
SHUFFLE_BUFFER = 10_000


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a pipeline from `load` yields, and the dataset it comes from.

    Attributes:
        name: the dataset name as given to `load`.
        split: the split loaded.
        num_examples: examples in the split (all input pipelines together).
        num_classes: number of classes; labels are in `[0, num_classes)`.
        class_names: tuple of class names, or None if unnamed.
        image_shape: `(height, width, channels)` of the images yielded.
        eval_split: the split to evaluate on ("test", or "validation" for
            imagenet2012).
        mean, std: per-channel pixel statistics of the training images,
            for a model that standardises its inputs, `(x - mean) / std`
            (`IRevNet(input_mean=mean, input_std=std)`). The images yielded
            are pixels in [0, 1] all the same.
    """

    name: str
    split: str
    num_examples: int
    num_classes: int
    class_names: tuple | None
    image_shape: tuple
    eval_split: str
    mean: tuple
    std: tuple


def load(
    name: str,
    split: str,
    *,
    image_size: int | None = None,
    preprocessing: str = "resize",
    training: bool = False,
    data_dir: str | None = None,
    manual_dir: str | None = None,
    seed: int | None = None,
    deterministic: bool = False,
    input_context: tf.distribute.InputContext | None = None,
    start: int = 0,
) -> tuple[tf.data.Dataset, DatasetInfo]:
    """Loads an image classification dataset as `(image, label)` pairs.

    Images are float32 `(image_size, image_size, channels)` pixels in
    [0, 1]; labels are int32. A model that standardises its inputs does so
    itself, with the statistics in `DatasetInfo.mean` and `.std`. The
    pipeline is not batched; decoding and preprocessing run in parallel and
    the result is prefetched.

    Args:
        name: "digits" (scikit-learn's handwritten digits, no download),
            "cifar10", "cifar100", "imagenet2012" (TensorFlow Datasets), or
            "folder:PATH" (one sub-folder of images per class, see
            `irevnet_tf.datasets.folder`).
        split: "train", "test" ("validation" for imagenet2012), or a
            TensorFlow Datasets slice such as "train[:10%]" for tfds names.
        image_size: side of the square images yielded; None keeps the
            dataset's own size if all its images share one.
        preprocessing: "resize", "cifar" or "imagenet": the recipe's
            training augmentation and evaluation transform (see
            `irevnet_tf.datasets.preprocessing`).
        training: if True, the pipeline is an endless stream of epochs, each
            a shuffled pass over the split, augmented; if False, one pass in
            a fixed order. Which examples come when, and how each is
            augmented, are functions of `seed`, the epoch and the position
            in the epoch alone (see `start`).
        data_dir: TensorFlow Datasets directory (default
            `~/tensorflow_datasets`).
        manual_dir: imagenet2012's manual download directory, holding
            ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar (default
            `<data_dir>/downloads/manual`); not needed once prepared.
        seed: seeds shuffling and augmentation; None for fresh randomness.
        deterministic: keep the element order fixed under parallel
            processing (`tf.data.Options.deterministic`): with a seed, a
            training pipeline then yields the same batches every time.
            Evaluation pipelines always keep their order.
        input_context: a `tf.distribute.InputContext`; if given, this input
            pipeline reads only its share of the split.
        start: training pipelines only: the number of examples of the
            stream already consumed (by this input pipeline). The pipeline
            yields exactly what a fresh one would after that many, so a
            resumed run sees the batches an uninterrupted one would.

    Returns:
        `(dataset, info)`: the `tf.data.Dataset` and a `DatasetInfo`.

    Raises:
        ValueError: an unknown dataset, a missing, empty or unreadable
            folder, a corrupt image, imagenet2012 without its manual files,
            a dataset that cannot be downloaded, or `image_size=None` for
            images of different sizes.

    Example:

    >>> ds, info = irevnet_tf.datasets.load("digits", "test", image_size=16)
    >>> info.num_classes, info.image_shape
    (10, (16, 16, 1))
    >>> images, labels = next(iter(ds.batch(32)))
    """
    preprocessing_lib.validate_style(preprocessing)
    if name.startswith(FOLDER_PREFIX):
        source = _folder_source(name, split, input_context)
    elif name in TFDS_DATASETS:
        source = _tfds_source(name, split, data_dir, manual_dir, input_context)
    else:
        raise ValueError(
            f"Unknown dataset {name!r}. Available datasets: "
            f"{', '.join(DATASET_NAMES)}. Received: dataset={name!r}"
        )
    if image_size is None:
        if (
            source.image_size is None
            or source.image_size[0] != (source.image_size[1])
        ):
            raise ValueError(
                f"The images of {name!r} are not all square and of one size: "
                f"pass `image_size`. Received: image_size=None"
            )
        image_size = source.image_size[0]
    if not isinstance(image_size, int) or image_size < 1:
        raise ValueError(
            "`image_size` must be a positive integer. "
            f"Received: image_size={image_size!r}"
        )
    info = DatasetInfo(
        name=name,
        split=split,
        num_examples=source.num_examples,
        num_classes=source.num_classes,
        class_names=source.class_names,
        image_shape=(image_size, image_size, source.channels),
        eval_split=source.eval_split,
        mean=tuple(source.mean),
        std=tuple(source.std),
    )
    if start and not training:
        raise ValueError(
            "`start` applies to training pipelines only. "
            f"Received: start={start}, training=False"
        )
    dataset = source.dataset
    if training:
        dataset = _training_stream(
            dataset, source.shard_size, seed, input_context, start
        )
        if source.jpeg and preprocessing == "imagenet":
            channels = source.channels

            def augment(raw, random_seed):
                return preprocessing_lib.imagenet_augment_jpeg(
                    raw, random_seed, image_size, channels
                )

        else:
            train_fn = preprocessing_lib.train_transform(
                preprocessing, image_size
            )

            def augment(raw, random_seed):
                return train_fn(source.decode(raw), random_seed)

        def transform(example, random_seed):
            image, label = example
            return augment(image, random_seed), label

    else:
        evaluate = preprocessing_lib.eval_transform(preprocessing, image_size)

        def transform(image, label):
            return evaluate(source.decode(image)), label

    def finish(*example):
        image, label = transform(*example)
        image.set_shape(info.image_shape)
        return image, tf.cast(label, tf.int32)

    dataset = dataset.map(finish, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    # Evaluation keeps its order (cheap); training may trade it for speed.
    options.deterministic = deterministic or not training
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options), info


@dataclasses.dataclass
class _Source:
    """Undecoded `(image, label)` examples and what is known about them."""

    dataset: tf.data.Dataset
    decode: object  # fn(image) -> float32 image in [0, 1]
    jpeg: bool  # whether `dataset` holds JPEG bytes
    num_examples: int
    shard_size: int  # examples in `dataset`: this input pipeline's share
    num_classes: int
    class_names: tuple | None
    channels: int
    image_size: tuple | None
    eval_split: str
    mean: tuple
    std: tuple


def _tfds_source(name, split, data_dir, manual_dir, context):
    builder = tfds.builder(name, data_dir=data_dir)
    preparation.prepare(builder, manual_dir)
    features = builder.info.features
    image_feature, label_feature = features["image"], features["label"]
    jpeg = name == "imagenet2012"

    def read(split_slice):
        try:
            return builder.as_dataset(
                split=split_slice,
                as_supervised=True,
                # In a fixed order: a training pipeline shuffles each epoch
                # itself, as a function of the seed and the epoch.
                shuffle_files=False,
                # Keep JPEG bytes until after shuffling: decoded ImageNet
                # images would not fit a shuffle buffer.
                decoders=(
                    {"image": tfds.decode.SkipDecoding()} if jpeg else None
                ),
            )
        except (ValueError, KeyError) as error:
            raise ValueError(
                f"Cannot read split {split!r} of {name}: {error}. "
                f"Received: split={split!r}"
            ) from None

    dataset = read(split)
    num_examples = int(dataset.cardinality())
    if num_examples < 0:
        num_examples = builder.info.splits[split].num_examples
    if context is not None and context.num_input_pipelines > 1:
        dataset = read(
            tfds.even_splits(split, n=context.num_input_pipelines)[
                context.input_pipeline_id
            ]
        )
    channels = image_feature.shape[-1] or 3
    shape = image_feature.shape[:2]
    statistics = TFDS_DATASETS[name]

    def decode(image):
        if jpeg:
            image = tf.io.decode_jpeg(image, channels=channels)
        return tf.image.convert_image_dtype(image, tf.float32)

    shard_size = int(dataset.cardinality())
    return _Source(
        dataset=dataset,
        decode=decode,
        jpeg=jpeg,
        num_examples=num_examples,
        shard_size=shard_size if shard_size >= 0 else num_examples,
        num_classes=label_feature.num_classes,
        class_names=tuple(label_feature.names) if label_feature.names else None,
        channels=channels,
        image_size=tuple(shape) if None not in shape else None,
        eval_split=statistics["eval_split"],
        mean=statistics["mean"][:channels],
        std=statistics["std"][:channels],
    )


def _training_stream(examples, size, seed, context, start):
    """Epoch after epoch of `examples`, shuffled, with augmentation seeds.

    Epoch `e` of input pipeline `p` is `examples` through a shuffle buffer
    seeded by `key(seed, p, e)`; its `i`-th example gets the augmentation
    seed `(key, i)`. Nothing depends on what ran before in the process, so
    the stream after `start` examples is computed, not replayed.

    Returns:
        A dataset of `((image, label), augmentation_seed)` pairs.
    """
    if not isinstance(start, int) or start < 0:
        raise ValueError(
            f"`start` must be a non-negative integer. Received: start={start!r}"
        )
    if size < 1:
        raise ValueError(
            "An input pipeline's share of the split is empty. "
            f"Received: {size} examples"
        )
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    pipeline = context.input_pipeline_id if context is not None else 0
    base = _random_int64([seed, pipeline])
    buffer = min(SHUFFLE_BUFFER, size)
    first_epoch, offset = divmod(start, size)

    def epoch(index):
        # `shuffle` pairs its seed with the graph's; fixing this function's
        # own graph seed keeps the order a function of `key` alone (and a
        # global seed of 0 would make `shuffle` test a tensor seed in Python).
        tf.random.set_seed(_GRAPH_SEED)
        key = _random_int64(tf.stack([base, index]))
        shuffled = examples.shuffle(
            buffer, seed=key, reshuffle_each_iteration=False
        )
        return shuffled.enumerate().map(
            lambda position, example: (example, tf.stack([key, position]))
        )

    epochs = tf.data.Dataset.range(first_epoch, 2**62)
    # Skipped before decoding and augmentation: only the reads are repeated.
    return epochs.flat_map(epoch).skip(offset)


_GRAPH_SEED = 87654321


def _random_int64(seed):
    """A random int64 that is a function of the `(2,)` seed alone."""
    return tf.random.stateless_uniform(
        (),
        seed=tf.cast(seed, tf.int64),
        minval=None,
        maxval=None,
        dtype=tf.int64,
    )


def _folder_source(name, split, context):
    contents = folder_lib.read_folder(name[len(FOLDER_PREFIX) :])
    if split not in folder_lib.SPLITS:
        raise ValueError(
            f"Folder datasets have the splits {', '.join(folder_lib.SPLITS)}. "
            f"Received: split={split!r}"
        )
    pairs = contents.files[split]
    if context is not None and context.num_input_pipelines > 1:
        pairs = pairs[context.input_pipeline_id :: context.num_input_pipelines]
    paths = [path for path, _ in pairs]
    labels = [label for _, label in pairs]
    dataset = tf.data.Dataset.from_tensor_slices(
        (tf.constant(paths, tf.string), tf.constant(labels, tf.int64))
    )
    channels = contents.channels
    return _Source(
        dataset=dataset,
        decode=lambda path: folder_lib.decode(path, channels),
        jpeg=False,
        num_examples=len(contents.files[split]),
        shard_size=len(pairs),
        num_classes=len(contents.class_names),
        class_names=contents.class_names,
        channels=channels,
        image_size=contents.image_size,
        eval_split="test",
        mean=contents.mean,
        std=contents.std,
    )


# Referenced so that importing this module registers the "digits" builder.
_ = Digits
