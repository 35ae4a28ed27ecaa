"""Image classification datasets from a folder with one sub-folder per class.

Two layouts are read:

    PATH/<class>/<image>                     # split by a fixed rule
    PATH/train/<class>/<image>, PATH/test/<class>/<image>

Images are PNG, JPEG, GIF (first frame) or BMP files directly inside the
class folders; other files are ignored. Classes are the sorted names of the
class folders (of `train/` in the second layout), labels their indices.

In the first layout an image belongs to the test split when the CRC-32 of
its path relative to PATH is divisible by 5: about 20% of every class,
and adding images never moves existing ones between the splits.

Every image is decoded once when the folder is first read (cached in the
process while the files are unchanged), so that a corrupt file is reported
by name before training starts. That pass also finds the channel count (1
if every image is grayscale, else 3) and the per-channel mean and standard
deviation of the training images.
"""

import dataclasses
import functools
import os
import zlib

import numpy as np
import tensorflow as tf

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
SPLITS = ("train", "test")
TEST_MODULUS = 5


@dataclasses.dataclass(frozen=True)
class FolderContents:
    """What `read_folder` found: files, classes and image statistics.

    Attributes:
        root: the folder.
        class_names: sorted class names; a label is an index into them.
        files: split name -> tuple of `(path, label)` pairs.
        channels: 1 if every image is grayscale, else 3.
        image_size: `(height, width)` if every image has that size, else None.
        mean, std: per-channel statistics of the training images in [0, 1].
    """

    root: str
    class_names: tuple
    files: dict
    channels: int
    image_size: tuple | None
    mean: tuple
    std: tuple


def read_folder(root: str) -> FolderContents:
    """Lists and checks a class-per-sub-folder image dataset.

    Raises:
        ValueError: the folder is missing, unreadable or holds no class
            folders with images, or an image cannot be decoded.
    """
    root = os.path.abspath(root)
    received = f"Received: dataset='folder:{root}'"
    if not os.path.exists(root):
        raise ValueError(f"Dataset folder {root} does not exist. {received}")
    if not os.path.isdir(root):
        raise ValueError(f"Dataset folder {root} is not a folder. {received}")
    subfolders = _subfolders(root, received)
    if set(SPLITS) <= set(subfolders):
        class_names = _subfolders(os.path.join(root, "train"), received)
        files = {
            split: _list_images(
                os.path.join(root, split), class_names, split, received
            )
            for split in SPLITS
        }
    else:
        class_names = subfolders
        images = _list_images(root, class_names, "train", received)
        files = {split: [] for split in SPLITS}
        for path, label in images:
            relative = os.path.relpath(path, root).encode()
            test = zlib.crc32(relative) % TEST_MODULUS == 0
            files["test" if test else "train"].append((path, label))
    if not class_names or not files["train"]:
        raise ValueError(
            f"Dataset folder {root} holds no class folders with images "
            f"({', '.join(IMAGE_EXTENSIONS)}); expected "
            f"{root}/<class name>/<image files>. {received}"
        )
    files = {split: tuple(pairs) for split, pairs in files.items()}
    signature = tuple(
        (path, *_stamp(path, received))
        for split in SPLITS
        for path, _ in files[split]
    )
    stats = _image_statistics(signature, len(files["train"]))
    failed = stats["failed"]
    if failed:
        others = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise ValueError(
            f"Image {failed[0]}{others} cannot be read or decoded as PNG, "
            f"JPEG, GIF or BMP. {received}"
        )
    return FolderContents(
        root=root,
        class_names=tuple(class_names),
        files=files,
        channels=stats["channels"],
        image_size=stats["image_size"],
        mean=stats["mean"],
        std=stats["std"],
    )


def decode(path: tf.Tensor, channels: int) -> tf.Tensor:
    """Reads an image file as float32 in [0, 1] with `channels` channels."""
    return decode_bytes(tf.io.read_file(path), channels)


def decode_bytes(contents: tf.Tensor, channels: int) -> tf.Tensor:
    """Decodes a PNG, JPEG, GIF or BMP image as `decode` does a file."""
    image = tf.io.decode_image(
        contents, expand_animations=False, dtype=tf.float32
    )
    image.set_shape((None, None, None))
    return _convert_channels(image, channels)


def _convert_channels(image, channels):
    # Index map from the file's channel count (1 to 4: gray, gray + alpha,
    # RGB, RGBA) to the channels kept: alpha is dropped and gray repeated.
    if channels == 1:
        image = image[..., :1]
        # Known statically, as for three channels: random crops need it.
        image.set_shape((None, None, 1))
        return image
    indices = tf.gather(
        tf.constant([[0, 0, 0], [0, 0, 0], [0, 1, 2], [0, 1, 2]]),
        tf.shape(image)[-1] - 1,
    )
    image = tf.gather(image, indices, axis=-1)
    image.set_shape((None, None, 3))
    return image


def _subfolders(folder, received):
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as error:
        raise ValueError(
            f"Dataset folder {folder} cannot be read ({error.strerror}). "
            f"{received}"
        ) from None
    return [
        e.name for e in entries if e.is_dir() and not e.name.startswith(".")
    ]


def _list_images(folder, class_names, split, received):
    pairs = []
    for label, name in enumerate(class_names):
        class_folder = os.path.join(folder, name)
        if split == "test" and not os.path.isdir(class_folder):
            continue  # A test split may lack classes.
        try:
            entries = sorted(os.scandir(class_folder), key=lambda e: e.name)
        except OSError as error:
            raise ValueError(
                f"Class folder {class_folder} cannot be read "
                f"({error.strerror}). {received}"
            ) from None
        images = [
            e.path
            for e in entries
            if e.name.lower().endswith(IMAGE_EXTENSIONS)
            and not e.name.startswith(".")
        ]
        if not images and split == "train":
            raise ValueError(
                f"Class folder {class_folder} holds no images "
                f"({', '.join(IMAGE_EXTENSIONS)}). {received}"
            )
        pairs.extend((path, label) for path in images)
    return pairs


def _stamp(path, received):
    try:
        status = os.stat(path)
    except OSError as error:
        raise ValueError(
            f"Image {path} cannot be read ({error.strerror}). {received}"
        ) from None
    return status.st_size, status.st_mtime_ns


@functools.lru_cache(maxsize=8)
def _image_statistics(signature, num_train):
    """Decodes every image once; cached on paths, sizes and times."""
    paths = [entry[0] for entry in signature]
    is_train = np.arange(len(paths)) < num_train

    def summarize(index, path):
        image = tf.io.decode_image(
            tf.io.read_file(path), expand_animations=False, dtype=tf.float32
        )
        image.set_shape((None, None, None))
        gray = tf.shape(image)[-1] <= 2
        rgb = _convert_channels(image, 3)
        moments = tf.stack(
            [
                tf.reduce_mean(rgb, axis=(0, 1)),
                tf.reduce_mean(tf.square(rgb), axis=(0, 1)),
            ]
        )
        pixels = tf.cast(tf.reduce_prod(tf.shape(rgb)[:2]), tf.float64)
        return (
            index,
            gray,
            tf.shape(rgb)[:2],
            tf.cast(moments, tf.float64),
            pixels,
        )

    dataset = (
        tf.data.Dataset.from_tensor_slices((tf.range(len(paths)), paths))
        .map(
            summarize,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=False,
        )
        .ignore_errors()
    )
    decoded = set()
    all_gray = True
    sizes = set()
    weighted = np.zeros((2, 3))
    total_pixels = 0.0
    for index, gray, size, moments, pixels in dataset.as_numpy_iterator():
        decoded.add(int(index))
        all_gray = all_gray and bool(gray)
        sizes.add(tuple(int(s) for s in size))
        if is_train[index]:
            weighted += moments * pixels
            total_pixels += pixels
    failed = tuple(p for i, p in enumerate(paths) if i not in decoded)
    moments = weighted / max(total_pixels, 1.0)
    channels = 1 if all_gray else 3
    mean = moments[0, :channels]
    std = np.sqrt(np.maximum(moments[1, :channels] - mean**2, 0.0))
    return {
        "failed": failed,
        "channels": channels,
        "image_size": sizes.pop() if len(sizes) == 1 else None,
        "mean": tuple(float(m) for m in mean),
        # A constant channel would divide by zero when normalising.
        "std": tuple(float(s) if s > 1e-6 else 1.0 for s in std),
    }
