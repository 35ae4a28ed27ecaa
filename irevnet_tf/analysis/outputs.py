"""What every analysis writes: `NAME.json` with its numbers, `NAME.png`."""

import dataclasses
import os

import numpy as np
from matplotlib import figure as figure_lib

from irevnet_tf import files


def model_record(model, name: str) -> dict:
    """The analysed model: where it came from and its architecture."""
    backbone = model.backbone
    return {
        "name": name,
        "image_shape": list(backbone.image_shape),
        "feature_shape": list(backbone.feature_shape),
        "blocks": len(backbone.blocks),
        "stage_depths": backbone.stage_depths,
        "stage_filters": backbone.stage_filters,
        "stage_strides": backbone.stage_strides,
        "initial_block_size": backbone.initial_block_size,
        "parameters": int(model.count_params()),
        "dtype_policy": model.dtype_policy.name,
    }


def data_record(settings, info, split: str, examples: int) -> dict:
    """The images analysed: dataset, split, and how they were prepared."""
    return {
        "dataset": settings.dataset,
        "split": split,
        "examples": int(examples),
        "image_shape": list(info.image_shape),
        "preprocessing": settings.preprocessing,
        # The model takes pixels (it standardises them itself, if at all).
        "pixel_range": [0.0, 1.0],
    }


def to_json(value):
    """Numpy arrays and scalars (nested) as plain JSON values.

    NaN and infinity, which strict JSON cannot hold, become None.
    """
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json(dataclasses.asdict(value))
    if isinstance(value, np.ndarray):
        return to_json(value.tolist())
    if isinstance(value, np.generic):
        return to_json(value.item())
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_outputs(
    output_dir: str, name: str, record: dict, fig: figure_lib.Figure
) -> tuple[str, str]:
    """Writes `OUTPUT_DIR/NAME.json` and `OUTPUT_DIR/NAME.png` atomically.

    Returns:
        The paths of the JSON file and of the figure.
    """
    os.makedirs(output_dir, exist_ok=True)
    json_path = os.path.join(output_dir, f"{name}.json")
    png_path = os.path.join(output_dir, f"{name}.png")
    files.write_json(json_path, to_json(record))
    with files.atomic_path(png_path) as staged:
        fig.savefig(staged, dpi=120)
    return json_path, png_path
