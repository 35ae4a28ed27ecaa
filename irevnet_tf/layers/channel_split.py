"""Splitting a tensor into its two channel halves, and merging them back."""

import keras

from irevnet_tf.layers.invertible_layer import InvertibleLayer


@keras.saving.register_keras_serializable(package="irevnet_tf")
class ChannelSplit(InvertibleLayer):
    """Splits channels into `(x1, x2)` at `C // 2`; the inverse concatenates.

    This is the splitting operator of the paper (`S~`). For an odd channel
    count the second half is one channel larger, as in the authors' code
    (their CIFAR model splits RGB into 1 + 2 channels).

    Args:
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        inputs: tensor `(batch, H, W, C)`, `C >= 2`. With `inverse=True`: a
            tuple `(x1, x2)`.
        inverse: bool, concatenate the halves instead.
        training: unused.

    Returns:
        `(x1, x2)` with `C // 2` and `C - C // 2` channels, or the
        concatenated tensor on inverse.

    Reference:
        i-RevNet: https://openreview.net/pdf?id=HJsjkMb0Z, section 3.1.
    """

    def _forward(self, inputs, training=None):
        return split_channels(inputs, self.name)

    def _inverse(self, outputs, training=None):
        return merge_channels(outputs, self.name)


@keras.saving.register_keras_serializable(package="irevnet_tf")
class ChannelMerge(InvertibleLayer):
    """Concatenates the halves `(x1, x2)`; the inverse splits at `C // 2`.

    The merging operator of the paper (`M~`), the inverse of `ChannelSplit`.
    It ends the invertible part of i-RevNet, so its output is the feature map
    `Phi(x)`.

    Args:
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        inputs: a tuple `(x1, x2)` of tensors `(batch, H, W, C_i)`. With
            `inverse=True`: one tensor `(batch, H, W, C)`.
        inverse: bool, split instead.
        training: unused.

    Returns:
        The concatenated tensor, or the tuple of halves on inverse.
    """

    def _forward(self, inputs, training=None):
        return merge_channels(inputs, self.name)

    def _inverse(self, outputs, training=None):
        return split_channels(outputs, self.name)


def split_channels(x, name="split"):
    """Returns `(x[..., :C // 2], x[..., C // 2:])`."""
    channels = x.shape[-1]
    if channels is not None and channels < 2:
        raise ValueError(
            f"{name} needs at least 2 channels to split into halves. "
            f"Received: input shape={tuple(x.shape)}"
        )
    half = channels // 2
    return x[..., :half], x[..., half:]


def merge_channels(halves, name="merge"):
    """Concatenates a pair of tensors along channels."""
    if not isinstance(halves, (tuple, list)) or len(halves) != 2:
        raise ValueError(
            f"{name} expects a pair of tensors (x1, x2). Received: {halves!r}"
        )
    return keras.ops.concatenate(halves, axis=-1)
