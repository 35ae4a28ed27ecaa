"""i-RevNet architectures as plain data: constructor arguments by name.

The keys in `HEAD_KEYS` are arguments of `IRevNetClassifier`'s head; all
others are arguments of the backbone, `IRevNet`. `preset_kwargs` looks a
preset up, `split_head` separates the two.
"""

import copy

# The authors' CIFAR-10 model (pytorch-i-revnet `CIFAR_main.py`):
# nBlocks=[18, 18, 18], nStrides=[1, 2, 2], nChannels=[16, 64, 256], init_ds=0.
CIFAR10 = {
    "stage_depths": [18, 18, 18],
    "stage_filters": [16, 64, 256],
    "stage_strides": [1, 2, 2],
    "initial_block_size": 1,
    "image_shape": [32, 32, 3],
    "dropout_rate": 0.1,
    "num_classes": 10,
}

# The authors' ImageNet model, "i-RevNet-301" (3 * 100 blocks + 1 layers),
# weight-compatible with their pretrained checkpoint: nBlocks=[6, 16, 72, 6],
# nStrides=[2, 2, 2, 2], nChannels=[24, 96, 384, 1536], init_ds=2.
IREVNET301 = {
    "stage_depths": [6, 16, 72, 6],
    "stage_filters": [24, 96, 384, 1536],
    "stage_strides": [2, 2, 2, 2],
    "initial_block_size": 2,
    "image_shape": [224, 224, 3],
    "num_classes": 1000,
}

# The paper's bijective model (b) of Table 1: the layout of i-RevNet-301 with
# the 1x1-3x3-1x1 bottlenecks that section 3.2 describes (29M parameters).
IREVNET300 = dict(IREVNET301, kernel_sizes=[1, 3, 1])

# The paper's injective model (a) of Table 1, reconstructed from section 3.2,
# which gives its layout but not every width: a 4x4 invertible down-sampling
# takes 224x224x3 images to 56x56x48; the first block pads them with zeros
# to 96 channels (two halves of 48); blocks 15, 27 and 45 (counting from 1)
# down-sample, taking the halves to 192, 768 and 3072 channels; 56 blocks
# in all, so stages of 14, 12, 18 and 12 blocks, with the paper's
# 1x1-3x3-1x1 bottlenecks of middle width out_channels / 4. That gives
# 136,533,928 parameters, not the paper's 181M, which no layout consistent
# with these numbers and the authors' block reproduces exactly (3x3-3x3-3x3
# bottlenecks give 618,788,776): the paper must use wider bottlenecks in
# some stages, which it does not state.
IREVNET_INJECTIVE = {
    "stage_depths": [14, 12, 18, 12],
    "stage_filters": [48, 192, 768, 3072],
    "stage_strides": [1, 2, 2, 2],
    "initial_block_size": 4,
    "kernel_sizes": [1, 3, 1],
    "image_shape": [224, 224, 3],
    "num_classes": 1000,
}

# A small model for scikit-learn's 8x8 handwritten digits upsampled to 16x16
# (the training program's default): 16x16x1 images go through a 2x2
# invertible down-sampling to 8x8x4, then the CIFAR-10 layout with 2 blocks
# per stage at half the width. 152,626 parameters.
DIGITS = {
    "stage_depths": [2, 2, 2],
    "stage_filters": [8, 32, 128],
    "stage_strides": [1, 2, 2],
    "initial_block_size": 2,
    "image_shape": [16, 16, 1],
    "num_classes": 10,
}

PRESETS = {
    "cifar10": CIFAR10,
    "digits": DIGITS,
    "irevnet301": IREVNET301,
    "irevnet300": IREVNET300,
    "irevnet_injective": IREVNET_INJECTIVE,
}

# Constructor arguments of `IRevNetClassifier`'s head; every other preset
# key is an argument of the backbone, `IRevNet`.
HEAD_KEYS = ("num_classes", "head_batch_norm_momentum")


def preset_kwargs(preset, overrides=None):
    """The constructor arguments of `preset`, updated with `overrides`.

    Raises:
        ValueError: naming the available presets if `preset` is unknown.
    """
    if preset not in PRESETS:
        raise ValueError(
            f"Unknown preset {preset!r}. Available presets: "
            f"{', '.join(sorted(PRESETS))}."
        )
    kwargs = copy.deepcopy(PRESETS[preset])
    kwargs.update(overrides or {})
    return kwargs


def split_head(kwargs):
    """Splits constructor arguments into the backbone's and the head's.

    Returns:
        `(backbone_kwargs, head_kwargs)`, two new dicts.
    """
    head = {k: v for k, v in kwargs.items() if k in HEAD_KEYS}
    backbone = {k: v for k, v in kwargs.items() if k not in HEAD_KEYS}
    return backbone, head
