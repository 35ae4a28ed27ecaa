"""`small_classifier`: a two-block classifier that exports in seconds."""

import keras

from irevnet_tf.models.irevnet import IRevNet
from irevnet_tf.models.irevnet_classifier import IRevNetClassifier
from irevnet_tf.testing.test_case import randomize_batch_norm


def small_classifier(
    image_shape=(16, 16, 3), initial_block_size=1, seed=0, **kwargs
) -> IRevNetClassifier:
    """A two-block classifier with random BatchNorm statistics.

    Features are `(8, 8, 64)` for 16x16 images without initial down-sampling.

    Args:
        image_shape: the backbone's `image_shape`.
        initial_block_size: the backbone's `initial_block_size`.
        seed: seeds the weights and the BatchNorm statistics: models made
            with the same seed are equal.
        **kwargs: other `IRevNet` arguments (`dtype`, ...).
    """
    keras.utils.set_random_seed(seed)
    model = IRevNetClassifier(
        IRevNet(
            stage_depths=[1, 1],
            stage_filters=[8, 32],
            stage_strides=[1, 2],
            initial_block_size=initial_block_size,
            image_shape=image_shape,
            **kwargs,
        ),
        10,
    )
    randomize_batch_norm(model, seed)
    return model
