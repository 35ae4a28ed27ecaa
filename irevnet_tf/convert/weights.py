"""The authors' PyTorch state_dict, assigned to an `IRevNetClassifier`.

State-dict keys name the authors' modules: the blocks' bottlenecks are an
`nn.Sequential`, `stack.<block>.bottleneck_block.<position>.<param>`, and
the head is `bn1.*` and `linear.*`. Convolution kernels are OIHW in PyTorch
and HWIO in Keras; dense kernels are transposed.
"""

import collections.abc

import numpy as np

from irevnet_tf.convert.constructor import build_model

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

# What `nn.DataParallel` puts before every key of the wrapped model.
_DATA_PARALLEL_PREFIX = "module."


def convert_state_dict(state_dict, config, input_mean=None, input_std=None):
    """Builds an `IRevNetClassifier` holding the weights of `state_dict`.

    Args:
        state_dict: mapping of the authors' PyTorch state-dict keys (with or
            without the `module.` prefix of `nn.DataParallel`) to arrays:
            numpy arrays, or anything `np.asarray` accepts (PyTorch tensors
            work too). `num_batches_tracked` entries are ignored.
        config: the authors' constructor arguments, as `config_from_authors`
            takes them.
        input_mean, input_std: optional per-channel pixel statistics the
            model standardises its inputs with (`IRevNet`'s arguments), so
            that a model the authors trained on normalised images takes
            pixels; None for none (the model takes what the authors' took).

    Returns:
        An `IRevNetClassifier` in which every weight comes from `state_dict`.

    Raises:
        ValueError: for a bad `config`, or a missing, unknown or mis-shaped
            key; the message names the key.
    """
    model = build_model(config, input_mean=input_mean, input_std=input_std)
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
        value = to_numpy(state_dict[key])
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


def to_numpy(value):
    """`value` as a numpy array; PyTorch tensors without importing torch."""
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
