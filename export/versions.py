"""The model server's versioned layout, and which model each version holds.

    OUTPUT_DIR/NAME/VERSION/                  a SavedModel
    OUTPUT_DIR/NAME/VERSION/assets.extra/irevnet_export.json
                                              {"model": FINGERPRINT, ...}

TF Serving loads the numeric directories only, and serves the highest
version of each model; it ignores `assets.extra/` but for its warm-up
requests. An export stages both SavedModels of a version before it renames
them into place, one right after the other, so a killed export leaves at
most one of them: a half pair, above the highest complete one. The record
in each version names the model it holds (a fingerprint of its
architecture and weights), so that the next export can tell

* the pair it would write is there already: nothing to write;
* a half pair of the same model: complete it;
* a half pair of another model: pass over it to the next version;
* a version asked for (`--version`) that holds another model: refuse.

Exports from before the records count as other models.
"""

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
from typing import Iterator

import keras
import numpy as np

from irevnet_tf import files

RECORD_PATH = os.path.join("assets.extra", "irevnet_export.json")

# Part of every fingerprint: bump when the exported graphs change, so that
# a model exported again by a changed exporter gets a new version.
EXPORT_FORMAT = 3


@dataclasses.dataclass(frozen=True)
class Plan:
    """What an export writes.

    Attributes:
        version: the version both models end up with.
        missing: the model names that lack it and are written (none when
            the pair is there already).
    """

    version: int
    missing: tuple[str, ...]


def model_fingerprint(model: keras.Model, preprocessing: str = "resize") -> str:
    """A hash of the model's architecture, weights and `EXPORT_FORMAT`.

    And of the `preprocessing` style the `image_bytes` signature applies.

    Layer names are left out: Keras numbers them per process (a model built
    twice is `i_rev_net_classifier` and `i_rev_net_classifier_1`), and they
    change nothing the SavedModels compute.
    """
    digest = hashlib.sha256()
    config = _without_names(keras.saving.serialize_keras_object(model))
    digest.update(
        json.dumps(
            {
                "format": EXPORT_FORMAT,
                "config": config,
                "preprocessing": preprocessing,
            },
            sort_keys=True,
            default=str,
        ).encode()
    )
    for weight in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        digest.update(f"{value.dtype}:{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def write_record(export_dir: str, fingerprint: str) -> None:
    """Records in a (staged) SavedModel which model it holds."""
    path = os.path.join(export_dir, RECORD_PATH)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    files.write_json(
        path, {"model": fingerprint, "export_format": EXPORT_FORMAT}
    )


def read_record(export_dir: str) -> str | None:
    """The fingerprint recorded in a SavedModel, None if it has none."""
    try:
        with open(os.path.join(export_dir, RECORD_PATH)) as file:
            return json.load(file).get("model")
    except (OSError, ValueError, AttributeError):
        return None


def versions(base_path: str) -> set[int]:
    """The version numbers of one model (numeric directory names)."""
    if not os.path.isdir(base_path):
        return set()
    return {
        int(name)
        for name in os.listdir(base_path)
        if name.isdigit() and os.path.isdir(os.path.join(base_path, name))
    }


def latest_pair(output_dir: str, model_names: list[str]) -> int | None:
    """The highest version present in every one of the models, or None.

    A kill between the two SavedModels of an export can leave a higher
    version of one model only; that version is not a pair.
    """
    common = set.intersection(
        *(versions(os.path.join(output_dir, name)) for name in model_names)
    )
    return max(common, default=None)


def next_version(output_dir: str, model_names: list[str]) -> int:
    """One more than the highest version of any of the models, else 1."""
    found = [0]
    for name in model_names:
        found += versions(os.path.join(output_dir, name))
    return max(found) + 1


def plan(
    output_dir: str,
    model_names: list[str],
    fingerprint: str,
    version: int | None = None,
) -> Plan:
    """The version to export a model as, and which of its models to write.

    Args:
        output_dir: the export's output directory.
        model_names: the forward and inverse model names.
        fingerprint: `model_fingerprint` of the model to export.
        version: the version asked for, or None for the default: the
            highest version present if it holds (part of) this model's
            pair, else one more.

    Raises:
        ValueError: if `version` is present and holds another model.
    """
    present = {
        name: versions(os.path.join(output_dir, name)) for name in model_names
    }
    if version is None:
        version = max(set().union(*present.values()), default=0)
        if not version or not _holds(output_dir, present, version, fingerprint):
            version += 1
    elif not _holds(output_dir, present, version, fingerprint):
        existing = [
            os.path.join(output_dir, name, str(version))
            for name in model_names
            if version in present[name]
        ]
        raise ValueError(
            "Version already exists and holds another model; a serving "
            "model version is never overwritten. Pass another version or "
            f"leave it out for the next one. Received: version={version}, "
            f"existing {', '.join(existing)}"
        )
    missing = tuple(
        name for name in model_names if version not in present[name]
    )
    return Plan(version=version, missing=missing)


@contextlib.contextmanager
def exclusive(output_dir: str) -> Iterator[None]:
    """Holds the export's lock on `output_dir` (created if missing).

    The operating system releases it when the process ends, killed or
    not, so a lock is never left behind.

    Raises:
        ValueError: if another process holds it.
    """
    os.makedirs(output_dir, exist_ok=True)
    descriptor = os.open(output_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(
                "Another export is writing to the output directory; run "
                "this one when it is done. Received: "
                f"output_dir={output_dir!r}"
            ) from None
        yield
    finally:
        os.close(descriptor)


def _holds(output_dir, present, version, fingerprint) -> bool:
    """Whether every model that has `version` holds the model `fingerprint`.

    True also when no model has it (nothing to conflict with).
    """
    return all(
        read_record(os.path.join(output_dir, name, str(version))) == fingerprint
        for name, found in present.items()
        if version in found
    )


def _without_names(config):
    if isinstance(config, dict):
        return {k: _without_names(v) for k, v in config.items() if k != "name"}
    if isinstance(config, (list, tuple)):
        return [_without_names(v) for v in config]
    return config
