"""Image classification datasets for i-RevNet, as `tf.data` pipelines.

One function, `load(name, split, ...)`, gives `(dataset, info)`: a
`tf.data.Dataset` of `(image, label)` pairs (float32 pixel images in
[0, 1], int32 labels) and a `DatasetInfo` (classes, image shape, the pixel
statistics a model standardises its inputs with). The training program and
the analysis tools read data only through it.

Datasets:
- "digits": scikit-learn's 1,797 handwritten digits, 8x8 grayscale, as the
  TensorFlow Datasets builder `Digits` (registered as "digits" on import):
  real images with no download, and a fixed stratified train/test split.
- "cifar10", "cifar100", "imagenet2012": TensorFlow Datasets' builders
  (downloaded on first use; imagenet2012 from its manual directory).
- "folder:PATH": one sub-folder of images per class.

Example:

>>> from irevnet_tf import datasets
>>> train, info = datasets.load(
...     "digits", "train", image_size=16, training=True, seed=0)
>>> test, _ = datasets.load("digits", "test", image_size=16)
>>> info.num_classes, info.image_shape, info.num_examples
(10, (16, 16, 1), 1437)
>>> model.fit(train.batch(64), steps_per_epoch=22, epochs=10)
"""

from irevnet_tf.datasets.digits import Digits
from irevnet_tf.datasets.loading import DATASET_NAMES
from irevnet_tf.datasets.loading import FOLDER_PREFIX
from irevnet_tf.datasets.loading import DatasetInfo
from irevnet_tf.datasets.loading import load
from irevnet_tf.datasets.preprocessing import STYLES as PREPROCESSING_STYLES

__all__ = [
    "DATASET_NAMES",
    "DatasetInfo",
    "Digits",
    "FOLDER_PREFIX",
    "PREPROCESSING_STYLES",
    "load",
]
