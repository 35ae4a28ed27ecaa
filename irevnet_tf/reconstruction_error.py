"""The relative reconstruction error, `||x - x'|| / ||x||`, in one place.

Every figure the project reports about its inverse (the training program's
`metrics.json`, the `reconstruction` analysis, the benchmarks, the tests'
invertibility checks) comes from these functions. They compute in float64,
so that an error of 1e-8 on float32 images is not lost to the rounding of
the norms themselves. For an image that is exactly zero the error is
measured relative to 1 (the absolute error), so a black image gives a
number instead of a division by zero.
"""

import numpy as np


def relative_errors(images, restored) -> np.ndarray:
    """`||x - x'|| / ||x||` for each example of a batch, in float64.

    Args:
        images: the originals, `(batch, ...)`; any array-like (NumPy arrays,
            tensors).
        restored: their reconstructions, the same shape.

    Returns:
        A float64 array of shape `(batch,)`. Non-finite reconstructions give
        non-finite errors.
    """
    x = np.asarray(images, np.float64)
    y = np.asarray(restored, np.float64)
    if x.shape != y.shape:
        raise ValueError(
            "Images and reconstructions must have the same shape. "
            f"Received: images.shape={x.shape}, restored.shape={y.shape}"
        )
    x = x.reshape(len(x), -1)
    y = y.reshape(len(y), -1)
    norms = np.linalg.norm(x, axis=1)
    return np.linalg.norm(x - y, axis=1) / np.where(norms > 0, norms, 1.0)


def relative_error(actual, expected) -> float:
    """`||actual - expected|| / ||expected||` over a whole structure.

    The norms run over every element of every tensor of the (nested)
    structures, in float64; relative to 1 if `expected` is all zeros.
    """
    import tensorflow as tf

    actual = [np.asarray(a, np.float64) for a in tf.nest.flatten(actual)]
    expected = [np.asarray(e, np.float64) for e in tf.nest.flatten(expected)]
    difference = sum(np.sum((a - e) ** 2) for a, e in zip(actual, expected))
    norm = sum(np.sum(e**2) for e in expected)
    return float(np.sqrt(difference / (norm if norm > 0 else 1.0)))
