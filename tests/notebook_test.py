"""notebooks/quickstart.ipynb, executed end to end in a fresh kernel."""

import os
import re

import nbclient
import nbformat
import pytest

from irevnet_tf.testing.digit_files import prepared_digits_dir
from irevnet_tf.testing.test_case import TestCase

REPO = os.path.dirname(os.path.dirname(__file__))
NOTEBOOK = os.path.join(REPO, "notebooks", "quickstart.ipynb")


def outputs_text(cell):
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


class QuickstartNotebookTest(TestCase):
    def test_stored_without_outputs(self):
        notebook = nbformat.read(NOTEBOOK, as_version=4)
        nbformat.validate(notebook)
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type == "code":
                self.assertEmpty(cell.outputs, f"cell {index} has outputs")
                self.assertIsNone(cell.execution_count, f"cell {index}")

    @pytest.mark.large
    def test_runs_end_to_end(self):
        notebook = nbformat.read(NOTEBOOK, as_version=4)
        client = nbclient.NotebookClient(
            notebook,
            kernel_name="python3",
            timeout=900,
            resources={"metadata": {"path": REPO}},
        )
        # Runs every cell; a failing cell raises CellExecutionError.
        client.execute(
            env=dict(
                os.environ,
                TFDS_DATA_DIR=prepared_digits_dir(),
                TF_CPP_MIN_LOG_LEVEL="2",
                MPLBACKEND="module://matplotlib_inline.backend_inline",
            )
        )
        text = "\n".join(outputs_text(c) for c in notebook.cells)
        accuracy = float(re.search(r"test accuracy: (\S+)", text).group(1))
        self.assertGreater(accuracy, 0.9)
        mean_error = float(re.search(r"mean (\S+), max", text).group(1))
        self.assertLess(mean_error, 1e-5)
        figures = [
            output
            for cell in notebook.cells
            for output in cell.get("outputs", [])
            if "image/png" in output.get("data", {})
        ]
        # Originals beside reconstructions, and the interpolation.
        self.assertLen(figures, 2)
