"""The i-RevNet block: additive coupling with a bottleneck F."""

import keras
import tensorflow as tf

from irevnet_tf.layers.channel_split import merge_channels
from irevnet_tf.layers.channel_split import split_channels
from irevnet_tf.layers.initializers import default_kernel_initializer
from irevnet_tf.layers.injective_padding import InjectivePadding
from irevnet_tf.layers.invertible_downsampling import InvertibleDownsampling
from irevnet_tf.layers.invertible_layer import InvertibleLayer
from irevnet_tf.layers.residual_bottleneck import ResidualBottleneck
from irevnet_tf.layers.stream_precision import is_mixed
from irevnet_tf.layers.stream_precision import round_to_grid
from irevnet_tf.layers.stream_precision import stream_dtype_policy


@keras.saving.register_keras_serializable(package="irevnet_tf")
class IRevNetBlock(InvertibleLayer):
    """An i-RevNet block: RevNet coupling, invertible down-sampling, padding.

    On a pair of channel halves `(x1, x2)` (Eq. 1 of the paper):

        forward:  y1 = S(x2)              y2 = x1' + F(x2)    with x1' = S(x1)
        inverse:  x2 = S^-1(y1)           x1 = S^-1(y2 - F(x2))

    `S` is `InvertibleDownsampling(2)` in stride-2 blocks and the identity
    otherwise; the first convolution of `F` then has stride 2. The halves swap
    every block. A stride-1 block whose `in_channels` is less than
    `2 * out_channels` is injective: it first merges the halves, appends
    `2 * out_channels - in_channels` zero channels and splits again, which the
    inverse undoes. These are the semantics of the authors' `irevnet_block`.

    The inverse is exact only in inference mode (`training=False`, the default
    of `inverse`): BatchNorm inside `F` must see the same statistics twice.

    Precision: `F` computes in the policy's compute dtype; everything else
    (the halves, the addition and subtraction, `S`, the padding) in its
    variable dtype. Under a mixed policy (float16 or bfloat16 compute,
    float32 variables) `F`'s output is cast to float32 and rounded to the
    stream's fixed-point grid before it is added, which keeps the inverse
    exact (see `irevnet_tf.layers.stream_precision`).

    Args:
        in_channels: int, total channels of `(x1, x2)` together.
        out_channels: int, channels of each output half (the width of `F`'s
            output). Stride 2 needs `out_channels == 2 * in_channels`; stride
            1 needs `2 * out_channels >= in_channels`.
        strides: 1 or 2.
        preactivate: bool. False leaves out `F`'s leading BatchNorm and ReLU
            (the network's first block).
        kernel_sizes, bottleneck_divisor, dropout_rate, affine,
        batch_norm_momentum, batch_norm_epsilon, synchronized_batch_norm,
        unbiased_moving_variance, kernel_initializer, kernel_regularizer,
        seed: passed to `ResidualBottleneck`.
        **kwargs: standard `keras.layers.Layer` arguments.

    Dropout: called with `dropout_seed`, the mask comes from that seed;
    without, in training mode, from the block's own seed generator (seeded
    with `seed`). The blocks of an `IRevNet` get a `dropout_seed` at every
    training call from their model and have no generator of their own.

    Call arguments:
        inputs: tuple `(x1, x2)` of tensors `(batch, H, W, C_i)` with
            `C_1 + C_2 == in_channels`. With `inverse=True`: the tuple
            `(y1, y2)` of the block's outputs.
        inverse: bool, apply the inverse.
        training: bool or None, BatchNorm and dropout mode.
        dropout_seed: optional seed tensor `(2,)` of `F`'s dropout mask; the
            same seed gives the same mask (see `ResidualBottleneck`).

    Returns:
        Tuple `(y1, y2)`, each `(batch, H / strides, W / strides,
        out_channels)`; or `(x1, x2)` on inverse.

    Example:

    >>> block = IRevNetBlock(in_channels=32, out_channels=64, strides=2)
    >>> y1, y2 = block((x1, x2))            # x1, x2: (n, 16, 16, 16)
    >>> x1, x2 = block.inverse((y1, y2))    # y1, y2: (n, 8, 8, 64)

    Reference:
        i-RevNet: https://openreview.net/pdf?id=HJsjkMb0Z, Eq. 1, Figure 1.
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        strides=1,
        preactivate=True,
        kernel_sizes=(3, 3, 3),
        bottleneck_divisor=4,
        dropout_rate=0.0,
        affine=True,
        batch_norm_momentum=0.9,
        batch_norm_epsilon=1e-5,
        synchronized_batch_norm=False,
        unbiased_moving_variance=False,
        kernel_initializer=None,
        kernel_regularizer=None,
        seed=None,
        **kwargs,
    ):
        for arg, value in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"`{arg}` must be a positive integer. "
                    f"Received: {arg}={value!r}"
                )
        if strides not in (1, 2):
            raise ValueError(
                f"`strides` must be 1 or 2. Received: strides={strides!r}"
            )
        if strides == 2:
            if in_channels % 2:
                raise ValueError(
                    "A stride-2 block down-samples both channel halves, which "
                    "must be equally wide: `in_channels` must be even. "
                    f"Received: in_channels={in_channels}"
                )
            if out_channels != 2 * in_channels:
                raise ValueError(
                    "A stride-2 block maps each half of in_channels / 2 "
                    "channels to 4 times as many: `out_channels` must be "
                    f"2 * in_channels = {2 * in_channels}. Received: "
                    f"in_channels={in_channels}, out_channels={out_channels}"
                )
        elif 2 * out_channels < in_channels:
            raise ValueError(
                "The injective padding 2 * out_channels - in_channels would be "
                f"negative ({2 * out_channels - in_channels}): a block cannot "
                "drop channels. Received: "
                f"in_channels={in_channels}, out_channels={out_channels}"
            )
        # Set by `IRevNet`, which seeds every block's dropout itself.
        seeds_from_caller = kwargs.pop("_dropout_seeds_from_caller", False)
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.strides = strides
        self.preactivate = preactivate
        self.kernel_sizes = tuple(kernel_sizes)
        self.bottleneck_divisor = bottleneck_divisor
        self.dropout_rate = dropout_rate
        self.affine = affine
        self.batch_norm_momentum = batch_norm_momentum
        self.batch_norm_epsilon = batch_norm_epsilon
        self.synchronized_batch_norm = synchronized_batch_norm
        self.unbiased_moving_variance = unbiased_moving_variance
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or default_kernel_initializer()
        )
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.seed = seed

        stream = stream_dtype_policy(self.dtype_policy)
        padding = 2 * out_channels - in_channels if strides == 1 else 0
        self.padding = (
            InjectivePadding(padding, dtype=stream, name="padding")
            if padding
            else None
        )
        self.downsampling = (
            InvertibleDownsampling(2, dtype=stream, name="downsampling")
            if strides == 2
            else None
        )
        self.residual = ResidualBottleneck(
            out_channels,
            strides=strides,
            kernel_sizes=kernel_sizes,
            bottleneck_divisor=bottleneck_divisor,
            preactivate=preactivate,
            dropout_rate=dropout_rate,
            affine=affine,
            batch_norm_momentum=batch_norm_momentum,
            batch_norm_epsilon=batch_norm_epsilon,
            synchronized_batch_norm=synchronized_batch_norm,
            unbiased_moving_variance=unbiased_moving_variance,
            kernel_initializer=kernel_initializer,
            kernel_regularizer=kernel_regularizer,
            seed=seed,
            dtype=self.dtype_policy,
            name="residual",
            _dropout_seeds_from_caller=seeds_from_caller,
        )

    @property
    def is_injective(self):
        """Whether the block pads zeros: then its image is not everything."""
        return self.padding is not None

    @property
    def residual_channels(self):
        """Channels of `x2`, the input of `F`."""
        if self.padding is not None:
            return self.out_channels
        return self.in_channels - self.in_channels // 2

    def build(self, input_shape):
        # Called with the input shapes, or with the output shapes when the
        # inverse comes first; F's weights depend on neither.
        self.residual.build((None, None, None, self.residual_channels))

    def _check_halves(self, halves, expected, what):
        if not isinstance(halves, (tuple, list)) or len(halves) != 2:
            raise ValueError(
                f"{self.name} expects a pair of tensors ({what}). "
                f"Received: {halves!r}"
            )
        channels = tuple(h.shape[-1] for h in halves)
        if None not in channels and channels != expected:
            raise ValueError(
                f"{self.name} expects {what} with {expected[0]} and "
                f"{expected[1]} channels. Received: shapes "
                f"{tuple(halves[0].shape)} and {tuple(halves[1].shape)}"
            )

    def _forward(
        self, inputs, training=None, dropout_seed=None, update_statistics=True
    ):
        half = self.in_channels // 2
        self._check_halves(inputs, (half, self.in_channels - half), "(x1, x2)")
        x1, x2 = inputs
        if self.padding is not None:
            x1, x2 = split_channels(self.padding(merge_channels((x1, x2))))
        fx2 = self._coupling_term(
            x2,
            training=training,
            dropout_seed=dropout_seed,
            update_statistics=update_statistics,
        )
        return self._downsample(x2), self._downsample(x1) + fx2

    def _inverse(self, outputs, training=None, dropout_seed=None):
        self._check_halves(
            outputs, (self.out_channels, self.out_channels), "(y1, y2)"
        )
        y1, y2 = outputs
        x2 = self._residual_input(y1)
        fx2 = self._coupling_term(
            x2, training=training, dropout_seed=dropout_seed
        )
        return self._unpad((self._upsample(y2 - fx2), x2))

    def recompute(self, inputs, training=True, dropout_seed=None):
        # Straight to `_forward`: the block is built by the first call, and
        # Keras's `__call__` refuses tensor and bool keyword arguments mixed.
        return self._forward(
            inputs,
            training=training,
            dropout_seed=dropout_seed,
            update_statistics=False,
        )

    def reconstruct_and_backprop(
        self, outputs, output_gradients, training=True, dropout_seed=None
    ):
        # RevNet's backward pass (Gomez et al. 2017, Algorithm 1): F is
        # evaluated once, both to rebuild x1 and to take its vector-Jacobian
        # product, without updating the BatchNorm statistics a second time.
        y1, y2 = outputs
        dy1, dy2 = output_gradients
        x2 = self._residual_input(y1)
        variables = self.residual.trainable_variables
        with tf.GradientTape() as tape:
            tape.watch(x2)
            fx2 = self._coupling_term(
                x2,
                training=training,
                dropout_seed=dropout_seed,
                update_statistics=False,
            )
        dx2, variable_gradients = tape.gradient(
            fx2,
            (x2, variables),
            output_gradients=dy2,
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )
        x1 = self._upsample(y2 - fx2)
        # y1 = S(x2) and y2 = S(x1) + F(x2); S is a permutation, S^T = S^-1.
        dx1 = self._upsample(dy2)
        dx2 = dx2 + self._upsample(dy1)
        # The padding's transpose drops the padded channels, like its inverse.
        inputs = self._unpad((x1, x2))
        input_gradients = self._unpad((dx1, dx2))
        return inputs, input_gradients, variable_gradients

    def _coupling_term(self, x2, **kwargs):
        """`F(x2)` as the coupling adds it: in the stream's dtype and grid."""
        fx2 = keras.ops.cast(self.residual(x2, **kwargs), self.variable_dtype)
        if is_mixed(self.dtype_policy):
            fx2 = round_to_grid(fx2)
        return fx2

    def _residual_input(self, y1):
        """Recovers F's input x2 from y1 = S(x2), exactly zero where padded.

        A reconstructed y1 carries rounding errors from the blocks above; on
        the padded channels, which are zero by construction, F in training
        mode would normalise these errors by their own tiny variance.
        Projecting onto the image of the padding removes them.
        """
        x2 = self._upsample(y1)
        if self.padding is None:
            return x2
        # Channels of x2 that hold input data; the rest is padding.
        data = max(self.in_channels - self.out_channels, 0)
        return keras.ops.concatenate(
            [x2[..., :data], keras.ops.zeros_like(x2[..., data:])], axis=-1
        )

    def _downsample(self, x):
        return x if self.downsampling is None else self.downsampling(x)

    def _upsample(self, x):
        if self.downsampling is None:
            return x
        return self.downsampling.inverse(x)

    def _unpad(self, halves):
        if self.padding is None:
            return tuple(halves)
        return split_channels(self.padding.inverse(merge_channels(halves)))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "in_channels": self.in_channels,
                "out_channels": self.out_channels,
                "strides": self.strides,
                "preactivate": self.preactivate,
                "kernel_sizes": list(self.kernel_sizes),
                "bottleneck_divisor": self.bottleneck_divisor,
                "dropout_rate": self.dropout_rate,
                "affine": self.affine,
                "batch_norm_momentum": self.batch_norm_momentum,
                "batch_norm_epsilon": self.batch_norm_epsilon,
                "synchronized_batch_norm": self.synchronized_batch_norm,
                "unbiased_moving_variance": self.unbiased_moving_variance,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "kernel_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
                "seed": self.seed,
            }
        )
        return config
