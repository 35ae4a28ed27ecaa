"""The run directory's layout and its config.json record."""

import json
import os

import pytest

from irevnet_tf import run_directory


def _record():
    return run_directory.RunRecord(
        config={"dataset": "digits", "seed": 0},
        recipe={"name": "digits"},
        dataset=run_directory.DatasetRecord(
            name="digits",
            num_classes=10,
            class_names=[str(i) for i in range(10)],
            image_shape=[16, 16, 1],
            train_examples=1437,
            eval_split="test",
            normalized=False,
            mean=[0.0],
            std=[1.0],
        ),
        steps_per_epoch=22,
        total_steps=440,
        replicas=1,
    )


def test_record_round_trip(tmp_path):
    run = run_directory.RunDirectory(str(tmp_path))
    with open(run.config_path, "w") as f:
        json.dump(_record().to_json(), f)
    assert run_directory.read_run_record(str(tmp_path)) == _record()


def test_missing_record_is_none_and_bad_record_names_the_file(tmp_path):
    assert run_directory.read_run_record(str(tmp_path)) is None
    path = os.path.join(tmp_path, run_directory.CONFIG_FILENAME)
    with open(path, "w") as f:
        f.write('{"config": {}}')
    with pytest.raises(ValueError, match="config.json cannot be read"):
        run_directory.read_run_record(str(tmp_path))


def test_paths_and_of_model(tmp_path):
    run = run_directory.RunDirectory(str(tmp_path))
    assert run.model_path == os.path.join(tmp_path, "model.keras")
    assert run.checkpoint_path.endswith("checkpoints/state.weights.h5")
    assert run.worker_dir("worker", 1).endswith("workers/worker-1")
    os.makedirs(tmp_path / "m")
    assert run_directory.RunDirectory.of_model(str(tmp_path / "m")).path == (
        str(tmp_path / "m")
    )
    found = run_directory.RunDirectory.of_model(run.model_path)
    assert found.path == str(tmp_path)
    assert run_directory.RunDirectory.of_model("other.keras") is None
