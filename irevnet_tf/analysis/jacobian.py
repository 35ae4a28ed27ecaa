"""The Jacobian of `Phi` at an image, matrix-free, and its singular values.

`J = dPhi/dx (x)`, a `D_out x D_in` matrix, as a scipy `LinearOperator`
whose products run forward- and reverse-mode differentiation in inference
mode, and the two methods of the `spectrum` analysis on it: a dense SVD of
all its columns, and randomised subspace iteration for the top values
without forming it.
"""

import weakref

import numpy as np
import tensorflow as tf
from scipy.sparse import linalg as sparse_linalg

# Traced product functions per backbone, shared by its operators (one trace
# serves every image).
_PRODUCTS = weakref.WeakKeyDictionary()


def _products(backbone):
    """`(jvp, vjp)`: `tf.function`s of `(image, vectors)` for `backbone`."""
    if backbone in _PRODUCTS:
        return _PRODUCTS[backbone]

    @tf.function(reduce_retracing=True)
    def jvp(image, tangents):
        images = tf.repeat(image, tf.shape(tangents)[0], axis=0)
        with tf.autodiff.ForwardAccumulator(images, tangents) as acc:
            features = backbone(images, training=False)
        return acc.jvp(features)

    @tf.function(reduce_retracing=True)
    def vjp(image, cotangents):
        images = tf.repeat(image, tf.shape(cotangents)[0], axis=0)
        with tf.GradientTape() as tape:
            tape.watch(images)
            features = backbone(images, training=False)
        return tape.gradient(features, images, output_gradients=cotangents)

    _PRODUCTS[backbone] = (jvp, vjp)
    return jvp, vjp


class JacobianOperator(sparse_linalg.LinearOperator):
    """`J = dPhi/dx` at one image as a scipy `LinearOperator`, matrix-free.

    `J @ V` runs forward-mode products and `J.T @ U` reverse-mode ones, on
    `batch_size` vectors per pass: the image is repeated along the batch
    axis, one tangent (or cotangent) per copy. Vectors are flattened
    images (columns of length `D_in`) or flattened features (`D_out`).

    Args:
        backbone: an `IRevNet`.
        image: one image `(H, W, C)`.
        batch_size: vectors per forward pass.
    """

    def __init__(self, backbone, image, batch_size: int = 32):
        dtype = tf.as_dtype(backbone.compute_dtype)
        self.image = tf.constant(np.asarray(image)[None], dtype)
        self.input_shape = tuple(self.image.shape[1:])
        self.output_shape = tuple(
            backbone(self.image, training=False).shape[1:]
        )
        self.batch_size = batch_size
        self.passes = 0
        self._jvp, self._vjp = _products(backbone)
        self._dtype = dtype
        shape = (
            int(np.prod(self.output_shape)),
            int(np.prod(self.input_shape)),
        )
        super().__init__(dtype=np.float64, shape=shape)

    def _apply(self, product, vectors, shape):
        columns = []
        for start in range(0, vectors.shape[1], self.batch_size):
            chunk = vectors[:, start : start + self.batch_size].T
            chunk = tf.constant(chunk.reshape((-1,) + shape), self._dtype)
            result = product(self.image, chunk).numpy()
            columns.append(result.reshape(len(result), -1).T)
            self.passes += 1
        return np.concatenate(columns, axis=1).astype(np.float64)

    def _matmat(self, vectors):
        return self._apply(self._jvp, np.asarray(vectors), self.input_shape)

    def _rmatmat(self, vectors):
        return self._apply(self._vjp, np.asarray(vectors), self.output_shape)

    def _matvec(self, vector):
        return self._matmat(np.reshape(vector, (-1, 1)))[:, 0]

    def _rmatvec(self, vector):
        return self._rmatmat(np.reshape(vector, (-1, 1)))[:, 0]

    def dense(self, progress=None) -> np.ndarray:
        """The whole `D_out x D_in` Jacobian, `batch_size` columns a pass."""
        size = self.shape[1]
        starts = range(0, size, self.batch_size)
        if progress is not None:
            starts = progress(starts, len(starts), "Jacobian columns")
        columns = []
        for start in starts:
            n = min(self.batch_size, size - start)
            basis = np.zeros((size, n))
            basis[start + np.arange(n), np.arange(n)] = 1.0
            columns.append(self._matmat(basis))
        return np.concatenate(columns, axis=1)


def exact_singular_values(operator: JacobianOperator, progress=None) -> dict:
    """All singular values of `J`, from the dense matrix, descending."""
    jacobian = operator.dense(progress)
    values = np.linalg.svd(jacobian, compute_uv=False)
    return {
        "singular_values": values,
        "total_energy": float(np.sum(values**2)),
    }


def randomized_singular_values(
    operator: sparse_linalg.LinearOperator,
    top_k: int,
    oversampling: int = 10,
    max_iterations: int = 30,
    tolerance: float = 1e-4,
    seed: int = 0,
    progress=None,
) -> dict:
    """The `top_k` largest singular values by randomised subspace iteration.

    Args:
        operator: `J` as a `LinearOperator` with `matmat` and `rmatmat`.
        top_k: how many values.
        oversampling: extra vectors beyond `top_k` (better accuracy for the
            last of the top values).
        max_iterations: most products with `J^T` (each after one with `J`).
        tolerance: stop when no top value changes by more than this
            fraction of itself between two iterations.
        seed: seeds the Gaussian start vectors.
        progress: optional `fn(iterable, total, description)`.

    Returns:
        A dict: "singular_values" (descending, `top_k`), "iterations",
        "relative_change" (of the last iteration; None after one),
        "total_energy" (estimate of `||J||_F^2`) and
        "total_energy_stderr" (its standard error).
    """
    rows, cols = operator.shape
    if not 1 <= top_k <= min(rows, cols):
        raise ValueError(
            f"`top_k` must lie between 1 and min(D_out, D_in) = "
            f"{min(rows, cols)}. Received: top_k={top_k}"
        )
    width = min(top_k + oversampling, min(rows, cols))
    rng = np.random.default_rng(seed)
    start = rng.standard_normal((cols, width))
    image = operator.matmat(start)
    # Unbiased estimate of ||J||_F^2: E ||J w||^2 over Gaussian w.
    energies = np.sum(image**2, axis=0)
    basis, _ = np.linalg.qr(image)
    previous, change, values = None, None, None
    iterations = range(1, max_iterations + 1)
    if progress is not None:
        iterations = progress(iterations, max_iterations, "subspace iteration")
    for iteration in iterations:
        # Rayleigh-Ritz: the singular values of Q^T J = (J^T Q)^T.
        transposed = operator.rmatmat(basis)
        values = np.linalg.svd(transposed, compute_uv=False)[:top_k]
        if previous is not None:
            change = float(np.max(np.abs(values - previous) / values))
            if change <= tolerance:
                break
        previous = values
        if iteration == max_iterations:
            break
        right, _ = np.linalg.qr(transposed)
        basis, _ = np.linalg.qr(operator.matmat(right))
    return {
        "singular_values": values,
        "iterations": iteration,
        "relative_change": change,
        "total_energy": float(np.mean(energies)),
        "total_energy_stderr": float(
            np.std(energies, ddof=1) / np.sqrt(width) if width > 1 else np.nan
        ),
    }
