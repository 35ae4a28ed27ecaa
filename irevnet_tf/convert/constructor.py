"""The authors' `iRevNet` constructor arguments, to ours and back.

The authors' code (jhjacobsen/pytorch-i-revnet, `models/iRevNet.py`) builds
a model from `iRevNet(nBlocks, nStrides, nClasses, nChannels, init_ds,
dropout_rate, affineBN, in_shape, mult)`. `config_from_authors` maps those
arguments to `IRevNet` and `IRevNetClassifier` keyword arguments,
`authors_constructor` maps one of our models back to them, and
`build_model` builds the untrained classifier that `convert_state_dict`
fills.
"""

import collections.abc

from irevnet_tf.models.irevnet import IRevNet
from irevnet_tf.models.irevnet_classifier import IRevNetClassifier
from irevnet_tf.models.irevnet_presets import split_head

# The per-channel pixel statistics the authors' CIFAR code normalises its
# inputs with (pytorch-i-revnet `models/utils_cifar.py`), by dataset: a
# converted model standardises its pixel inputs with them when asked to
# (`build_model(..., input_mean=..., input_std=...)`, the converter's
# `--normalization`). The authors' ImageNet script states none.
AUTHORS_NORMALIZATIONS = {
    "cifar10": {
        "mean": [0.4914, 0.4822, 0.4465],
        "std": [0.2023, 0.1994, 0.2010],
    },
    "cifar100": {
        "mean": [0.5071, 0.4867, 0.4408],
        "std": [0.2675, 0.2565, 0.2761],
    },
}

# The authors' `iRevNet.__init__` signature: required names and defaults.
_REQUIRED_ARGS = ("nBlocks", "nStrides", "nClasses", "in_shape")
_DEFAULT_ARGS = {
    "nChannels": None,
    "init_ds": 2,
    "dropout_rate": 0.0,
    "affineBN": True,
    "mult": 4,
}


def config_from_authors(constructor):
    """Maps the authors' `iRevNet` constructor arguments to ours.

    Args:
        constructor: mapping of the authors' argument names (`nBlocks`,
            `nStrides`, `nChannels`, `nClasses`, `init_ds`, `dropout_rate`,
            `affineBN`, `in_shape`, `mult`) to values, with the authors'
            defaults for the optional ones. A mapping that holds it under
            the key `"constructor"` (the reference JSON files) works too.

    Returns:
        A dict of `IRevNet` and `IRevNetClassifier` keyword arguments,
        including `num_classes` and `head_batch_norm_momentum`.

    Raises:
        ValueError: for a missing or unknown argument, or a value that the
            authors' code cannot build a working model from.
    """
    args = constructor_arguments(constructor)
    depths = _int_list(args, "nBlocks", minimum=1)
    strides = _int_list(args, "nStrides", minimum=1)
    if any(s not in (1, 2) for s in strides):
        raise ValueError(f"`nStrides` must hold 1 or 2. Received: {strides}")
    in_shape = _int_list(args, "in_shape", minimum=1)
    if len(in_shape) != 3:
        raise ValueError(
            "`in_shape` must be [channels, height, width]. "
            f"Received: in_shape={in_shape}"
        )
    init_ds = args["init_ds"]
    # Their `psi(init_ds)` has block size `init_ds` and they count
    # `in_ch = C * 2**init_ds` channels after it: these agree for 2 and 4
    # only (0 means no initial down-sampling).
    if init_ds not in (0, 2, 4) or isinstance(init_ds, bool):
        raise ValueError(
            f"`init_ds` must be 0, 2 or 4. Received: init_ds={init_ds!r}"
        )
    if args["nChannels"]:
        filters = _int_list(args, "nChannels", minimum=1)
    else:
        # Their default: four stages, each 4 times as wide as the last.
        half = in_shape[0] * 2**init_ds // 2
        filters = [half * 4**stage for stage in range(4)]
    if not len(depths) == len(strides) == len(filters):
        raise ValueError(
            "`nBlocks`, `nStrides` and `nChannels` must have the same length "
            "(the authors' code zips the first two with the third and builds "
            "its head from nChannels[-1]). Received: "
            f"nBlocks={depths}, nStrides={strides}, nChannels={filters}"
        )
    num_classes = _positive_int(args, "nClasses")
    mult = _positive_int(args, "mult")
    dropout_rate = args["dropout_rate"]
    if not isinstance(dropout_rate, (int, float)) or not (
        0.0 <= dropout_rate < 1.0
    ):
        raise ValueError(
            "`dropout_rate` must be a number in [0, 1). "
            f"Received: dropout_rate={dropout_rate!r}"
        )
    if not isinstance(args["affineBN"], bool):
        raise ValueError(
            f"`affineBN` must be true or false. Received: affineBN="
            f"{args['affineBN']!r}"
        )
    channels, height, width = in_shape
    return {
        "stage_depths": depths,
        "stage_filters": filters,
        "stage_strides": strides,
        "image_shape": [height, width, channels],
        "initial_block_size": 2 ** (init_ds // 2),
        "kernel_sizes": [3, 3, 3],
        "bottleneck_divisor": mult,
        "dropout_rate": float(dropout_rate),
        "affine": args["affineBN"],
        # PyTorch BatchNorm2d defaults (eps 1e-5, momentum 0.1) in the blocks;
        # the head's `bn1` has PyTorch momentum 0.9. Keras momentum is 1 - m.
        "batch_norm_momentum": 0.9,
        "batch_norm_epsilon": 1e-5,
        "num_classes": num_classes,
        "head_batch_norm_momentum": 0.1,
    }


def build_model(config, input_mean=None, input_std=None):
    """An untrained `IRevNetClassifier` for the authors' constructor args.

    `input_mean` and `input_std` are `IRevNet`'s: the pixel statistics the
    model standardises its inputs with (for example
    `AUTHORS_NORMALIZATIONS["cifar10"]`); None for none.
    """
    kwargs, head = split_head(config_from_authors(config))
    kwargs.update(input_mean=input_mean, input_std=input_std)
    try:
        return IRevNetClassifier(IRevNet(**kwargs), **head)
    except ValueError as error:
        raise ValueError(
            f"The constructor arguments do not describe an i-RevNet: {error}"
        ) from None


def authors_constructor(backbone_config, num_classes):
    """The authors' constructor arguments for one of our models.

    Args:
        backbone_config: `IRevNet.get_config()` (every constructor argument).
        num_classes: the classifier's number of classes.

    Returns:
        A dict for `config_from_authors` (and the PyTorch twin of the
            authors' model in `bench/pytorch_reference.py`).

    Raises:
        ValueError: if the authors' code cannot express the model (other
            kernel sizes, initial block size or BatchNorm epsilon, or an
            image size left open).
    """
    c = backbone_config
    init_ds = {1: 0, 2: 2, 4: 4}.get(c["initial_block_size"])
    problems = []
    if list(c["kernel_sizes"]) != [3, 3, 3]:
        problems.append(f"kernel_sizes={list(c['kernel_sizes'])}")
    if init_ds is None:
        problems.append(f"initial_block_size={c['initial_block_size']}")
    if c["batch_norm_epsilon"] != 1e-5:
        problems.append(f"batch_norm_epsilon={c['batch_norm_epsilon']}")
    if None in c["image_shape"]:
        problems.append(f"image_shape={list(c['image_shape'])}")
    if problems:
        raise ValueError(
            "The authors' iRevNet has 3x3 bottlenecks, an initial block size "
            "of 1, 2 or 4, BatchNorm epsilon 1e-5 and a fixed image size. "
            f"Received: {', '.join(problems)}"
        )
    height, width, channels = c["image_shape"]
    return {
        "nBlocks": list(c["stage_depths"]),
        "nStrides": list(c["stage_strides"]),
        "nChannels": list(c["stage_filters"]),
        "nClasses": num_classes,
        "init_ds": init_ds,
        "dropout_rate": c["dropout_rate"],
        "affineBN": c["affine"],
        "in_shape": [channels, height, width],
        "mult": c["bottleneck_divisor"],
    }


def constructor_arguments(config):
    """The authors' arguments in `config`, with their defaults filled in.

    Args:
        config: a mapping of the authors' argument names to values, or one
            that holds it under the key `"constructor"`.

    Raises:
        ValueError: for a missing or unknown argument name.
    """
    if not isinstance(config, collections.abc.Mapping):
        raise ValueError(
            "The config must be a JSON object of the authors' constructor "
            f"arguments. Received: {type(config).__name__}"
        )
    if isinstance(config.get("constructor"), collections.abc.Mapping):
        config = config["constructor"]
    unknown = sorted(set(config) - set(_REQUIRED_ARGS) - set(_DEFAULT_ARGS))
    if unknown:
        raise ValueError(
            f"Unknown constructor argument(s) {unknown}; the authors' iRevNet "
            f"takes {list(_REQUIRED_ARGS) + list(_DEFAULT_ARGS)}. "
            f"Received: {sorted(config)}"
        )
    missing = [name for name in _REQUIRED_ARGS if name not in config]
    if missing:
        raise ValueError(
            f"Missing constructor argument(s) {missing}. "
            f"Received: {sorted(config)}"
        )
    return {**_DEFAULT_ARGS, **config}


def _is_int(value):
    # JSON has no ints proper: accept 4.0 for 4, never true for 1.
    return not isinstance(value, bool) and (
        isinstance(value, int)
        or (isinstance(value, float) and value.is_integer())
    )


def _positive_int(args, name):
    value = args[name]
    if not _is_int(value) or value < 1:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )
    return int(value)


def _int_list(args, name, minimum):
    values = args[name]
    if (
        not isinstance(values, (list, tuple))
        or not values
        or not all(_is_int(v) and v >= minimum for v in values)
    ):
        raise ValueError(
            f"`{name}` must be a non-empty list of integers >= {minimum}. "
            f"Received: {name}={values!r}"
        )
    return [int(v) for v in values]
