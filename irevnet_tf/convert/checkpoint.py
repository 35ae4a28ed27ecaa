"""Reading the authors' checkpoints and constructor arguments from files.

A checkpoint is a `.pth.tar` written by the authors' ImageNet script, a bare
`state_dict` saved with `torch.save` (both need PyTorch), or a `.npz` of
arrays (no PyTorch needed). The constructor arguments are a JSON object.
"""

import collections.abc
import json
import os
import pickle
import re
import shutil

import numpy as np

from irevnet_tf import files
from irevnet_tf.convert.constructor import config_from_authors
from irevnet_tf.convert.constructor import constructor_arguments
from irevnet_tf.convert.weights import convert_state_dict
from irevnet_tf.convert.weights import to_numpy

_NPZ_STATE_DICT_PREFIX = "state_dict/"


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
    return constructor_arguments(config)


def convert_checkpoint(
    checkpoint, config, allow_pickle=False, input_mean=None, input_std=None
):
    """`convert_state_dict(load_checkpoint(checkpoint), load_config(config))`.

    `config` may also be a mapping of the authors' constructor arguments.
    """
    if not isinstance(config, collections.abc.Mapping):
        config = load_config(config)
    # Validate the (cheap) config before reading a large checkpoint.
    config_from_authors(config)
    return convert_state_dict(
        load_checkpoint(checkpoint, allow_pickle=allow_pickle),
        config,
        input_mean=input_mean,
        input_std=input_std,
    )


def save_model(model, path: str) -> None:
    """Writes `model` to the `.keras` file `path`, staged and renamed.

    A kill while writing leaves the file that was there (or none), never
    half of one; the staging directory it leaves is removed by the next
    `save_model` to the same path.
    """
    path = os.path.abspath(path)
    directory, name = os.path.split(path)
    for entry in os.listdir(directory):
        staging = os.path.join(directory, entry)
        # Only ours: a staging directory holding (part of) this file.
        if (
            entry.startswith(files.STAGING_PREFIX)
            and os.path.isdir(staging)
            and os.listdir(staging) == [name]
        ):
            shutil.rmtree(staging, ignore_errors=True)
    with files.atomic_path(path) as staged:
        model.save(staged)


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
    return {key: to_numpy(value) for key, value in checkpoint.items()}


def _unpickler_reason(error):
    # torch's message is long; its "WeightsUnpickler error: ..." line says why.
    match = re.search(r"WeightsUnpickler error:\s*(.+)", str(error))
    reason = match.group(1) if match else str(error).strip().splitlines()[0]
    return reason.split(". Please")[0].rstrip(".")
