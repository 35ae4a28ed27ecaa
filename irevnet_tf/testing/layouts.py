"""Small backbone layouts for tests: every kind of block, in seconds.

The CIFAR layout has an injective first block and no initial
down-sampling; the ImageNet layout an initial down-sampling and a stride-2
first block. Constructor arguments of `IRevNet`.
"""

CIFAR_LIKE = dict(
    stage_depths=[2, 2, 2],
    stage_filters=[16, 64, 256],
    stage_strides=[1, 2, 2],
    initial_block_size=1,
    image_shape=(16, 16, 3),
)
IMAGENET_LIKE = dict(
    stage_depths=[1, 1, 2, 1],
    stage_filters=[8, 32, 128, 512],
    stage_strides=[2, 2, 2, 2],
    initial_block_size=2,
    image_shape=(32, 32, 1),
)
