import json
import os

import numpy as np
from matplotlib import figure as figure_lib

from irevnet_tf.analysis import outputs
from irevnet_tf.testing.test_case import TestCase


class OutputsTest(TestCase):
    def test_non_finite_numpy_scalars_become_null(self):
        # np.float64 is a Python float, but np.float32 is not: both count.
        record = {
            "nan64": np.float64("nan"),
            "inf32": np.float32("inf"),
            "values": np.array([1.5, np.nan]),
            "count": np.int64(3),
        }
        self.assertEqual(
            outputs.to_json(record),
            {"nan64": None, "inf32": None, "values": [1.5, None], "count": 3},
        )

    def test_writes_strict_json_and_figure_without_leftovers(self):
        output_dir = os.path.join(self.get_temp_dir(), "new")
        fig = figure_lib.Figure()
        fig.add_subplot().plot([0, 1])
        json_path, png_path = outputs.write_outputs(
            output_dir, "demo", {"error": np.float64("nan")}, fig
        )
        with open(json_path) as file:
            self.assertEqual(json.load(file), {"error": None})
        self.assertTrue(os.path.isfile(png_path))
        self.assertCountEqual(os.listdir(output_dir), ["demo.json", "demo.png"])
