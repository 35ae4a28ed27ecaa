import base64
import concurrent.futures
import json
import shutil
import tempfile

import grpc
import numpy as np
import tensorflow as tf
from absl.testing import parameterized
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from export import export_lib
from irevnet_tf.serving import client
from irevnet_tf.testing.prediction_service import StandInPredictionService
from irevnet_tf.testing.small_classifier import small_classifier
from irevnet_tf.testing.test_case import TestCase
from irevnet_tf.testing.test_case import relative_error


def random_array(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def json_round_trip(body):
    # What goes over the wire.
    return json.loads(json.dumps(body))


class RestTest(TestCase):
    def test_rest_url(self):
        self.assertEqual(
            client.rest_url("irevnet_forward"),
            "http://localhost:8501/v1/models/irevnet_forward:predict",
        )
        self.assertEqual(
            client.rest_url(
                "irevnet_inverse", host="server", port=9000, version=3
            ),
            "http://server:9000/v1/models/irevnet_inverse/versions/3:predict",
        )

    @parameterized.named_parameters(
        ("forward", "forward_rest_body", "images", (2, 4, 4, 3)),
        ("inverse", "inverse_rest_body", "features", (2, 2, 2, 12)),
    )
    def test_row_format_bodies(self, make_body, name, shape):
        array = random_array(shape)
        body = json_round_trip(getattr(client, make_body)(array))
        self.assertEqual(sorted(body), ["instances", "signature_name"])
        self.assertEqual(body["signature_name"], "serving_default")
        self.assertLen(body["instances"], 2)
        for index, instance in enumerate(body["instances"]):
            self.assertEqual(list(instance), [name])
            # JSON numbers carry float32 values exactly.
            self.assertAllEqual(
                np.asarray(instance[name], np.float32), array[index]
            )

    @parameterized.named_parameters(
        ("forward", "forward_rest_body", "images", (3, 4, 4, 3)),
        ("inverse", "inverse_rest_body", "features", (3, 2, 2, 12)),
    )
    def test_columnar_format_bodies(self, make_body, name, shape):
        array = random_array(shape)
        body = json_round_trip(
            getattr(client, make_body)(array, format="inputs")
        )
        self.assertEqual(
            body,
            {
                "signature_name": "serving_default",
                "inputs": {name: array.tolist()},
            },
        )
        self.assertAllEqual(np.asarray(body["inputs"][name], np.float32), array)

    def test_other_dtypes_become_float32(self):
        images = np.random.rand(1, 2, 2, 3)
        body = client.forward_rest_body(images, format="inputs")
        self.assertAllEqual(
            np.asarray(body["inputs"]["images"], np.float32),
            images.astype(np.float32),
        )

    def test_image_bytes_bodies(self):
        files = [b"\x89PNG\r\n\x1a\nfirst", b"\xff\xd8\xffsecond"]
        rows = json_round_trip(client.image_bytes_rest_body(files))
        self.assertEqual(
            rows,
            {
                "signature_name": "image_bytes",
                "instances": [
                    {"image_bytes": {"b64": base64.b64encode(f).decode()}}
                    for f in files
                ],
            },
        )
        columns = json_round_trip(
            client.image_bytes_rest_body(files, format="inputs")
        )
        self.assertEqual(columns["signature_name"], "image_bytes")
        self.assertEqual(
            [
                base64.b64decode(v["b64"])
                for v in columns["inputs"]["image_bytes"]
            ],
            files,
        )

    @parameterized.named_parameters(
        ("one_bytes_object", b"\x89PNG"),
        ("text", ["cat.png"]),
    )
    def test_image_bytes_must_be_a_sequence_of_bytes(self, images):
        with self.assertRaisesRegex(ValueError, r"sequence of bytes objects"):
            client.image_bytes_rest_body(images)
        with self.assertRaisesRegex(ValueError, r"sequence of bytes objects"):
            client.image_bytes_request(images)

    def test_invalid_bodies(self):
        with self.assertRaisesRegex(ValueError, r"Received: format='rows'"):
            client.forward_rest_body(random_array((1, 2, 2, 3)), format="rows")
        with self.assertRaisesRegex(ValueError, r"Received: shape=\(4, 4, 3\)"):
            client.forward_rest_body(random_array((4, 4, 3)))
        with self.assertRaisesRegex(ValueError, r"Received: dtype=<U1"):
            client.inverse_rest_body(np.full((1, 1, 1, 1), "a"))
        with self.assertRaisesRegex(ValueError, r"Received: batch sizes"):
            client.rest_body(
                {
                    "a": random_array((1, 1, 1, 1)),
                    "b": random_array((2, 1, 1, 1)),
                }
            )

    @parameterized.named_parameters(("row", "row"), ("columnar", "columnar"))
    def test_parse_forward_responses(self, format):
        outputs = {
            "logits": random_array((2, 10), 1),
            "probabilities": random_array((2, 10), 2),
            "features": random_array((2, 2, 2, 12), 3),
        }
        if format == "row":
            response = {
                "predictions": [
                    {n: value[index].tolist() for n, value in outputs.items()}
                    for index in range(2)
                ]
            }
        else:
            response = {
                "outputs": {n: value.tolist() for n, value in outputs.items()}
            }
        parsed = client.parse_rest_response(
            json.dumps(response), client.FORWARD_OUTPUTS
        )
        self.assertEqual(sorted(parsed), sorted(outputs))
        for name, value in outputs.items():
            self.assertEqual(parsed[name].dtype, np.float32)
            self.assertAllEqual(parsed[name], value)
        with self.assertRaisesRegex(
            ValueError, r"Expected outputs \['images'\]"
        ):
            client.parse_rest_response(response, client.INVERSE_OUTPUTS)

    @parameterized.named_parameters(
        ("row", "predictions"), ("columnar", "outputs")
    )
    def test_parse_inverse_responses(self, key):
        # A signature with one output: the server leaves out its name.
        images = random_array((2, 4, 4, 3))
        response = {key: images.tolist()}
        parsed = client.parse_rest_response(
            json.dumps(response).encode(), client.INVERSE_OUTPUTS
        )
        self.assertEqual(list(parsed), ["images"])
        self.assertAllEqual(parsed["images"], images)
        with self.assertRaisesRegex(
            ValueError, r"Received: a single unnamed output"
        ):
            client.parse_rest_response(response, client.FORWARD_OUTPUTS)

    def test_parse_error_responses(self):
        message = (
            "assertion failed: [irevnet_forward: `images` must be a float32 "
            "tensor of shape [batch, 32, 32, 3]. Received shape:] [1 8 8 3]"
        )
        with self.assertRaisesRegex(
            client.ServingError, r"\[batch, 32, 32, 3\]"
        ):
            client.parse_rest_response(
                json.dumps({"error": message}), client.FORWARD_OUTPUTS
            )
        with self.assertRaisesRegex(ValueError, r"Received: keys \['result'\]"):
            client.parse_rest_response({"result": []}, client.FORWARD_OUTPUTS)


class GrpcTest(TestCase):
    def test_forward_request(self):
        images = random_array((2, 4, 4, 3))
        request = client.forward_request(
            images, version=7, output_filter=["logits", "probabilities"]
        )
        # Parsed back from bytes, as the server receives it.
        request = predict_pb2.PredictRequest.FromString(
            request.SerializeToString()
        )
        self.assertEqual(request.model_spec.name, "irevnet_forward")
        self.assertEqual(request.model_spec.signature_name, "serving_default")
        self.assertEqual(request.model_spec.version.value, 7)
        self.assertEqual(
            list(request.output_filter), ["logits", "probabilities"]
        )
        self.assertEqual(list(request.inputs), ["images"])
        tensor = request.inputs["images"]
        self.assertEqual(tensor.dtype, types_pb2.DT_FLOAT)
        self.assertEqual(
            [d.size for d in tensor.tensor_shape.dim], [2, 4, 4, 3]
        )
        self.assertAllEqual(tf.make_ndarray(tensor), images)

    def test_inverse_request(self):
        features = np.random.rand(3, 2, 2, 12)  # float64: sent as float32
        request = client.inverse_request(features, model_name="my_inverse")
        self.assertEqual(request.model_spec.name, "my_inverse")
        self.assertEqual(request.model_spec.signature_name, "serving_default")
        self.assertFalse(request.model_spec.HasField("version"))
        self.assertEqual(list(request.output_filter), [])
        self.assertEqual(list(request.inputs), ["features"])
        self.assertEqual(request.inputs["features"].dtype, types_pb2.DT_FLOAT)
        self.assertAllEqual(
            tf.make_ndarray(request.inputs["features"]),
            features.astype(np.float32),
        )

    def test_image_bytes_request(self):
        files = [b"GIF89a...", b"BM..."]
        request = client.image_bytes_request(
            files, version=2, output_filter=["logits"]
        )
        self.assertEqual(request.model_spec.name, "irevnet_forward")
        self.assertEqual(request.model_spec.signature_name, "image_bytes")
        self.assertEqual(request.model_spec.version.value, 2)
        self.assertEqual(list(request.inputs), ["image_bytes"])
        tensor = request.inputs["image_bytes"]
        self.assertEqual(tensor.dtype, types_pb2.DT_STRING)
        self.assertEqual(list(tf.make_ndarray(tensor)), files)
        self.assertEqual(list(request.output_filter), ["logits"])
        with self.assertRaisesRegex(ValueError, r"output_filter=\['images'\]"):
            client.image_bytes_request(files, output_filter=["images"])

    def test_invalid_requests(self):
        with self.assertRaisesRegex(
            ValueError, r"Received: output_filter=\['images'\]"
        ):
            client.forward_request(
                random_array((1, 2, 2, 3)), output_filter=["images"]
            )
        with self.assertRaisesRegex(ValueError, r"Received: shape=\(2, 12\)"):
            client.inverse_request(random_array((2, 12)))

    def test_parse_predict_response(self):
        outputs = {
            "logits": random_array((2, 10), 1),
            "probabilities": random_array((2, 10), 2),
            "features": random_array((2, 2, 2, 12), 3),
        }
        response = predict_pb2.PredictResponse()
        response.model_spec.name = "irevnet_forward"
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        response = predict_pb2.PredictResponse.FromString(
            response.SerializeToString()
        )
        parsed = client.parse_predict_response(response, client.FORWARD_OUTPUTS)
        self.assertEqual(sorted(parsed), sorted(outputs))
        for name, value in outputs.items():
            self.assertEqual(parsed[name].dtype, np.float32)
            self.assertAllEqual(parsed[name], value)
        with self.assertRaisesRegex(ValueError, r"lacks outputs \['images'\]"):
            client.parse_predict_response(response, client.INVERSE_OUTPUTS)


class GrpcRoundTripTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.output_dir = tempfile.mkdtemp()
        cls.model = small_classifier()
        export = export_lib.export_for_serving(cls.model, cls.output_dir)
        cls.server = grpc.server(
            concurrent.futures.ThreadPoolExecutor(max_workers=2),
            # Like tensorflow_model_server: no message size limit.
            options=client.GRPC_CHANNEL_OPTIONS,
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            StandInPredictionService(
                {
                    "irevnet_forward": export.forward_dir,
                    "irevnet_inverse": export.inverse_dir,
                }
            ),
            cls.server,
        )
        cls.target = f"localhost:{cls.server.add_insecure_port('localhost:0')}"
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop(grace=None)
        shutil.rmtree(cls.output_dir)
        super().tearDownClass()

    def test_forward_then_inverse(self):
        stub = client.prediction_service_stub(self.target)
        # 300 images: features of 4.9 MB, over gRPC's default 4 MiB limit.
        images = np.random.rand(300, 16, 16, 3).astype("float32")
        outputs = client.parse_predict_response(
            stub.Predict(client.forward_request(images), timeout=60),
            client.FORWARD_OUTPUTS,
        )
        self.assertAllClose(
            outputs["logits"][:4], self.model(images[:4]), atol=1e-5
        )
        restored = client.parse_predict_response(
            stub.Predict(
                client.inverse_request(outputs["features"]), timeout=60
            ),
            client.INVERSE_OUTPUTS,
        )["images"]
        self.assertLessEqual(relative_error(restored, images), 1e-5)

        filtered = stub.Predict(
            client.forward_request(images[:2], output_filter=["logits"]),
            timeout=60,
        )
        self.assertEqual(list(filtered.outputs), ["logits"])

        # Without the channel options the client refuses the reply.
        with grpc.insecure_channel(self.target) as channel:
            default_stub = prediction_service_pb2_grpc.PredictionServiceStub(
                channel
            )
            with self.assertRaises(grpc.RpcError) as raised:
                default_stub.Predict(client.forward_request(images), timeout=60)
        self.assertEqual(
            raised.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED
        )
