"""Spatially averaged block outputs of a whole split, extracted in batches.

Only the averages are kept: at most `(examples, channels)` numbers per
depth, however large the block outputs, so memory stays bounded by one
batch of activations plus the averages.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from irevnet_tf.analysis import data as data_lib


@dataclasses.dataclass
class Features:
    """Features of a split.

    Attributes:
        by_depth: `{depth: (examples, channels) float32}`, the output of
            block `depth` (1-based) averaged over space (`Phi_j` of the
            paper's section 5.1).
        labels: `(examples,)` int labels.
        pixels: `(examples, H * W * C)` flattened images, or None.
    """

    by_depth: dict
    labels: np.ndarray
    pixels: np.ndarray | None = None


def check_depths(depths, num_blocks: int) -> list:
    """Validates 1-based block depths; None means all of them."""
    if depths is None:
        return list(range(1, num_blocks + 1))
    depths = sorted(set(int(d) for d in depths))
    bad = [d for d in depths if not 1 <= d <= num_blocks]
    if bad or not depths:
        raise ValueError(
            f"Depths are block indices from 1 to {num_blocks}, the model's "
            f"number of blocks. Received: depths={depths}"
        )
    return depths


def extract_features(
    model,
    dataset: tf.data.Dataset,
    depths,
    batch_size: int,
    num_examples: int | None = None,
    pixels: bool = False,
    description: str = "features",
) -> Features:
    """Spatially averaged block outputs of every image, in inference mode.

    Args:
        model: an `IRevNetClassifier`.
        dataset: unbatched `(image, label)` pairs.
        depths: 1-based block indices (`check_depths`).
        batch_size: images per forward pass.
        num_examples: size of `dataset`, for the progress bar.
        pixels: also return the flattened images (for a pixel baseline).
        description: label of the progress bar.

    Returns:
        A `Features`.
    """
    indices = [depth - 1 for depth in depths]
    backbone = model.backbone

    @tf.function(reduce_retracing=True)
    def averages(images):
        outputs = backbone.block_outputs(images, training=False)
        return [
            tf.reduce_mean(tf.cast(outputs[i], tf.float32), axis=(1, 2))
            for i in indices
        ]

    chunks = {depth: [] for depth in depths}
    labels, flat = [], []
    batches = dataset.batch(batch_size)
    total = None if num_examples is None else -(-num_examples // batch_size)
    for images, batch_labels in data_lib.progress(batches, total, description):
        for depth, values in zip(depths, averages(images)):
            chunks[depth].append(values.numpy())
        labels.append(batch_labels.numpy())
        if pixels:
            flat.append(images.numpy().reshape(images.shape[0], -1))
    if not labels:
        raise ValueError("The dataset split is empty. Received: no images")
    return Features(
        by_depth={d: np.concatenate(c) for d, c in chunks.items()},
        labels=np.concatenate(labels),
        pixels=np.concatenate(flat) if pixels else None,
    )
