"""i-RevNet classifier: the invertible backbone plus a linear head."""

import keras

from irevnet_tf.layers.batch_normalization import BatchNormalization
from irevnet_tf.layers.initializers import default_kernel_initializer
from irevnet_tf.layers.memory_saving import resolve_jit_compile
from irevnet_tf.layers.stream_precision import stream_dtype_policy
from irevnet_tf.models.irevnet import IRevNet
from irevnet_tf.models.irevnet_presets import preset_kwargs
from irevnet_tf.models.irevnet_presets import split_head


@keras.saving.register_keras_serializable(package="irevnet_tf")
class IRevNetClassifier(keras.Model):
    """An i-RevNet backbone followed by the authors' classification head.

        logits = Dense(GlobalAveragePool(ReLU(BatchNorm(Phi(x)))))

    Everything up to `Phi(x)` is invertible; the head is the "final
    projection onto the classes" and is not. `classifier(images)` returns the
    logits, so `compile` and `fit` work as for any Keras classifier;
    `features` and `inverse` give the invertible representation and its
    inverse. Images of any size that the backbone's strides divide work
    (global average pooling replaces the authors' fixed-size pooling).

    Precision: under a mixed policy the backbone keeps the images and
    features in float32 (see `IRevNet`); the head's BatchNorm and pooling
    compute in the policy's compute dtype and the final `Dense` layer in
    float32, so the logits, and the loss computed from them, are float32.
    `model.fit` under `"mixed_float16"` scales the loss
    (`keras.optimizers.LossScaleOptimizer`, which `compile` applies).

    Args:
        backbone: an `IRevNet`.
        num_classes: int, number of classes.
        head_batch_norm_momentum: float, momentum of the head's BatchNorm in
            Keras convention; 0.1 is the authors' PyTorch momentum 0.9.
        **kwargs: standard `keras.Model` arguments.

    Call arguments:
        inputs: images `(batch, H, W, C)`.
        training: bool or None.

    Returns:
        Logits `(batch, num_classes)`.

    Example:

    >>> model = IRevNetClassifier.from_preset("cifar10")
    >>> model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(
    ...     from_logits=True), metrics=["accuracy"])
    >>> model.fit(images, labels)
    >>> features = model.features(images)     # (n, 8, 8, 512)
    >>> restored = model.inverse(features)    # == images

    Reference:
        i-RevNet: https://openreview.net/pdf?id=HJsjkMb0Z, section 3.
    """

    def __init__(
        self, backbone, num_classes, head_batch_norm_momentum=0.1, **kwargs
    ):
        if not isinstance(backbone, IRevNet):
            raise ValueError(
                "`backbone` must be an IRevNet. "
                f"Received: backbone={backbone!r}"
            )
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(
                "`num_classes` must be a positive integer. "
                f"Received: num_classes={num_classes!r}"
            )
        super().__init__(**kwargs)
        self.backbone = backbone
        self.num_classes = num_classes
        self.head_batch_norm_momentum = head_batch_norm_momentum
        self.head_norm = BatchNormalization(
            momentum=head_batch_norm_momentum,
            epsilon=backbone.batch_norm_epsilon,
            synchronized=backbone.synchronized_batch_norm,
            unbiased_moving_variance=backbone.unbiased_moving_variance,
            dtype=self.dtype_policy,
            name="head_norm",
        )
        self.pool = keras.layers.GlobalAveragePooling2D(
            dtype=self.dtype_policy, name="pool"
        )
        self.classifier = keras.layers.Dense(
            num_classes,
            kernel_initializer=default_kernel_initializer(),
            # float32 logits under a mixed policy, for the softmax and loss.
            dtype=stream_dtype_policy(self.dtype_policy),
            name="classifier",
        )
        feature_shape = (None,) + backbone.feature_shape
        self.head_norm.build(feature_shape)
        self.classifier.build((None, feature_shape[-1]))
        self.built = True

    @property
    def input_dtype(self):
        # Images reach the backbone in float32, not the compute dtype.
        return self.variable_dtype

    def call(self, inputs, training=None):
        return self.logits_from_features(
            self.backbone(inputs, training=training), training=training
        )

    def features(self, images, training=False):
        """The invertible representation `Phi(x)` of `images`."""
        return self.backbone(images, training=training)

    def inverse(self, features, training=False):
        """Images from features: `Phi^-1`. Exact in inference mode."""
        return self.backbone.inverse(features, training=training)

    def logits_from_features(self, features, training=False):
        """The head alone: features to logits."""
        x = keras.ops.relu(self.head_norm(features, training=training))
        return self.classifier(self.pool(x))

    @classmethod
    def from_preset(cls, preset, **overrides):
        """Builds a classifier from a preset name and constructor overrides.

        Overrides may name any argument of `IRevNet` or of this class, for
        example `from_preset("cifar10", num_classes=100, dropout_rate=0.0)`.
        """
        kwargs, head = split_head(preset_kwargs(preset, overrides))
        dtype = kwargs.get("dtype")
        backbone = IRevNet(**kwargs)
        return cls(backbone, dtype=dtype, **head)

    def compile(self, *args, jit_compile="auto", **kwargs):
        memory_saving = self.backbone.memory_saving
        jit_compile = resolve_jit_compile(jit_compile, memory_saving)
        super().compile(*args, jit_compile=jit_compile, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": keras.saving.serialize_keras_object(self.backbone),
                "num_classes": self.num_classes,
                "head_batch_norm_momentum": self.head_batch_norm_momentum,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(
            config["backbone"]
        )
        return cls(**config)
