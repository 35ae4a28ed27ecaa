"""Per-image preprocessing and augmentation, in `tf.image` ops.

Every function maps one float32 image `(H, W, C)` with values in [0, 1] to
an image of `(size, size, C)`; the random ones take a stateless seed (an
int tensor of shape `(2,)`), so a pipeline seeded once is reproducible.

Styles (the `preprocessing` argument of `irevnet_tf.datasets.load`):
- "resize": resize to `size` (bilinear); no augmentation.
- "cifar": the authors' CIFAR recipe. Training: zero-pad by `size // 8`
  (4 pixels at 32), random `size` crop, random horizontal flip. Evaluation:
  resize.
- "imagenet": the paper's ImageNet recipe. Training: random scaling and
  cropping (8% to 100% of the area, aspect ratio 3/4 to 4/3) resized to
  `size`, random horizontal flip, colour distortion (brightness, contrast,
  saturation). Evaluation: resize the shorter side to `size * 256 / 224`,
  centre crop `size` (256 then 224 at the paper's size).
"""

import tensorflow as tf

STYLES = ("resize", "cifar", "imagenet")

# Random-resized-crop ranges (the Inception / torchvision defaults).
CROP_AREA_RANGE = (0.08, 1.0)
CROP_ASPECT_RATIO_RANGE = (3.0 / 4.0, 4.0 / 3.0)
# Colour distortion: factors drawn uniformly from [1 - s, 1 + s].
COLOUR_STRENGTH = 0.4
# Evaluation resize / crop ratio of the ImageNet recipe.
EVAL_RESIZE_RATIO = 256.0 / 224.0


def validate_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(
            f"Unknown preprocessing {style!r}; expected one of "
            f"{', '.join(STYLES)}. Received: preprocessing={style!r}"
        )


def resize(image: tf.Tensor, size: int) -> tf.Tensor:
    """Resizes to `(size, size)`, bilinear, antialiased when shrinking."""
    return tf.image.resize(image, (size, size), antialias=True)


def eval_transform(style: str, size: int):
    """The deterministic evaluation transform of `style`."""
    validate_style(style)
    if style == "imagenet":
        return lambda image: resize_and_centre_crop(image, size)
    return lambda image: resize(image, size)


def train_transform(style: str, size: int):
    """The random training transform of `style`: `fn(image, seed)`."""
    validate_style(style)
    if style == "cifar":
        return lambda image, seed: pad_crop_flip(image, seed, size)
    if style == "imagenet":
        return lambda image, seed: imagenet_augment(image, seed, size)
    return lambda image, seed: resize(image, size)


def pad_crop_flip(image: tf.Tensor, seed: tf.Tensor, size: int) -> tf.Tensor:
    """CIFAR augmentation: resize, zero-pad, random crop, random flip."""
    crop_seed, flip_seed = _split(seed, 2)
    padding = size // 8
    image = resize(image, size)
    image = tf.image.resize_with_crop_or_pad(
        image, size + 2 * padding, size + 2 * padding
    )
    channels = image.shape[-1]
    image = tf.image.stateless_random_crop(
        image, (size, size, channels), seed=crop_seed
    )
    return tf.image.stateless_random_flip_left_right(image, seed=flip_seed)


def imagenet_augment(image: tf.Tensor, seed: tf.Tensor, size: int) -> tf.Tensor:
    """ImageNet augmentation on a decoded image."""
    crop_seed, rest = _split(seed, 2)
    offset, crop_size = _sample_crop(tf.shape(image), crop_seed)
    image = tf.slice(
        image,
        tf.concat([offset, [0]], 0),
        tf.concat([crop_size, [-1]], 0),
    )
    return _resize_flip_distort(image, rest, size)


def imagenet_augment_jpeg(
    contents: tf.Tensor, seed: tf.Tensor, size: int, channels: int = 3
) -> tf.Tensor:
    """`imagenet_augment` on JPEG bytes, decoding only the crop."""
    crop_seed, rest = _split(seed, 2)
    offset, crop_size = _sample_crop(
        tf.image.extract_jpeg_shape(contents), crop_seed
    )
    image = tf.image.decode_and_crop_jpeg(
        contents, tf.concat([offset, crop_size], 0), channels=channels
    )
    image = tf.image.convert_image_dtype(image, tf.float32)
    return _resize_flip_distort(image, rest, size)


def resize_and_centre_crop(image: tf.Tensor, size: int) -> tf.Tensor:
    """Resizes the shorter side to `size * 256 / 224`, centre crop `size`."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = round(size * EVAL_RESIZE_RATIO) / tf.reduce_min(shape)
    new_shape = tf.cast(tf.math.round(shape * scale), tf.int32)
    image = tf.image.resize(image, new_shape, antialias=True)
    return tf.image.resize_with_crop_or_pad(image, size, size)


def _resize_flip_distort(image, seed, size):
    flip_seed, colour_seed = _split(seed, 2)
    image = tf.image.resize(image, (size, size), antialias=True)
    image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
    return distort_colour(image, colour_seed)


def distort_colour(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Random brightness, contrast and (colour images) saturation."""
    brightness_seed, contrast_seed, saturation_seed = _split(seed, 3)
    low, high = 1.0 - COLOUR_STRENGTH, 1.0 + COLOUR_STRENGTH
    brightness = tf.random.stateless_uniform(
        (), brightness_seed, minval=low, maxval=high
    )
    image = image * brightness
    image = tf.image.stateless_random_contrast(
        image, low, high, seed=contrast_seed
    )
    if image.shape[-1] == 3:
        image = tf.image.stateless_random_saturation(
            image, low, high, seed=saturation_seed
        )
    return tf.clip_by_value(image, 0.0, 1.0)


def _sample_crop(image_shape, seed):
    """A random crop `(offset, size)` of 8% to 100% of the image area."""
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        image_shape,
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=CROP_ASPECT_RATIO_RANGE,
        area_range=CROP_AREA_RANGE,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    return begin[:2], crop_size[:2]


def _split(seed, count):
    return tf.unstack(tf.random.experimental.stateless_split(seed, count))
