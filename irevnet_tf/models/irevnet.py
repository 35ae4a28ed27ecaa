"""The invertible i-RevNet backbone: images to features and back."""

import keras

from irevnet_tf.layers import memory_saving as chain
from irevnet_tf.layers.channel_split import ChannelMerge
from irevnet_tf.layers.channel_split import ChannelSplit
from irevnet_tf.layers.initializers import default_kernel_initializer
from irevnet_tf.layers.invertible_downsampling import InvertibleDownsampling
from irevnet_tf.layers.invertible_layer import InvertibleLayer
from irevnet_tf.layers.irevnet_block import IRevNetBlock
from irevnet_tf.layers.standardization import Standardization
from irevnet_tf.layers.stream_precision import is_mixed
from irevnet_tf.layers.stream_precision import round_to_grid
from irevnet_tf.layers.stream_precision import stream_dtype_policy
from irevnet_tf.models.irevnet_presets import preset_kwargs
from irevnet_tf.models.irevnet_presets import split_head


@keras.saving.register_keras_serializable(package="irevnet_tf")
class IRevNet(InvertibleLayer, keras.Model):
    """The invertible i-RevNet backbone `Phi`.

    Pixel images are standardised per channel (if given statistics), go
    through an optional invertible down-sampling, are split into two channel
    halves, pass a stack of `IRevNetBlock`s and are merged again:

        Phi(x) = M(B_J(... B_1(S(D(N(x))))))
        Phi^-1 = N^-1 D^-1 S^-1 B_1^-1 ... M^-1

    The standardisation `N(x) = (x - input_mean) / input_std` is part of the
    model, so the model takes and returns pixels: `backbone(pixels)` and
    `backbone.inverse(features)` (pixels again), and so do SavedModels
    exported from it.

    Nothing is discarded: `backbone.inverse(backbone(x))` returns `x` up to
    float rounding. Inversion is exact only in inference mode (BatchNorm).

    Precision: under a float32 (or float64) policy everything computes in
    float32 (float64). Under a mixed policy (`"mixed_float16"`,
    `"mixed_bfloat16"`) only the residual functions `F` of the blocks, where
    nearly all the arithmetic is, compute in float16 or bfloat16; the stream
    that the inverse reconstructs (the halves, the coupling's additions and
    subtractions, the down-sampling, the padding, split and merge) stays in
    float32, and so do the images and features. A float32 stream alone is
    not enough: the inverse rebuilds each `x2` with float32 rounding errors,
    `F` rounds that input to float16 or bfloat16, and where the two land on
    different sides of a rounding boundary `F` returns a visibly different
    value, an error that grows from block to block (measured on `cifar10`:
    inverse errors of 5e-4 under float16, 3e-3 under bfloat16). So under a
    mixed policy the stream is fixed point: the input is rounded to a
    multiple of 2**-20 (at most 4.8e-7 per pixel) and so is every `F(x2)`
    before it is added, so that float32 adds and subtracts exactly and the
    inverse recomputes every `F` from bit-identical inputs. Inversion and
    memory-saving gradients stay as exact as in float32 while the stream's
    values stay below 16 in magnitude (beyond, the additions round again
    and the inverse degrades to the float32 stream's error). Under float32
    and float64 policies nothing is rounded.
    `irevnet_tf.layers.stream_precision` gives the reasons and
    measurements.

    Stage `s` has `stage_depths[s]` blocks of width `stage_filters[s]` (the
    channels of each half); its first block has stride `stage_strides[s]`.
    The features have `2 * stage_filters[-1]` channels and a spatial size
    divided by `initial_block_size * 2**(number of stride-2 stages)`.

    Args:
        stage_depths: list of ints, blocks per stage (the authors' `nBlocks`).
        stage_filters: list of ints, channels of each half per stage
            (`nChannels`).
        stage_strides: list of 1 or 2, stride of each stage's first block
            (`nStrides`).
        image_shape: `(height, width, channels)`; height and width may be
            None. Channels fix the weights; given sizes are validated.
        initial_block_size: int, block size of the initial invertible
            down-sampling; 1 for none (the authors' `init_ds` is
            `2 * log2(initial_block_size)`).
        kernel_sizes: kernel sizes of `F`, `(3, 3, 3)` as in the authors'
            code or `(1, 3, 1)` as in the paper.
        bottleneck_divisor: int, `F`'s middle width is its output width
            divided by this (the authors' `mult`).
        dropout_rate: float, dropout inside every `F`.
        affine: bool, whether the BatchNorms inside `F` learn scale and offset
            (the authors' `affineBN`).
        batch_norm_momentum: float, Keras convention (PyTorch's 0.1 is 0.9).
        batch_norm_epsilon: float, 1e-5 as in PyTorch.
        synchronized_batch_norm: bool, synchronise BatchNorm statistics across
            replicas under a distribution strategy.
        unbiased_moving_variance: bool. True moves the BatchNorm variances
            towards the unbiased batch variance, as PyTorch (the authors'
            code) does; False (the default, and what models saved without
            this argument do) towards the biased one, as Keras does.
        kernel_initializer: initializer of the convolution kernels; None
            for PyTorch's default, which the authors trained with.
        kernel_regularizer: optional regularizer of the convolution kernels.
        seed: optional int, seed of the dropout masks.
        memory_saving: bool. If True (the default), training recomputes
            activations from the exact inverse in the backward pass instead
            of storing them (`tf.custom_gradient`), so activation memory does
            not grow with depth. False uses plain autodiff. Either way the
            function and its gradients are the same.
        input_mean: optional float or list of floats, one per image
            channel: the pixel mean subtracted first (a `Standardization`
            layer). None (the default) subtracts nothing.
        input_std: optional positive float or list of floats, one per
            channel: what the centred pixels are divided by. None divides
            by 1. With neither, images enter the blocks unchanged (the
            models saved before these arguments existed).
        **kwargs: standard `keras.Model` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: pixel images `(batch, H, W, C)` (the scale that
            `input_mean` and `input_std` describe, [0, 1] in this
            project's pipelines); with `inverse=True`, features.
        inverse: bool, map features back to images.
        training: bool or None, BatchNorm and dropout mode.

    Returns:
        Features `(batch, H / f, W / f, 2 * stage_filters[-1])`, or images.

    Example:

    >>> backbone = IRevNet.from_preset("cifar10")
    >>> features = backbone(images)             # (n, 8, 8, 512)
    >>> restored = backbone.inverse(features)   # (n, 32, 32, 3)

    Reference:
        i-RevNet: https://openreview.net/pdf?id=HJsjkMb0Z, section 3.
    """

    def __init__(
        self,
        stage_depths,
        stage_filters,
        stage_strides,
        image_shape=(None, None, 3),
        initial_block_size=2,
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
        memory_saving=True,
        input_mean=None,
        input_std=None,
        **kwargs,
    ):
        stage_depths = list(stage_depths)
        stage_filters = list(stage_filters)
        stage_strides = list(stage_strides)
        image_shape = tuple(image_shape)
        input_mean, input_std = _validate_statistics(input_mean, input_std)
        _validate_architecture(
            stage_depths,
            stage_filters,
            stage_strides,
            image_shape,
            initial_block_size,
        )
        super().__init__(**kwargs)
        self.stage_depths = stage_depths
        self.stage_filters = stage_filters
        self.stage_strides = stage_strides
        self.image_shape = image_shape
        self.initial_block_size = initial_block_size
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
        self.memory_saving = memory_saving
        self.input_mean = input_mean
        self.input_std = input_std
        # One draw per training step; every block derives its own mask seed
        # from it (`memory_saving.step_call_kwargs`), so a recomputation can
        # replay the masks exactly. The blocks own no seed generators.
        self.seed_generator = (
            keras.random.SeedGenerator(seed) if dropout_rate > 0 else None
        )

        stream = stream_dtype_policy(self.dtype_policy)
        # Absent, not an identity layer, without statistics: the chain (and
        # with it each block's dropout seed, `step_call_kwargs`) stays that
        # of the models saved before the statistics existed.
        self.standardization = (
            Standardization(
                input_mean,
                input_std,
                dtype=stream,
                name="standardization",
            )
            if input_mean is not None
            else None
        )
        self.initial_downsampling = (
            InvertibleDownsampling(
                initial_block_size, dtype=stream, name="initial_downsampling"
            )
            if initial_block_size > 1
            else None
        )
        self.split = ChannelSplit(dtype=stream, name="split")
        self.blocks = []
        in_channels = image_shape[-1] * initial_block_size**2
        for stage, (depth, filters, stride) in enumerate(
            zip(stage_depths, stage_filters, stage_strides)
        ):
            for index in range(depth):
                try:
                    block = IRevNetBlock(
                        in_channels,
                        filters,
                        strides=stride if index == 0 else 1,
                        preactivate=bool(self.blocks),
                        kernel_sizes=kernel_sizes,
                        bottleneck_divisor=bottleneck_divisor,
                        dropout_rate=dropout_rate,
                        affine=affine,
                        batch_norm_momentum=batch_norm_momentum,
                        batch_norm_epsilon=batch_norm_epsilon,
                        synchronized_batch_norm=synchronized_batch_norm,
                        unbiased_moving_variance=unbiased_moving_variance,
                        kernel_initializer=kernel_initializer,
                        kernel_regularizer=kernel_regularizer,
                        dtype=self.dtype_policy,
                        name=f"block{len(self.blocks)}",
                        _dropout_seeds_from_caller=True,
                    )
                except ValueError as error:
                    raise ValueError(
                        f"Stage {stage} (stage_filters[{stage}]={filters}, "
                        f"stage_strides[{stage}]={stride}) cannot follow "
                        f"{in_channels} channels: {error}"
                    ) from None
                self.blocks.append(block)
                in_channels = 2 * filters
        self.merge = ChannelMerge(dtype=stream, name="merge")
        self.build((None,) + image_shape)

    @property
    def invertible_layers(self):
        """The chain `[N], [D], S, B_1, ..., B_J, M` in forward order."""
        head = [
            layer
            for layer in (self.standardization, self.initial_downsampling)
            if layer is not None
        ]
        return head + [self.split] + self.blocks + [self.merge]

    @property
    def downsampling_factor(self):
        """How much the spatial size shrinks from images to features."""
        return self.initial_block_size * 2 ** self.stage_strides.count(2)

    @property
    def feature_shape(self):
        """`(height, width, channels)` of the features (None if unknown)."""
        height, width, _ = self.image_shape
        factor = self.downsampling_factor
        return (
            None if height is None else height // factor,
            None if width is None else width // factor,
            2 * self.stage_filters[-1],
        )

    def build(self, input_shape):
        # Builds every layer by running the forward pass symbolically.
        x = keras.KerasTensor(input_shape, dtype=self.variable_dtype)
        for layer in self.invertible_layers:
            x = layer(x)
        self.built = True

    def _forward(self, inputs, training=None):
        x, layers = self._to_stream(inputs)
        return chain.call_chain(
            layers,
            x,
            training=training,
            memory_saving=self.memory_saving,
            seed_generator=self.seed_generator,
        )

    def _inverse(self, outputs, training=None):
        return chain.invert_chain(
            self.invertible_layers,
            outputs,
            training=training,
            seed_generator=self.seed_generator,
        )

    def block_outputs(self, images, training=False):
        """The representation after every block, for analysis.

        Returns:
            A list with one tensor per block, `Phi_j(x)`: the block's two
            output halves merged, `(batch, H_j, W_j, 2 * width_j)`. The last
            one equals `self(images)`.
        """
        x, layers = self._to_stream(images)
        layer_kwargs = chain.step_call_kwargs(
            layers, self.seed_generator, training
        )
        outputs = []
        for layer, kwargs in zip(layers[:-1], layer_kwargs):
            x = layer(x, training=training, **kwargs)
            if isinstance(layer, IRevNetBlock):
                outputs.append(self.merge(x, training=training))
        return outputs

    def _to_stream(self, images):
        """The chain's input and the layers still to apply to it.

        Under a mixed policy the stream starts on its fixed-point grid:
        after the standardisation (whose output would not lie on the grid
        of rounded pixels), so that every addition of the coupling is exact.
        """
        layers = self.invertible_layers
        if not is_mixed(self.dtype_policy):
            return images, layers
        if self.standardization is not None:
            images = self.standardization(images)
            layers = layers[1:]
        return round_to_grid(images), layers

    def compile(self, *args, jit_compile="auto", **kwargs):
        jit_compile = chain.resolve_jit_compile(jit_compile, self.memory_saving)
        super().compile(*args, jit_compile=jit_compile, **kwargs)

    @classmethod
    def from_preset(cls, preset, **overrides):
        """Builds a backbone from a preset name and constructor overrides."""
        backbone_kwargs, _ = split_head(preset_kwargs(preset, overrides))
        return cls(**backbone_kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "stage_depths": self.stage_depths,
                "stage_filters": self.stage_filters,
                "stage_strides": self.stage_strides,
                "image_shape": list(self.image_shape),
                "initial_block_size": self.initial_block_size,
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
                "memory_saving": self.memory_saving,
                "input_mean": self.input_mean,
                "input_std": self.input_std,
            }
        )
        return config


def _validate_statistics(input_mean, input_std):
    """`(mean, std)` as lists of floats, or `(None, None)` for identity."""
    if input_mean is None and input_std is None:
        return None, None
    try:
        layer = Standardization(
            mean=0.0 if input_mean is None else input_mean,
            std=1.0 if input_std is None else input_std,
        )
    except ValueError as error:
        raise ValueError(
            f"Invalid `input_mean` or `input_std`: {error}"
        ) from None
    return layer.mean, layer.std


def _validate_architecture(
    stage_depths, stage_filters, stage_strides, image_shape, initial_block_size
):
    lengths = {
        "stage_depths": len(stage_depths),
        "stage_filters": len(stage_filters),
        "stage_strides": len(stage_strides),
    }
    if len(set(lengths.values())) != 1 or not stage_depths:
        raise ValueError(
            "`stage_depths`, `stage_filters` and `stage_strides` must be "
            "non-empty lists of the same length. Received: "
            + ", ".join(f"{k} of length {v}" for k, v in lengths.items())
        )
    for name, values, valid in (
        ("stage_depths", stage_depths, lambda v: isinstance(v, int) and v >= 1),
        (
            "stage_filters",
            stage_filters,
            lambda v: isinstance(v, int) and v >= 1,
        ),
        ("stage_strides", stage_strides, lambda v: v in (1, 2)),
    ):
        bad = [v for v in values if not valid(v)]
        if bad:
            expected = (
                "1 or 2" if name == "stage_strides" else "positive integers"
            )
            raise ValueError(
                f"`{name}` must hold {expected}. Received: {name}={values}"
            )
    if not isinstance(initial_block_size, int) or initial_block_size < 1:
        raise ValueError(
            "`initial_block_size` must be a positive integer (1 for no "
            "initial down-sampling). "
            f"Received: initial_block_size={initial_block_size!r}"
        )
    if len(image_shape) != 3 or not (
        isinstance(image_shape[-1], int) and image_shape[-1] >= 1
    ):
        raise ValueError(
            "`image_shape` must be (height, width, channels) with a known "
            f"channel count. Received: image_shape={image_shape}"
        )
    factor = initial_block_size * 2 ** stage_strides.count(2)
    for size in image_shape[:2]:
        if size is not None and size % factor:
            raise ValueError(
                f"The image height and width must be divisible by {factor} "
                f"(initial_block_size={initial_block_size} times 2 per "
                f"stride-2 stage). Received: image_shape={image_shape}"
            )
