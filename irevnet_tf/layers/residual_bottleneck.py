"""The residual function F of an i-RevNet block."""

import keras
import tensorflow as tf

from irevnet_tf.layers.batch_normalization import BatchNormalization
from irevnet_tf.layers.initializers import default_kernel_initializer

_KERNEL_SIZES = ((3, 3, 3), (1, 3, 1))


@keras.saving.register_keras_serializable(package="irevnet_tf")
class ResidualBottleneck(keras.layers.Layer):
    """The bottleneck `F`: three times BatchNorm, ReLU and convolution.

        F(x) = conv3(relu(bn3(dropout(conv2(relu(bn2(conv1(relu(bn1(x))))))))))

    The first convolution carries the stride; the middle width is
    `out_channels // bottleneck_divisor`. Convolutions have no bias and use
    symmetric zero padding of `kernel_size // 2` pixels on every side, which
    is PyTorch's `padding=1` for 3x3 kernels (Keras `padding="same"` pads
    asymmetrically at stride 2 and would compute a different function).

    `F` need not be invertible: the i-RevNet block only ever adds it.

    Args:
        out_channels: int, channels of the output.
        strides: 1 or 2, stride of the first convolution.
        kernel_sizes: three odd ints. `(3, 3, 3)` as in the authors' code,
            `(1, 3, 1)` as described in the paper.
        bottleneck_divisor: int, the middle width is
            `out_channels // bottleneck_divisor` (the authors' `mult`).
        preactivate: bool. If False, the leading BatchNorm and ReLU are left
            out, as in the network's very first block.
        dropout_rate: float in [0, 1), dropout before the last BatchNorm.
        affine: bool, whether BatchNorm learns a scale and an offset.
        batch_norm_momentum: float, Keras convention (PyTorch's momentum 0.1
            is Keras's 0.9).
        batch_norm_epsilon: float (PyTorch's default 1e-5).
        synchronized_batch_norm: bool, synchronise batch statistics across
            replicas under a `tf.distribute` strategy.
        unbiased_moving_variance: bool, BatchNorm moves its variance towards
            the unbiased batch variance, as PyTorch (the authors' code) does;
            False for Keras's biased one (see `BatchNormalization`).
        kernel_initializer: initializer of the convolution kernels; None
            for PyTorch's default, which the authors trained with.
        kernel_regularizer: optional regularizer of the convolution kernels.
        seed: optional int, seed of the dropout masks drawn when no
            `dropout_seed` is given. Inside an `IRevNet`, which passes a
            `dropout_seed` at every training call, the layer has no seed
            generator and `seed` is unused.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        inputs: tensor `(batch, H, W, C)`.
        training: bool or None, BatchNorm and dropout mode.
        dropout_seed: optional int tensor of shape `(2,)`, the seed of the
            dropout mask; the same seed gives the same mask.
        update_statistics: bool. False makes training mode leave the
            BatchNorm moving statistics alone (for recomputation).

    Returns:
        Tensor `(batch, H / strides, W / strides, out_channels)`.

    Reference:
        i-RevNet: https://openreview.net/pdf?id=HJsjkMb0Z, section 3.2.
    """

    def __init__(
        self,
        out_channels,
        strides=1,
        kernel_sizes=(3, 3, 3),
        bottleneck_divisor=4,
        preactivate=True,
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
        kernel_sizes = tuple(kernel_sizes)
        if len(kernel_sizes) != 3 or any(
            not isinstance(k, int) or k < 1 or k % 2 == 0 for k in kernel_sizes
        ):
            raise ValueError(
                "`kernel_sizes` must be three odd positive integers, for "
                f"example {_KERNEL_SIZES}. "
                f"Received: kernel_sizes={kernel_sizes}"
            )
        if strides not in (1, 2):
            raise ValueError(
                f"`strides` must be 1 or 2. Received: strides={strides!r}"
            )
        if not isinstance(bottleneck_divisor, int) or bottleneck_divisor < 1:
            raise ValueError(
                "`bottleneck_divisor` must be a positive integer. "
                f"Received: bottleneck_divisor={bottleneck_divisor!r}"
            )
        if (
            not isinstance(out_channels, int)
            or out_channels < bottleneck_divisor
        ):
            raise ValueError(
                "`out_channels` must be an integer >= bottleneck_divisor="
                f"{bottleneck_divisor}. Received: out_channels={out_channels!r}"
            )
        if not 0.0 <= dropout_rate < 1.0:
            raise ValueError(
                "`dropout_rate` must be in [0, 1). "
                f"Received: dropout_rate={dropout_rate!r}"
            )
        seeds_from_caller = kwargs.pop("_dropout_seeds_from_caller", False)
        super().__init__(**kwargs)
        self.out_channels = out_channels
        self.strides = strides
        self.kernel_sizes = kernel_sizes
        self.bottleneck_divisor = bottleneck_divisor
        self.preactivate = preactivate
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

        middle = out_channels // bottleneck_divisor
        k1, k2, k3 = kernel_sizes
        self.bn1 = self._batch_norm("bn1") if preactivate else None
        self.conv1 = self._conv(middle, k1, strides, "conv1")
        self.bn2 = self._batch_norm("bn2")
        self.conv2 = self._conv(middle, k2, 1, "conv2")
        self.seed_generator = (
            keras.random.SeedGenerator(seed)
            if dropout_rate > 0 and not seeds_from_caller
            else None
        )
        self.bn3 = self._batch_norm("bn3")
        self.conv3 = self._conv(out_channels, k3, 1, "conv3")

    def _batch_norm(self, name):
        return BatchNormalization(
            momentum=self.batch_norm_momentum,
            epsilon=self.batch_norm_epsilon,
            center=self.affine,
            scale=self.affine,
            synchronized=self.synchronized_batch_norm,
            unbiased_moving_variance=self.unbiased_moving_variance,
            dtype=self.dtype_policy,
            name=name,
        )

    def _conv(self, filters, kernel_size, strides, name):
        return keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            # Stride 2 pads explicitly in `call`; at stride 1 "same" already
            # is the symmetric padding of an odd kernel.
            padding="valid" if strides == 2 else "same",
            use_bias=False,
            kernel_initializer=self.kernel_initializer,
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, input_shape):
        batch, height, width, channels = input_shape
        if self.bn1 is not None:
            self.bn1.build(input_shape)
        # Spatial sizes do not matter to the weights.
        self.conv1.build((batch, None, None, channels))
        middle = self.conv1.filters
        for layer in (self.bn2, self.conv2, self.bn3, self.conv3):
            layer.build((batch, None, None, middle))

    def call(
        self, inputs, training=None, dropout_seed=None, update_statistics=True
    ):
        def norm_relu(norm, x):
            x = norm(x, training=training, update_statistics=update_statistics)
            return keras.ops.relu(x)

        x = inputs
        if self.bn1 is not None:
            x = norm_relu(self.bn1, x)
        if self.strides == 2:
            p = self.kernel_sizes[0] // 2
            x = keras.ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])
        x = self.conv1(x)
        x = self.conv2(norm_relu(self.bn2, x))
        if training and self.dropout_rate > 0:
            # Stateless dropout: the same seed gives the same mask, which
            # memory-saving backprop needs to recompute F exactly.
            if dropout_seed is None:
                if self.seed_generator is None:
                    raise ValueError(
                        f"{self.path} draws its dropout masks from the seeds "
                        "of its IRevNet: call the IRevNet, or pass "
                        "`dropout_seed`. Received: dropout_seed=None"
                    )
                dropout_seed = self.seed_generator.next()
            x = tf.nn.experimental.stateless_dropout(
                x, self.dropout_rate, seed=dropout_seed
            )
        return self.conv3(norm_relu(self.bn3, x))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "out_channels": self.out_channels,
                "strides": self.strides,
                "kernel_sizes": list(self.kernel_sizes),
                "bottleneck_divisor": self.bottleneck_divisor,
                "preactivate": self.preactivate,
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
