"""scikit-learn's handwritten digits as a TensorFlow Datasets builder."""

import numpy as np
import tensorflow_datasets as tfds

# The fixed train/test split: stratified, 20% test, this seed.
TEST_FRACTION = 0.2
SPLIT_SEED = 0


class Digits(tfds.core.GeneratorBasedBuilder):
    """The 1,797 8x8 grayscale handwritten digits bundled with scikit-learn.

    `sklearn.datasets.load_digits()` (the UCI "Optical Recognition of
    Handwritten Digits" test set) is real image data that needs no download.
    Its pixels count ink from 0 to 16; they are stored as `uint8` scaled to
    0..255 (`round(v * 255 / 16)`). The split is fixed: stratified, 20% test,
    seed 0, which gives 1,437 training and 360 test images.

    Importing `irevnet_tf.datasets` registers it in TensorFlow Datasets as
    `"digits"`:

    >>> import irevnet_tf.datasets
    >>> ds = tfds.load("digits", split="train", as_supervised=True)
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "scikit-learn's handwritten digits (load_digits): 8x8 "
                "grayscale images of the digits 0 to 9."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(8, 8, 1)),
                    "label": tfds.features.ClassLabel(num_classes=10),
                }
            ),
            supervised_keys=("image", "label"),
            homepage=(
                "https://scikit-learn.org/stable/modules/generated/"
                "sklearn.datasets.load_digits.html"
            ),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # The data ships with scikit-learn.
        images, labels = digits_arrays()
        train, test = split_indices(labels)
        return {
            "train": self._generate_examples(images, labels, train),
            "test": self._generate_examples(images, labels, test),
        }

    def _generate_examples(self, images, labels, indices):
        for index in indices:
            yield (
                int(index),
                {
                    "image": images[index],
                    "label": int(labels[index]),
                },
            )


def digits_arrays():
    """All digits as `uint8` images `(1797, 8, 8, 1)` and integer labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return images[..., np.newaxis], digits.target.astype(np.int64)


def split_indices(labels):
    """Sorted indices of the fixed training and test examples."""
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(
        np.arange(len(labels)),
        test_size=TEST_FRACTION,
        random_state=SPLIT_SEED,
        stratify=labels,
    )
    return np.sort(train), np.sort(test)
