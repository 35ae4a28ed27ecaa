"""Converts checkpoints of the authors' PyTorch i-RevNet into Keras models.

The authors' code (jhjacobsen/pytorch-i-revnet, `models/iRevNet.py`) saves a
PyTorch `state_dict`; this module loads it into an `IRevNetClassifier` built
from the same constructor arguments, so that the converted model computes the
same logits, features and inverse (to float32 rounding).

Command line, from the repository root or anywhere after `pip install .`:

    python -m irevnet_tf.convert --checkpoint model_best.pth.tar \
        --config constructor.json --output irevnet301.keras

`--checkpoint` is a `.pth.tar` written by the authors' ImageNet script, a bare
`state_dict` saved with `torch.save` (both need PyTorch:
`pip install 'irevnet-tf[torch]'`), or a `.npz` of arrays (no PyTorch needed).
`--config` is a JSON object of the authors' constructor arguments, for example

    {"nBlocks": [6, 16, 72, 6], "nStrides": [2, 2, 2, 2],
     "nChannels": [24, 96, 384, 1536], "nClasses": 1000, "init_ds": 2,
     "dropout_rate": 0.0, "affineBN": true, "in_shape": [3, 224, 224],
     "mult": 4}

or an object holding one under the key "constructor". The written `.keras`
file loads with `keras.saving.load_model` after `import irevnet_tf`.

In Python:

    config = load_config("constructor.json")
    model = convert_state_dict(load_checkpoint("model_best.pth.tar"), config)
"""

import collections.abc
import json
import os
import pickle
import re
import sys

import numpy as np

from irevnet_tf.models.irevnet import HEAD_KEYS
from irevnet_tf.models.irevnet import IRevNet
from irevnet_tf.models.irevnet_classifier import IRevNetClassifier

# The authors' `iRevNet.__init__` signature: required names and defaults.
_REQUIRED_ARGS = ("nBlocks", "nStrides", "nClasses", "in_shape")
_DEFAULT_ARGS = {
    "nChannels": None,
    "init_ds": 2,
    "dropout_rate": 0.0,
    "affineBN": True,
    "mult": 4,
}

# The layers of the authors' `bottleneck_block` (an `nn.Sequential`) in the
# order `irevnet_block.__init__` appends them; the very first block of the
# network leaves out the leading BatchNorm and ReLU. State-dict keys use the
# position in this list: `stack.<block>.bottleneck_block.<position>.<param>`.
_BOTTLENECK_SEQUENCE = (
    "bn1",
    "relu",
    "conv1",
    "bn2",
    "relu",
    "conv2",
    "dropout",
    "bn3",
    "relu",
    "conv3",
)

# Keras variable name -> PyTorch parameter or buffer name.
_PARAMETER_NAMES = {
    "kernel": "weight",
    "bias": "bias",
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}

# A PyTorch BatchNorm buffer that inference does not use.
_IGNORED_BUFFER = "num_batches_tracked"

_DATA_PARALLEL_PREFIX = "module."
_NPZ_STATE_DICT_PREFIX = "state_dict/"


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
    args = _constructor_arguments(constructor)
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


def build_model(config):
    """An untrained `IRevNetClassifier` for the authors' constructor args."""
    kwargs = config_from_authors(config)
    head = {k: kwargs.pop(k) for k in HEAD_KEYS}
    try:
        return IRevNetClassifier(IRevNet(**kwargs), **head)
    except ValueError as error:
        raise ValueError(
            f"The constructor arguments do not describe an i-RevNet: {error}"
        ) from None


def convert_state_dict(state_dict, config):
    """Builds an `IRevNetClassifier` holding the weights of `state_dict`.

    Args:
        state_dict: mapping of the authors' PyTorch state-dict keys (with or
            without the `module.` prefix of `nn.DataParallel`) to arrays:
            numpy arrays, or anything `np.asarray` accepts (PyTorch tensors
            work too). `num_batches_tracked` entries are ignored.
        config: the authors' constructor arguments, as `config_from_authors`
            takes them.

    Returns:
        An `IRevNetClassifier` in which every weight comes from `state_dict`.

    Raises:
        ValueError: for a bad `config`, or a missing, unknown or mis-shaped
            key; the message names the key.
    """
    model = build_model(config)
    state_dict = _strip_data_parallel_prefix(state_dict)
    targets = _weight_map(model)

    batch_norms = {
        key.rsplit(".", 1)[0]
        for key, _, _ in targets
        if key.endswith(".running_mean")
    }
    expected = {key for key, _, _ in targets}
    unknown = [
        key
        for key in state_dict
        if key not in expected
        and not (
            key.endswith("." + _IGNORED_BUFFER)
            and key.rsplit(".", 1)[0] in batch_norms
        )
    ]
    if unknown:
        raise ValueError(
            f"Unknown key {_list_keys(unknown)} in the state_dict: the "
            "checkpoint does not match the constructor arguments. Received: "
            f"{len(state_dict)} keys"
        )
    missing = [key for key, _, _ in targets if key not in state_dict]
    if missing:
        raise ValueError(
            f"Missing key {_list_keys(missing)} in the state_dict: the "
            "checkpoint does not match the constructor arguments. Received: "
            f"{len(state_dict)} keys"
        )

    values = []
    for key, variable, to_keras in targets:
        value = _to_numpy(state_dict[key])
        expected_shape = to_keras.torch_shape(tuple(variable.shape))
        if value.shape != expected_shape:
            raise ValueError(
                f"Key {key!r} has the wrong shape: expected {expected_shape} "
                f"(PyTorch layout) for {variable.path}. Received: "
                f"shape {value.shape}"
            )
        values.append(to_keras(value).astype(variable.dtype))

    # Each Keras weight exactly once, and none left at its initial value.
    assigned = set()
    for (key, variable, _), value in zip(targets, values):
        if id(variable) in assigned:
            raise RuntimeError(f"{variable.path} would be assigned twice.")
        variable.assign(value)
        assigned.add(id(variable))
    unassigned = [w.path for w in model.weights if id(w) not in assigned]
    if unassigned:
        raise RuntimeError(
            f"The converter left weights unassigned: {unassigned}"
        )
    return model


def load_checkpoint(path, allow_pickle=False):
    """Reads a state_dict as a dict of numpy arrays.

    Args:
        path: a `.npz` file of arrays (keys are state-dict keys, or
            `state_dict/<key>` as in the reference files, where other arrays
            are then ignored), or any other file written by `torch.save`:
            the authors' training checkpoint (a dict with `state_dict`,
            `epoch`, `arch`, `best_prec1`, `optimizer`; usually `.pth.tar`)
            or a bare state_dict. These need PyTorch.
        allow_pickle: bool. PyTorch files are read with
            `torch.load(weights_only=True)`, which refuses anything but
            tensors and plain containers (this reads the authors' format).
            True falls back to full unpickling, which can run arbitrary code:
            only for files from a source you trust.

    Returns:
        A dict of the state dict's keys (as stored, prefix included) to numpy
        arrays.

    Raises:
        FileNotFoundError: if `path` does not exist.
        ImportError: for a PyTorch file when PyTorch is not installed.
        ValueError: if the file is not a checkpoint in a known format.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No checkpoint file at {path!r}.")
    if path.endswith(".npz"):
        return _load_npz(path)
    return _load_torch(path, allow_pickle)


def load_config(path):
    """Reads the authors' constructor arguments from a JSON file.

    The file holds a JSON object of the arguments, or an object with them
    under `"constructor"` (the reference files).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No config file at {path!r}.")
    with open(path) as f:
        try:
            config = json.load(f)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"The config {path!r} is not valid JSON: {error}"
            ) from None
    return _constructor_arguments(config)


def convert_checkpoint(checkpoint, config, allow_pickle=False):
    """`convert_state_dict(load_checkpoint(checkpoint), load_config(config))`.

    `config` may also be a mapping of the authors' constructor arguments.
    """
    if not isinstance(config, collections.abc.Mapping):
        config = load_config(config)
    # Validate the (cheap) config before reading a large checkpoint.
    config_from_authors(config)
    return convert_state_dict(
        load_checkpoint(checkpoint, allow_pickle=allow_pickle), config
    )


class _Transform:
    """A PyTorch -> Keras array layout change and its shape mapping."""

    def __init__(self, axes=None):
        self.axes = axes

    def __call__(self, value):
        return value if self.axes is None else np.transpose(value, self.axes)

    def torch_shape(self, keras_shape):
        if self.axes is None:
            return keras_shape
        inverse = np.argsort(self.axes)
        return tuple(keras_shape[i] for i in inverse)


_IDENTITY = _Transform()
_CONV_KERNEL = _Transform((2, 3, 1, 0))  # OIHW -> HWIO
_DENSE_KERNEL = _Transform((1, 0))  # (out, in) -> (in, out)


def _weight_map(model):
    """`(torch key, Keras variable, transform)` for every weight of `model`."""
    modules = []
    for index, block in enumerate(model.backbone.blocks):
        residual = block.residual
        sequence = _BOTTLENECK_SEQUENCE
        if not residual.preactivate:
            sequence = sequence[2:]
        for position, name in enumerate(sequence):
            if name.startswith(("bn", "conv")):
                modules.append(
                    (
                        f"stack.{index}.bottleneck_block.{position}",
                        getattr(residual, name),
                    )
                )
    modules.append(("bn1", model.head_norm))
    modules.append(("linear", model.classifier))

    targets = []
    for prefix, layer in modules:
        for variable in layer.weights:
            if variable.name == "kernel":
                transform = (
                    _CONV_KERNEL if len(variable.shape) == 4 else _DENSE_KERNEL
                )
            else:
                transform = _IDENTITY
            key = f"{prefix}.{_PARAMETER_NAMES[variable.name]}"
            targets.append((key, variable, transform))
    return targets


def _constructor_arguments(config):
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


def _strip_data_parallel_prefix(state_dict):
    if not isinstance(state_dict, collections.abc.Mapping):
        raise ValueError(
            "The state_dict must be a mapping of keys to arrays. "
            f"Received: {type(state_dict).__name__}"
        )
    bad = [key for key in state_dict if not isinstance(key, str)]
    if bad:
        raise ValueError(
            f"State-dict keys must be strings. Received: {bad[0]!r}"
        )
    if state_dict and all(
        key.startswith(_DATA_PARALLEL_PREFIX) for key in state_dict
    ):
        size = len(_DATA_PARALLEL_PREFIX)
        return {key[size:]: value for key, value in state_dict.items()}
    return dict(state_dict)


def _to_numpy(value):
    if hasattr(value, "detach"):  # A PyTorch tensor; avoids importing torch.
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.float()  # bfloat16 has no numpy dtype.
        return value.numpy()
    return np.asarray(value)


def _list_keys(keys):
    shown = ", ".join(repr(k) for k in keys[:3])
    more = f" (and {len(keys) - 3} more)" if len(keys) > 3 else ""
    return shown + more


def _load_npz(path):
    try:
        with np.load(path, allow_pickle=False) as arrays:
            names = list(arrays.files)
            if any(n.startswith(_NPZ_STATE_DICT_PREFIX) for n in names):
                size = len(_NPZ_STATE_DICT_PREFIX)
                return {
                    n[size:]: arrays[n]
                    for n in names
                    if n.startswith(_NPZ_STATE_DICT_PREFIX)
                }
            return {n: arrays[n] for n in names}
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(
            f"Cannot read {path!r} as a .npz file of arrays: {error}"
        ) from None


def _load_torch(path, allow_pickle):
    try:
        import torch
    except ImportError:
        raise ImportError(
            f"Reading the PyTorch checkpoint {path!r} needs PyTorch: "
            "pip install 'irevnet-tf[torch]' (or pip install torch==2.13.0), "
            "or pass the state_dict as a .npz file of arrays."
        ) from None
    try:
        checkpoint = torch.load(
            path, map_location="cpu", weights_only=not allow_pickle
        )
    except pickle.UnpicklingError as error:
        if allow_pickle:
            raise ValueError(
                f"Cannot read {path!r} as a PyTorch checkpoint: {error}"
            ) from None
        raise ValueError(
            f"Cannot read {path!r} with torch.load(weights_only=True), which "
            "accepts only tensors and plain containers: "
            f"{_unpickler_reason(error)}. If the file holds other Python "
            "objects (a training script's arguments, say) and you trust its "
            "source, allow full unpickling (allow_pickle=True, --allow_pickle)."
        ) from None
    except (RuntimeError, OSError, EOFError) as error:
        raise ValueError(
            f"Cannot read {path!r} as a PyTorch checkpoint: {error}"
        ) from None
    if isinstance(checkpoint, collections.abc.Mapping) and isinstance(
        checkpoint.get("state_dict"), collections.abc.Mapping
    ):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, collections.abc.Mapping) or not all(
        isinstance(v, torch.Tensor) for v in checkpoint.values()
    ):
        raise ValueError(
            f"{path!r} is neither a state_dict nor a checkpoint dict with a "
            "'state_dict' entry. Received: a "
            f"{type(checkpoint).__name__}"
            + (
                f" with keys {sorted(map(str, checkpoint))[:5]}"
                if isinstance(checkpoint, collections.abc.Mapping)
                else ""
            )
        )
    return {key: _to_numpy(value) for key, value in checkpoint.items()}


def _unpickler_reason(error):
    # torch's message is long; its "WeightsUnpickler error: ..." line says why.
    match = re.search(r"WeightsUnpickler error:\s*(.+)", str(error))
    reason = match.group(1) if match else str(error).strip().splitlines()[0]
    return reason.split(". Please")[0].rstrip(".")


def _run_cli():
    from absl import app
    from absl import flags

    checkpoint = flags.DEFINE_string(
        "checkpoint",
        None,
        "The authors' checkpoint: a .pth.tar (or bare state_dict) written by "
        "torch.save, or a .npz of arrays.",
    )
    config = flags.DEFINE_string(
        "config",
        None,
        "JSON file of the authors' iRevNet constructor arguments (or an "
        "object holding them under 'constructor').",
    )
    output = flags.DEFINE_string(
        "output", None, "Where to write the Keras model (a .keras file)."
    )
    allow_pickle = flags.DEFINE_bool(
        "allow_pickle",
        False,
        "Read PyTorch files with full unpickling (torch.load with "
        "weights_only=False). Only for files from a trusted source.",
    )
    flags.mark_flags_as_required(["checkpoint", "config", "output"])

    def fail(message):
        message = " ".join(str(message).split())
        print(f"convert: error: {message}", file=sys.stderr)
        sys.exit(2)

    def parse_flags(argv):
        try:
            return flags.FLAGS(argv)
        except flags.Error as error:
            fail(error)

    def main(argv):
        if len(argv) > 1:
            fail(f"unexpected arguments: {' '.join(argv[1:])}")
        if not output.value.endswith(".keras"):
            fail(
                "--output must name a .keras file. "
                f"Received: --output={output.value}"
            )
        try:
            model = convert_checkpoint(
                checkpoint.value, config.value, allow_pickle=allow_pickle.value
            )
            model.save(output.value)
        except (ValueError, OSError, ImportError) as error:
            fail(error)
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        print(
            f"Converted {checkpoint.value} into an IRevNetClassifier with "
            f"{model.count_params():,} parameters ({trainable:,} trainable). "
            f"Wrote {output.value}"
        )

    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    _run_cli()
