"""What the exported SavedModels compute: the serving functions.

The forward function maps pixel images to logits, probabilities and
features; the image-bytes function does the same for encoded images
(decoded and prepared as the model's recipe evaluates); the inverse function
maps features back to pixel images. All run the model in
inference mode (`training=False`) and check their input at serving time,
inside the graph: TF Serving feeds tensors of any shape to a signature, so
a check on the signature's static shape alone would never run there.
Images and features must have the signature's shape and be finite; encoded
images must decode, or the error names the first example that does not; a
batch of no examples gives outputs of no examples.
"""

import tensorflow as tf

from irevnet_tf import IRevNetClassifier
from irevnet_tf.datasets import folder
from irevnet_tf.datasets import preprocessing as preprocessing_lib
from irevnet_tf.serving import signatures
from irevnet_tf.serving.signatures import FORWARD_NAME
from irevnet_tf.serving.signatures import INVERSE_NAME


def image_spec(model: IRevNetClassifier) -> tf.TensorSpec:
    """The forward signature's input: float32 `[batch, H, W, C]`.

    Height and width are those of `backbone.image_shape`, None if unknown.
    """
    return tf.TensorSpec(
        (None,) + tuple(model.backbone.image_shape),
        tf.float32,
        name=signatures.FORWARD_INPUT,
    )


def feature_spec(model: IRevNetClassifier) -> tf.TensorSpec:
    """The inverse signature's input: float32 `[batch, h, w, channels]`."""
    return tf.TensorSpec(
        (None,) + tuple(model.backbone.feature_shape),
        tf.float32,
        name=signatures.INVERSE_INPUT,
    )


def forward_function(model: IRevNetClassifier, model_name: str = FORWARD_NAME):
    """The forward serving function: images to logits, probabilities, features.

    Returns:
        A function of a float32 images tensor returning a dict of float32
        tensors `logits` `[batch, num_classes]`, `probabilities` (softmax of
        the logits) and `features` `[batch, h, w, channels]`.
    """
    spec = image_spec(model)
    factor = model.backbone.downsampling_factor

    def compute(images):
        features = model.features(
            tf.cast(images, model.input_dtype), training=False
        )
        logits = tf.cast(
            model.logits_from_features(features, training=False), tf.float32
        )
        return {
            signatures.LOGITS: logits,
            signatures.PROBABILITIES: tf.nn.softmax(logits),
            signatures.FEATURES: tf.cast(features, tf.float32),
        }

    def empty(images):
        shape = tf.shape(images)
        height, width, channels = model.backbone.feature_shape
        features = tf.zeros(
            [
                0,
                shape[1] // factor if height is None else height,
                shape[2] // factor if width is None else width,
                channels,
            ]
        )
        logits = tf.zeros([0, model.num_classes])
        return {
            signatures.LOGITS: logits,
            signatures.PROBABILITIES: logits,
            signatures.FEATURES: features,
        }

    def forward(images):
        images = _checked_shape(images, spec, factor, model_name)
        images = _checked_finite(images, spec, model_name)
        return _unless_empty(images, compute, empty)

    return forward


def image_bytes_spec() -> tf.TensorSpec:
    """The image-bytes signature's input: a string tensor `[batch]`."""
    return tf.TensorSpec((None,), tf.string, name=signatures.IMAGE_BYTES)


# The first bytes of the formats `tf.io.decode_image` reads.
_IMAGE_SIGNATURES = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF87a",
    b"GIF89a",
    b"BM",
)


def image_bytes_function(
    model: IRevNetClassifier,
    preprocessing: str = "resize",
    model_name: str = FORWARD_NAME,
):
    """The forward function of encoded images, or None.

    Each image is decoded to float32 pixels in [0, 1] with the model's
    channels (alpha dropped, grey repeated to RGB, an RGB image's first
    channel for a one-channel model) and brought to the model's size by the
    evaluation transform of `preprocessing` (`irevnet_tf.datasets.load`:
    resize, or resize and centre crop for "imagenet"), exactly as the
    training program's evaluation prepared images of a folder dataset.

    Args:
        model: the classifier.
        preprocessing: the recipe's preprocessing style.
        model_name: named in error messages.

    Returns:
        A function of a string tensor `[batch]` returning what
        `forward_function` returns for the decoded images; None if the model
        takes images of any size or non-square ones (there is no size to
        bring images to).
    """
    preprocessing_lib.validate_style(preprocessing)
    height, width, channels = model.backbone.image_shape
    if height is None or height != width:
        return None
    transform = preprocessing_lib.eval_transform(preprocessing, height)
    forward = forward_function(model, model_name)
    spec = image_bytes_spec()

    def prepare(contents):
        image = transform(folder.decode_bytes(contents, channels))
        image.set_shape((height, width, channels))
        return image

    def from_bytes(image_bytes):
        image_bytes = _checked_shape(image_bytes, spec, 1, model_name)
        image_bytes = _checked_formats(image_bytes, spec, model_name)
        count = tf.shape(image_bytes, out_type=tf.int64)[0]
        # TensorFlow's decoders raise on a truncated or corrupt file without
        # naming it. tf.data skips the examples that fail instead, and the
        # first index missing from what remains names the culprit. A final
        # placeholder keeps the one batch non-empty whatever fails.
        placeholder = (tf.zeros((height, width, channels)), count)
        decoded = (
            tf.data.Dataset.from_tensor_slices((image_bytes, tf.range(count)))
            .map(lambda contents, index: (prepare(contents), index))
            .ignore_errors()
            .concatenate(tf.data.Dataset.from_tensors(placeholder))
            .batch(count + 1)
        )
        images, indices = decoded.get_single_element()
        images, indices = images[:-1], indices[:-1]
        images = _checked_decoded(images, indices, count, spec, model_name)
        return forward(images)

    return from_bytes


def _checked_formats(image_bytes, spec: tf.TensorSpec, model_name: str):
    """`image_bytes`, after a check that each starts like a known format."""
    known = tf.reduce_any(
        [
            tf.equal(tf.strings.substr(image_bytes, 0, len(magic)), magic)
            for magic in _IMAGE_SIGNATURES
        ],
        axis=0,
    )
    check = tf.debugging.Assert(
        tf.reduce_all(known),
        [
            tf.strings.format(
                f"{model_name}: `{spec.name}` example {{}} is not a PNG, "
                "JPEG, GIF or BMP image",
                [_first_false(known)],
            )
        ],
    )
    with tf.control_dependencies([check]):
        return tf.identity(image_bytes)


def _checked_decoded(images, indices, count, spec, model_name: str):
    """`images`, after a check that all `count` examples were decoded.

    `indices` are the increasing indices of the examples in `images`.
    """
    expected = tf.range(tf.size(indices, out_type=tf.int64))
    check = tf.debugging.Assert(
        tf.equal(tf.size(indices, out_type=tf.int64), count),
        [
            tf.strings.format(
                f"{model_name}: `{spec.name}` example {{}} cannot be decoded: "
                "a truncated or corrupt image",
                [_first_false(tf.equal(indices, expected))],
            )
        ],
    )
    with tf.control_dependencies([check]):
        return tf.identity(images)


def _first_false(flags):
    """The index of the first False in the vector `flags`, else its length."""
    falses = tf.where(tf.logical_not(flags))[:, 0]
    size = tf.size(flags, out_type=tf.int64)
    return tf.cond(tf.size(falses) > 0, lambda: falses[0], lambda: size)


def inverse_function(model: IRevNetClassifier, model_name: str = INVERSE_NAME):
    """The inverse serving function: features back to images.

    Returns:
        A function of a float32 features tensor returning `{"images": ...}`.
        Features with NaN or Inf values are an error, not garbage images.
    """
    spec = feature_spec(model)
    factor = model.backbone.downsampling_factor

    def compute(features):
        images = model.inverse(
            tf.cast(features, model.input_dtype), training=False
        )
        return {signatures.IMAGES: tf.cast(images, tf.float32)}

    def empty(features):
        shape = tf.shape(features)
        height, width, channels = model.backbone.image_shape
        images = tf.zeros(
            [
                0,
                shape[1] * factor if height is None else height,
                shape[2] * factor if width is None else width,
                channels,
            ]
        )
        return {signatures.IMAGES: images}

    def inverse(features):
        features = _checked_shape(features, spec, 1, model_name)
        features = _checked_finite(
            features,
            spec,
            model_name,
            " (the forward model's `features` output)",
        )
        return _unless_empty(features, compute, empty)

    return inverse


def _checked_shape(tensor, spec: tf.TensorSpec, factor: int, model_name: str):
    """`tensor`, after a serving-time check that it has `spec`'s shape.

    Unknown height and width must be positive multiples of `factor`.
    """
    expected = spec.shape.as_list()
    rank = len(expected)
    # Dimensions beyond the tensor's rank read as -1, so one comparison
    # catches a wrong rank too. (`tf.rank` would not: TensorFlow folds it to
    # the signature's static rank.)
    shape = tf.shape(tensor)
    padded = tf.concat([shape, tf.fill([rank + 1], -1)], axis=0)
    conditions = [tf.equal(padded[rank], -1), padded[0] >= 0]
    for axis in range(1, rank):
        if expected[axis] is not None:
            conditions.append(tf.equal(padded[axis], expected[axis]))
        else:
            conditions.append(padded[axis] > 0)
            conditions.append(tf.equal(padded[axis] % factor, 0))
    check = tf.debugging.Assert(
        tf.reduce_all(tf.stack(conditions)),
        [
            f"{model_name}: `{spec.name}` must be a {spec.dtype.name} tensor "
            "of shape "
            f"{_shape_text(expected, factor)}. Received shape:",
            shape,
        ],
        summarize=rank + 2,
    )
    with tf.control_dependencies([check]):
        return tf.identity(tensor)


def _checked_finite(tensor, spec: tf.TensorSpec, model_name: str, what=""):
    """`tensor`, after a serving-time check that it holds no NaN or Inf."""
    return tf.debugging.check_numerics(
        tensor,
        f"{model_name}: `{spec.name}` must be finite{what}, but hold NaN or "
        "Inf",
    )


def _unless_empty(batch, compute, empty):
    """`compute(batch)`, or `empty(batch)` for a batch of no examples.

    With oneDNN some of TensorFlow's CPU kernels refuse a batch of no
    examples (a grouped convolution's "output depth must be evenly divisible
    by number of groups"), where its own kernels return empty outputs: this
    gives empty outputs on every CPU.
    """
    return tf.cond(
        tf.shape(batch)[0] > 0, lambda: compute(batch), lambda: empty(batch)
    )


def _shape_text(expected: list, factor: int) -> str:
    """`[batch, 16, 16, 3]`, or `[batch, height, width, 3]` with a rule."""
    names = ["batch", "height", "width"]
    dims = [
        names[axis] if size is None else str(size)
        for axis, size in enumerate(expected)
    ]
    text = f"[{', '.join(dims)}]"
    if None in expected[1:3]:
        text += (
            f" with height and width positive multiples of {factor}"
            if factor > 1
            else " with positive height and width"
        )
    return text
