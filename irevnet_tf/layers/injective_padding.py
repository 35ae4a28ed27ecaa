"""Injective zero padding along channels, and its left inverse."""

import keras

from irevnet_tf.layers.invertible_layer import InvertibleLayer


@keras.saving.register_keras_serializable(package="irevnet_tf")
class InjectivePadding(InvertibleLayer):
    """Appends `channels` zero channels; the inverse drops them again.

    Padding with zeros is injective, not bijective: `inverse(call(x)) == x`
    holds for every `x`, while `call(inverse(y)) == y` holds only for `y`
    whose last `channels` channels are zero (the image of `call`). It lets
    i-RevNet widen its representation without losing information (section 3.1
    of the paper).

    Args:
        channels: int >= 0, the number of zero channels appended.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        inputs: tensor `(batch, H, W, C)`. With `inverse=True`:
            `(batch, H, W, C + channels)`.
        inverse: bool, drop the last `channels` channels instead.
        training: unused.

    Returns:
        `(batch, H, W, C + channels)`, or `(batch, H, W, C)` on inverse.

    Example:

    >>> pad = InjectivePadding(5)
    >>> y = pad(np.ones((1, 8, 8, 3)))      # (1, 8, 8, 8), last 5 are zero
    >>> x = pad.inverse(y)                  # (1, 8, 8, 3)

    Reference:
        i-RevNet: https://openreview.net/pdf?id=HJsjkMb0Z, section 3.1.
    """

    def __init__(self, channels, **kwargs):
        if not isinstance(channels, int) or channels < 0:
            raise ValueError(
                "`channels` (the number of zero channels to append) must be "
                f"a non-negative integer. Received: channels={channels!r}"
            )
        super().__init__(**kwargs)
        self.channels = channels

    def _forward(self, inputs, training=None):
        return keras.ops.pad(
            inputs, [[0, 0], [0, 0], [0, 0], [0, self.channels]]
        )

    def _inverse(self, outputs, training=None):
        total = outputs.shape[-1]
        if total is not None and total < self.channels:
            raise ValueError(
                f"Cannot drop {self.channels} padding channels in {self.name}: "
                f"the input has only {total}. Received: input shape="
                f"{tuple(outputs.shape)}"
            )
        return outputs[..., : outputs.shape[-1] - self.channels]

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels})
        return config
