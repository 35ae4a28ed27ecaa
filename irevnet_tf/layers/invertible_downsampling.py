"""Invertible down-sampling: space-to-depth and its inverse."""

import keras

from irevnet_tf.layers.invertible_layer import InvertibleLayer


@keras.saving.register_keras_serializable(package="irevnet_tf")
class InvertibleDownsampling(InvertibleLayer):
    """Moves each `block_size x block_size` patch of pixels into channels.

    This is the invertible down-sampling of i-RevNet (the operator `S` of the
    paper, the inverse of Shi et al.'s sub-pixel shuffle). Nothing is lost: the
    spatial size shrinks by `block_size` and the channel count grows by
    `block_size**2`. The channel order is exactly that of
    `tf.nn.space_to_depth`, which is also the order of the authors' `psi`:

        y[n, i, j, (dh * b + dw) * C + c] = x[n, i * b + dh, j * b + dw, c]

    It is not PyTorch's `pixel_unshuffle`, whose order is `c * b * b + ...`.

    Args:
        block_size: int >= 2, the side of the pixel patch moved into channels.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        inputs: tensor `(batch, H, W, C)`, `H` and `W` divisible by
            `block_size`. With `inverse=True`: `(batch, H, W, C)` with `C`
            divisible by `block_size**2`.
        inverse: bool, apply depth-to-space instead.
        training: unused.

    Returns:
        `(batch, H / b, W / b, C * b * b)`, or the inverse shape.

    Example:

    >>> layer = InvertibleDownsampling(2)
    >>> y = layer(np.zeros((1, 4, 4, 3)))   # (1, 2, 2, 12)
    >>> x = layer.inverse(y)                # (1, 4, 4, 3)

    Reference:
        i-RevNet: https://openreview.net/pdf?id=HJsjkMb0Z, section 3.1.
    """

    def __init__(self, block_size=2, **kwargs):
        if not isinstance(block_size, int) or block_size < 2:
            raise ValueError(
                "`block_size` must be an integer >= 2. "
                f"Received: block_size={block_size!r}"
            )
        super().__init__(**kwargs)
        self.block_size = block_size

    def _forward(self, inputs, training=None):
        height, width = inputs.shape[1], inputs.shape[2]
        for name, size in (("height", height), ("width", width)):
            if size is not None and size % self.block_size:
                raise ValueError(
                    f"The input {name} must be divisible by "
                    f"block_size={self.block_size} in {self.name}. "
                    f"Received: input shape={tuple(inputs.shape)}"
                )
        return keras.ops.space_to_depth(inputs, self.block_size)

    def _inverse(self, outputs, training=None):
        channels = outputs.shape[-1]
        if channels is not None and channels % self.block_size**2:
            raise ValueError(
                f"The channel count must be divisible by "
                f"block_size**2={self.block_size**2} to invert {self.name}. "
                f"Received: input shape={tuple(outputs.shape)}"
            )
        return keras.ops.depth_to_space(outputs, self.block_size)

    def get_config(self):
        config = super().get_config()
        config.update({"block_size": self.block_size})
        return config
