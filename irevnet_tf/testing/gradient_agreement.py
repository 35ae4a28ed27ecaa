"""How close a network's training gradients come to float64's.

Two float32 computations of a deep i-RevNet's gradient differ by about 1%
on the authors' CIFAR-10 layout: the network is ill-conditioned enough that
rounding in any order moves the result that much. Comparing memory saving
against plain autodiff in float32 therefore cannot tell an exact method
from a drifting one; comparing each against the float64 gradient of the
same weights can. `gradient_errors` measures that, for the tests and for
`bench/gradient_agreement.py`.
"""

import keras
import numpy as np
import tensorflow as tf

from irevnet_tf.models.irevnet_classifier import IRevNetClassifier
from irevnet_tf.models.irevnet_presets import preset_kwargs
from irevnet_tf.reconstruction_error import relative_error
from irevnet_tf.testing.test_case import randomize_batch_norm


def classifier(preset, overrides, dtype, memory_saving):
    """`IRevNetClassifier.from_preset`, dropout off.

    Dropout masks drawn in float32 and float64 differ.
    """
    return IRevNetClassifier.from_preset(
        preset,
        **dict(overrides, dropout_rate=0.0),
        memory_saving=memory_saving,
        dtype=dtype,
    )


def loss_gradients(model, images, labels):
    """The gradient of the mean cross-entropy, in training mode."""
    with tf.GradientTape() as tape:
        logits = model(images, training=True)
        loss = keras.ops.mean(
            keras.losses.sparse_categorical_crossentropy(
                labels, logits, from_logits=True
            )
        )
    return tape.gradient(loss, model.trainable_variables)


def cosine(a, b):
    a = np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in a])
    b = np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in b])
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def gradient_errors(
    preset,
    overrides=None,
    batch_size=8,
    seed=0,
    dtype="float32",
    batch_norm="random",
):
    """Each method's gradient in `dtype` against float64's, same weights.

    Args:
        preset: a preset name, as `IRevNetClassifier.from_preset` takes.
        overrides: constructor arguments that replace the preset's.
        batch_size: images in the batch.
        seed: draws the weights, BatchNorm scales and offsets, images and
            labels.
        dtype: the precision measured against float64.
        batch_norm: "fresh" leaves BatchNorm as Keras initialises it (scale
            1, offset 0); "random" draws scales, offsets and moving
            statistics as a trained network has them
            (`randomize_batch_norm`).

    Returns:
        A dict: for "plain" (autodiff) and "memory_saving" in `dtype`, the
        relative error of the whole gradient (float64 norm of the
        difference over the norm of the float64 gradient) and its cosine
        with the float64 gradient; and "float64_memory_saving", the
        relative difference of the two methods' float64 gradients.
    """
    if batch_norm not in ("fresh", "random"):
        raise ValueError(
            f"batch_norm must be 'fresh' or 'random'. Received: {batch_norm!r}"
        )
    overrides = dict(overrides or {})
    layout = preset_kwargs(preset, overrides)
    keras.utils.set_random_seed(seed)
    reference = classifier(preset, overrides, "float64", False)
    reference.build((None, *layout["image_shape"]))
    if batch_norm == "random":
        randomize_batch_norm(reference, seed)
    weights = reference.get_weights()
    rng = np.random.default_rng(seed)
    images = rng.random((batch_size, *layout["image_shape"]))
    labels = tf.constant(np.arange(batch_size) % layout["num_classes"])

    def gradients(dtype, memory_saving):
        model = classifier(preset, overrides, dtype, memory_saving)
        model.build((None, *layout["image_shape"]))
        model.set_weights([w.astype(dtype) for w in weights])
        return loss_gradients(model, tf.constant(images.astype(dtype)), labels)

    exact = loss_gradients(reference, tf.constant(images), labels)
    results = {
        "float64_memory_saving": relative_error(
            gradients("float64", True), exact
        )
    }
    for name, memory_saving in (("plain", False), ("memory_saving", True)):
        measured = gradients(dtype, memory_saving)
        results[name] = {
            "relative_error": relative_error(measured, exact),
            "cosine": cosine(measured, exact),
        }
    return results
