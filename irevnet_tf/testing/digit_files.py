"""Real test data on disk: scikit-learn's digits as tfds files and PNGs.

Shared by the tests of the datasets, the training program, the analyses and
the notebook (scikit-learn's digits need no download).
"""

import atexit
import functools
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from irevnet_tf import datasets
from irevnet_tf.datasets.digits import digits_arrays


@functools.lru_cache(maxsize=None)
def prepared_digits_dir() -> str:
    """A TensorFlow Datasets directory holding the prepared "digits"."""
    data_dir = tempfile.mkdtemp(prefix="tfds-digits-")
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    datasets.load("digits", "train", data_dir=data_dir)
    return data_dir


def write_digit_folder(
    root: str,
    classes=(0, 1, 2),
    per_class: int = 20,
    split_folders: bool = False,
    rgb: bool = False,
) -> dict:
    """Writes digits as PNG files, one sub-folder per class.

    With `split_folders`, the first 3/4 of each class go to `root/train/`,
    the rest to `root/test/`. Returns `{path: uint8 image}` of every file.
    """
    images, labels = digits_arrays()
    written = {}
    for name in classes:
        picked = images[labels == name][:per_class]
        for index, image in enumerate(picked):
            split = "train" if index < 0.75 * per_class else "test"
            folder = os.path.join(
                root, split if split_folders else "", f"digit{name}"
            )
            os.makedirs(folder, exist_ok=True)
            if rgb:
                image = np.concatenate(
                    [image, 255 - image, image // 2], axis=-1
                ).astype(np.uint8)
            path = os.path.join(folder, f"{index:03d}.png")
            tf.io.write_file(path, tf.io.encode_png(image))
            written[path] = image
    return written
