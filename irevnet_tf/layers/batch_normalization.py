"""BatchNormalization for i-RevNet: recomputable, PyTorch's update, fused."""

import math

import keras
import tensorflow as tf

from irevnet_tf.layers.xla import in_xla_context

_FUSED_DTYPES = ("float16", "bfloat16", "float32")

# `_folded_training` folds pixels into rows of this many values. Measured
# forward and backward, batch 32 at 32x32 pixels: 4 channels take 0.85 ms
# folded to 32 or 64, 1.1 ms to 256 and 1.2 ms fused; 8 channels are faster
# fused.
_FOLDED_WIDTH = 64
_MAX_FOLDED_CHANNELS = 4


@keras.saving.register_keras_serializable(package="irevnet_tf")
class BatchNormalization(keras.layers.BatchNormalization):
    """Keras `BatchNormalization` with four changes for i-RevNet.

    1. An `update_statistics` call argument. Memory-saving backprop
       recomputes every `F` in training mode during the backward pass. The
       recomputation must normalise with the batch statistics exactly as the
       forward pass did, but must not move the moving mean and variance a
       second time. `update_statistics=False` does that, with the same
       arithmetic as the forward pass, so the two are bit-identical.
    2. `unbiased_moving_variance`: PyTorch's `BatchNorm2d` (the authors'
       code) moves its running variance towards the unbiased batch variance,

           moving_variance <- momentum * moving_variance
                              + (1 - momentum) * n / (n - 1) * variance

       with `n` the values per channel in the batch (all replicas' with
       `synchronized=True`); Keras moves it towards the biased `variance`.
       Both normalise with the biased one. The difference is small per
       step but stays in the moving variance, so inference after training
       differs (by 5e-4 to 3e-3 relative in the logits of small models).
    3. Training mode on 4-D float32/float16/bfloat16 inputs without
       `synchronized` statistics uses TensorFlow's fused kernel
       (`FusedBatchNormV3`, is_training=True) and its registered gradient:
       one op each way instead of Keras's separate moments, normalisation
       and their many gradient ops. Inputs with at most 4 channels (the
       first stage of the CIFAR models) are the exception: the fused CPU
       kernels handle 4 channels about 4 times slower per value than 64,
       so they are normalised with their pixels folded into 64-wide rows
       (`_folded_training`). Other inputs (float64, masks, synchronised
       statistics) take Keras's arithmetic.
    4. Inference on such inputs uses the fused kernel too
       (is_training=False), which TensorFlow's graph optimiser can fuse with
       the convolution before it: 15% faster forward and inverse passes on
       the CPU. Keras's own layer computes the same affine map as separate
       multiplies and adds.

    Args:
        unbiased_moving_variance: bool. True updates the moving variance
            with the unbiased batch variance, as PyTorch does; False (the
            default, and what layers saved without this argument do) with
            the biased one, as Keras does.
        **kwargs: the arguments of `keras.layers.BatchNormalization`.

    Call arguments:
        inputs, training, mask: as for `keras.layers.BatchNormalization`.
        update_statistics: bool. If False, training mode normalises with the
            batch statistics without updating the moving ones.
    """

    def __init__(self, unbiased_moving_variance=False, **kwargs):
        super().__init__(**kwargs)
        self.unbiased_moving_variance = unbiased_moving_variance

    def call(self, inputs, training=None, mask=None, update_statistics=True):
        batch_statistics = training and self.trainable
        if not batch_statistics:
            if self._fusable(inputs, mask):
                return self._fused_inference(inputs)
            return super().call(inputs, training=training, mask=mask)
        if mask is not None or self.renorm:
            if update_statistics and not self.unbiased_moving_variance:
                return super().call(inputs, training=training, mask=mask)
            raise ValueError(
                "`update_statistics=False` and `unbiased_moving_variance` "
                "support neither masks nor renorm. Received: "
                f"mask={'None' if mask is None else 'a tensor'}, "
                f"renorm={self.renorm}"
            )
        if self._fusable(inputs, mask) and not self.synchronized:
            fold = self._fold(inputs)
            if fold > 1:
                outputs, mean, variance = self._folded_training(inputs, fold)
                unbiased = False
            else:
                outputs, mean, variance = self._fused_training(inputs)
                unbiased = True
        else:
            outputs, mean, variance = self._unfused_training(inputs)
            unbiased = False
        if update_statistics:
            self._update_moving_statistics(inputs, mean, variance, unbiased)
        return keras.ops.cast(outputs, self.compute_dtype)

    def _fusable(self, inputs, mask):
        return (
            mask is None
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and keras.backend.standardize_dtype(inputs.dtype) in _FUSED_DTYPES
        )

    def _scale_and_offset(self):
        ones = keras.ops.ones_like(self.moving_mean)
        scale = ones if self.gamma is None else self.gamma
        offset = keras.ops.zeros_like(ones) if self.beta is None else self.beta
        return scale, offset

    def _fused_inference(self, inputs):
        scale, offset = self._scale_and_offset()
        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs,
            scale=scale,
            offset=offset,
            mean=self.moving_mean,
            variance=self.moving_variance,
            epsilon=self.epsilon,
            is_training=False,
        )
        return keras.ops.cast(outputs, self.compute_dtype)

    def _fused_training(self, inputs):
        """Normalised outputs, batch mean and unbiased batch variance."""
        scale, offset = self._scale_and_offset()
        # XLA computes the batch variance in one pass, E[x^2] - E[x]^2,
        # which loses every digit when a channel's mean is large against its
        # spread (measured: 150% error at mean/std = 1000 in float32), and
        # i-RevNet has such channels (zero padding plus F(0)). Normalisation
        # is invariant to a constant shift: subtracting one value of each
        # channel makes the one-pass variance accurate, and the shift needs
        # no gradient. TensorFlow's CPU kernels (Eigen and oneDNN) compute
        # the variance in two passes and need no shift: it cost 3% of the
        # CPU training step. GPUs keep it, untested here.
        shifted = in_xla_context() or tf.config.list_logical_devices("GPU")
        shift = tf.stop_gradient(inputs[:1, :1, :1, :]) if shifted else None
        # Normalises with the biased variance; returns the unbiased one (on
        # the CPU, under XLA and with oneDNN alike).
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs if shift is None else inputs - shift,
            scale=scale,
            offset=offset,
            epsilon=self.epsilon,
            is_training=True,
        )
        if shift is not None:
            shift = keras.ops.cast(keras.ops.reshape(shift, [-1]), mean.dtype)
            mean = mean + shift
        return outputs, mean, variance

    def _fold(self, inputs):
        """How many pixels `_folded_training` folds into one row; 1: none.

        A divisor of the static pixel count per image, so that every
        image's pixels fill whole rows.
        """
        _, height, width, channels = inputs.shape
        if channels > _MAX_FOLDED_CHANNELS or height is None or width is None:
            return 1
        return math.gcd(height * width, _FOLDED_WIDTH // channels)

    def _folded_training(self, inputs, fold):
        """Normalised outputs, batch mean and biased batch variance.

        For few channels: `fold` neighbouring pixels (see `_fold`) become
        one row of `fold * channels` values, so that the sums over the
        batch run over 64-wide rows, which the CPU reduces fast, and then
        over the `fold` copies of each channel. The variance takes two
        passes (accurate for channels with a large mean, see
        `_fused_training`), in float32 for half-precision inputs, as the
        fused kernel computes.
        """
        channels = inputs.shape[-1]
        rows = keras.ops.reshape(
            keras.ops.cast(inputs, "float32"), [-1, fold * channels]
        )
        count = keras.ops.cast(keras.ops.shape(rows)[0] * fold, "float32")

        def channel_mean(values):
            column_sums = keras.ops.sum(values, axis=0)
            sums = keras.ops.sum(
                keras.ops.reshape(column_sums, [fold, channels]), axis=0
            )
            return sums / count

        def per_column(per_channel):
            return keras.ops.tile(per_channel, [fold])

        mean = channel_mean(rows)
        centred = rows - per_column(mean)
        variance = channel_mean(keras.ops.square(centred))
        scale, offset = self._scale_and_offset()
        multiplier = keras.ops.cast(scale, "float32") * keras.ops.rsqrt(
            variance + self.epsilon
        )
        outputs = centred * per_column(multiplier) + per_column(
            keras.ops.cast(offset, "float32")
        )
        outputs = keras.ops.reshape(outputs, keras.ops.shape(inputs))
        return outputs, mean, variance

    def _unfused_training(self, inputs):
        """Normalised outputs, batch mean and biased batch variance.

        The arithmetic of `keras.layers.BatchNormalization.call` in training
        mode, term for term, so that a recomputation with
        `update_statistics=False` is bit-identical to Keras's forward pass.
        """
        compute_dtype = keras.backend.result_type(inputs.dtype, "float32")
        inputs = keras.ops.cast(inputs, compute_dtype)
        mean, variance = keras.ops.moments(
            inputs,
            axes=self._reduction_axes_of(inputs),
            synchronized=self.synchronized,
        )
        outputs = keras.ops.batch_normalization(
            x=inputs,
            mean=mean,
            variance=variance,
            axis=self.axis,
            offset=self._cast_or_none(self.beta, compute_dtype),
            scale=self._cast_or_none(self.gamma, compute_dtype),
            epsilon=self.epsilon,
        )
        return outputs, mean, variance

    def _update_moving_statistics(self, inputs, mean, variance, unbiased):
        """Keras's moving average, of the variance the option asks for.

        `unbiased` says which batch variance `variance` is.
        """
        if unbiased != self.unbiased_moving_variance:
            count = self._count(inputs, variance.dtype)
            # n = 1 has no unbiased variance; TensorFlow's fused kernels
            # divide by max(n - 1, 1) then, and so does this.
            ratio = count / keras.ops.maximum(count - 1, 1)
            variance = variance / ratio if unbiased else variance * ratio
        for moving, batch in (
            (self.moving_mean, mean),
            (self.moving_variance, variance),
        ):
            # Keras's update, term for term.
            moving.assign(
                keras.ops.cast(moving, batch.dtype) * self.momentum
                + batch * (1.0 - self.momentum)
            )

    def _reduction_axes_of(self, inputs):
        rank = len(inputs.shape)
        return [i for i in range(rank) if i != self.axis % rank]

    def _count(self, inputs, dtype):
        """Values per channel in the batch (of all replicas if synced)."""
        shape = keras.ops.shape(inputs)
        count = 1
        for axis in self._reduction_axes_of(inputs):
            count = count * shape[axis]
        count = keras.ops.cast(count, dtype)
        context = tf.distribute.get_replica_context()
        if (
            self.synchronized
            and context is not None
            and context.num_replicas_in_sync > 1
        ):
            count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
        return count

    @staticmethod
    def _cast_or_none(variable, dtype):
        return None if variable is None else keras.ops.cast(variable, dtype)

    def get_config(self):
        config = super().get_config()
        config["unbiased_moving_variance"] = self.unbiased_moving_variance
        return config
