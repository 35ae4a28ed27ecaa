"""Requests to TensorFlow Serving for the exported i-RevNet models.

The model server (see `export/export_lib.py` and `signatures`) serves a
forward model, pixel images in [0, 1] (or, under the signature
`image_bytes`, encoded PNG/JPEG/GIF/BMP files) to `logits`,
`probabilities` and `features`, and an inverse model, `features` back to
pixel images. This module builds its REST JSON
bodies and gRPC `PredictRequest`s and reads the responses back into numpy
arrays. It needs `tensorflow` and `tensorflow-serving-api` only:

    from irevnet_tf.serving import client

Example (gRPC):

>>> stub = prediction_service_stub("localhost:8500")
>>> outputs = parse_predict_response(stub.Predict(forward_request(images)))
>>> restored = parse_predict_response(
...     stub.Predict(inverse_request(outputs["features"])))["images"]

Example (REST):

>>> url = rest_url(FORWARD_NAME)   # http://localhost:8501/v1/models/...
>>> body = forward_rest_body(images)          # json.dumps(body) to POST
>>> outputs = parse_rest_response(reply_text, FORWARD_OUTPUTS)

Example (encoded images, gRPC or REST):

>>> with open("cat.jpg", "rb") as f:
...     jpeg = f.read()
>>> outputs = parse_predict_response(stub.Predict(image_bytes_request([jpeg])))
>>> body = image_bytes_rest_body([jpeg])
>>> # {"signature_name": "image_bytes",
>>> #  "instances": [{"image_bytes": {"b64": "/9j/4AAQ..."}}]}
"""

import base64
import json
from collections.abc import Mapping
from collections.abc import Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

# The names are part of this module's interface (`client.FORWARD_OUTPUTS`).
from irevnet_tf.serving.signatures import FORWARD_INPUT
from irevnet_tf.serving.signatures import FORWARD_NAME
from irevnet_tf.serving.signatures import FORWARD_OUTPUTS
from irevnet_tf.serving.signatures import GRPC_PORT
from irevnet_tf.serving.signatures import IMAGE_BYTES
from irevnet_tf.serving.signatures import IMAGE_BYTES_SIGNATURE_NAME
from irevnet_tf.serving.signatures import INVERSE_INPUT
from irevnet_tf.serving.signatures import INVERSE_NAME
from irevnet_tf.serving.signatures import INVERSE_OUTPUTS  # noqa: F401
from irevnet_tf.serving.signatures import REST_PORT
from irevnet_tf.serving.signatures import SIGNATURE_NAME

# gRPC clients refuse messages over 4 MiB by default; the features of a batch
# of 64 CIFAR images are 8 MiB (the model server itself has no such limit).
GRPC_CHANNEL_OPTIONS = (
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
)
_REST_FORMATS = ("instances", "inputs")


class ServingError(RuntimeError):
    """The model server answered with an error instead of outputs."""


def rest_url(
    model_name: str,
    host: str = "localhost",
    port: int = REST_PORT,
    version: int | None = None,
) -> str:
    """The REST predict URL of a model, optionally of one version.

    Pin the version when the features of one model version go to the
    inverse: a newer version of the other model would not invert them.
    """
    version_path = "" if version is None else f"/versions/{int(version)}"
    return f"http://{host}:{port}/v1/models/{model_name}{version_path}:predict"


def rest_body(
    inputs: Mapping[str, np.ndarray],
    signature_name: str = SIGNATURE_NAME,
    format: str = "instances",
) -> dict:
    """A REST predict request body (a dict for `json.dumps`).

    Args:
        inputs: input name to a float32 array `[batch, ...]`.
        signature_name: the SavedModel signature to run.
        format: "instances" (row format: a list with one object per example)
            or "inputs" (columnar: each input as one nested list).

    Returns:
        `{"signature_name": ..., "instances": [{name: example}, ...]}` or
        `{"signature_name": ..., "inputs": {name: batch}}`.
    """
    if format not in _REST_FORMATS:
        raise ValueError(
            f"`format` must be one of {_REST_FORMATS}. Received: "
            f"format={format!r}"
        )
    arrays = {
        name: _float32_batch(name, value) for name, value in inputs.items()
    }
    body = {"signature_name": signature_name}
    if format == "inputs":
        body["inputs"] = {
            name: array.tolist() for name, array in arrays.items()
        }
    else:
        sizes = {name: len(array) for name, array in arrays.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(
                "Row format needs the same batch size for every input. "
                f"Received: batch sizes {sizes}"
            )
        lists = {name: array.tolist() for name, array in arrays.items()}
        body["instances"] = [
            {name: rows[index] for name, rows in lists.items()}
            for index in range(next(iter(sizes.values()), 0))
        ]
    return body


def forward_rest_body(images: np.ndarray, format: str = "instances") -> dict:
    """The REST body sending `images` `[batch, H, W, C]` to the forward."""
    return rest_body({FORWARD_INPUT: images}, format=format)


def inverse_rest_body(features: np.ndarray, format: str = "instances") -> dict:
    """The REST body sending `features` `[batch, h, w, c]` to the inverse."""
    return rest_body({INVERSE_INPUT: features}, format=format)


def image_bytes_rest_body(
    images: Sequence[bytes], format: str = "instances"
) -> dict:
    """The REST body sending encoded images to the forward's `image_bytes`.

    Args:
        images: the contents of PNG, JPEG, GIF or BMP files, one per
            example (of any size: the model server resizes them as the
            model's recipe evaluated).
        format: "instances" (row format) or "inputs" (columnar).

    Returns:
        `{"signature_name": "image_bytes", "instances": [{"image_bytes":
        {"b64": ...}}, ...]}` (TF Serving's encoding of binary strings), or
        `{"signature_name": "image_bytes", "inputs": {"image_bytes":
        [{"b64": ...}, ...]}}`.
    """
    if format not in _REST_FORMATS:
        raise ValueError(
            f"`format` must be one of {_REST_FORMATS}. Received: "
            f"format={format!r}"
        )
    encoded = [
        {"b64": base64.b64encode(image).decode("ascii")}
        for image in _image_bytes_batch(images)
    ]
    body = {"signature_name": IMAGE_BYTES_SIGNATURE_NAME}
    if format == "inputs":
        body["inputs"] = {IMAGE_BYTES: encoded}
    else:
        body["instances"] = [{IMAGE_BYTES: value} for value in encoded]
    return body


def parse_rest_response(
    response: str | bytes | Mapping, output_names: Sequence[str]
) -> dict[str, np.ndarray]:
    """The arrays in a REST predict response.

    Args:
        response: the response body (JSON text or already decoded).
        output_names: the signature's output names, in any order
            (`FORWARD_OUTPUTS` or `INVERSE_OUTPUTS`). The server leaves the
            name out when a signature has a single output.

    Returns:
        Output name to float32 array `[batch, ...]`.

    Raises:
        ServingError: if the response reports an error.
        ValueError: if it holds neither "predictions" nor "outputs", or
            other outputs than `output_names`.
    """
    if isinstance(response, (str, bytes)):
        response = json.loads(response)
    if "error" in response:
        raise ServingError(response["error"])
    output_names = tuple(output_names)
    if "predictions" in response:  # The reply to the row format.
        rows = response["predictions"]
        if rows and isinstance(rows[0], Mapping):
            _check_output_names(rows[0].keys(), output_names)
            outputs = {
                name: [row[name] for row in rows] for name in output_names
            }
        else:
            outputs = {_single_output_name(output_names): rows}
    elif "outputs" in response:  # The reply to the columnar format.
        columns = response["outputs"]
        if isinstance(columns, Mapping):
            _check_output_names(columns.keys(), output_names)
            outputs = dict(columns)
        else:
            outputs = {_single_output_name(output_names): columns}
    else:
        raise ValueError(
            'A predict response holds "predictions" or "outputs". Received: '
            f"keys {sorted(response)}"
        )
    return {
        name: np.asarray(value, dtype=np.float32)
        for name, value in outputs.items()
    }


def predict_request(
    model_name: str,
    inputs: Mapping[str, np.ndarray],
    signature_name: str = SIGNATURE_NAME,
    version: int | None = None,
    output_filter: Sequence[str] = (),
) -> predict_pb2.PredictRequest:
    """A gRPC `PredictRequest` carrying `inputs` as float32 tensors.

    Args:
        model_name: the model's name in `models.config`.
        inputs: input name to array `[batch, ...]`.
        signature_name: the SavedModel signature to run.
        version: a model version, or None for the latest one served.
        output_filter: names of the outputs to return; all if empty (the
            forward's `features` are much larger than its logits).
    """
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(
            tf.make_tensor_proto(_float32_batch(name, value))
        )
    request.output_filter.extend(output_filter)
    return request


def forward_request(
    images: np.ndarray,
    model_name: str = FORWARD_NAME,
    version: int | None = None,
    output_filter: Sequence[str] = (),
) -> predict_pb2.PredictRequest:
    """The `PredictRequest` sending `images` `[batch, H, W, C]` forward."""
    for name in output_filter:
        if name not in FORWARD_OUTPUTS:
            raise ValueError(
                f"The forward model's outputs are {FORWARD_OUTPUTS}. "
                f"Received: output_filter={list(output_filter)}"
            )
    return predict_request(
        model_name,
        {FORWARD_INPUT: images},
        version=version,
        output_filter=output_filter,
    )


def inverse_request(
    features: np.ndarray,
    model_name: str = INVERSE_NAME,
    version: int | None = None,
) -> predict_pb2.PredictRequest:
    """The `PredictRequest` sending `features` to the inverse model."""
    return predict_request(
        model_name, {INVERSE_INPUT: features}, version=version
    )


def image_bytes_request(
    images: Sequence[bytes],
    model_name: str = FORWARD_NAME,
    version: int | None = None,
    output_filter: Sequence[str] = (),
) -> predict_pb2.PredictRequest:
    """The `PredictRequest` sending encoded images to `image_bytes`.

    Args:
        images: the contents of PNG, JPEG, GIF or BMP files, one per example.
        model_name, version, output_filter: as for `forward_request`.
    """
    for name in output_filter:
        if name not in FORWARD_OUTPUTS:
            raise ValueError(
                f"The forward model's outputs are {FORWARD_OUTPUTS}. "
                f"Received: output_filter={list(output_filter)}"
            )
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = IMAGE_BYTES_SIGNATURE_NAME
    if version is not None:
        request.model_spec.version.value = int(version)
    request.inputs[IMAGE_BYTES].CopyFrom(
        tf.make_tensor_proto(_image_bytes_batch(images), dtype=tf.string)
    )
    request.output_filter.extend(output_filter)
    return request


def parse_predict_response(
    response: predict_pb2.PredictResponse,
    output_names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """The arrays in a gRPC `PredictResponse`, by output name.

    Args:
        response: the model server's reply.
        output_names: outputs that must be present; None accepts any.
    """
    if output_names is not None:
        missing = sorted(set(output_names) - set(response.outputs))
        if missing:
            raise ValueError(
                f"The response lacks outputs {missing}. Received: outputs "
                f"{sorted(response.outputs)}"
            )
    return {
        name: tf.make_ndarray(tensor)
        for name, tensor in response.outputs.items()
    }


def prediction_service_stub(
    target: str = f"localhost:{GRPC_PORT}",
) -> prediction_service_pb2_grpc.PredictionServiceStub:
    """A gRPC stub of the model server at `target`, without the 4 MiB limit.

    The channel connects lazily, on the first call.
    """
    channel = grpc.insecure_channel(target, options=GRPC_CHANNEL_OPTIONS)
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _float32_batch(name: str, value) -> np.ndarray:
    array = np.asarray(value)
    if not (
        np.issubdtype(array.dtype, np.floating)
        or np.issubdtype(array.dtype, np.integer)
    ):
        raise ValueError(
            f"`{name}` must hold numbers. Received: dtype={array.dtype}"
        )
    if array.ndim != 4:
        raise ValueError(
            f"`{name}` must be a batch [batch, height, width, channels]. "
            f"Received: shape={array.shape}"
        )
    return array.astype(np.float32, copy=False)


def _image_bytes_batch(images) -> list[bytes]:
    if not isinstance(images, (bytes, str)):
        images = list(images)
    if isinstance(images, (bytes, str)) or not all(
        isinstance(image, bytes) for image in images
    ):
        raise ValueError(
            "`images` must be a sequence of bytes objects (encoded image "
            f"files). Received: {type(images).__name__}"
        )
    return list(images)


def _check_output_names(names, expected: tuple) -> None:
    if set(names) != set(expected):
        raise ValueError(
            f"Expected outputs {sorted(expected)}. Received: {sorted(names)}"
        )


def _single_output_name(expected: tuple) -> str:
    # The server names no output when the signature has only one.
    if len(expected) != 1:
        raise ValueError(
            f"Expected outputs {sorted(expected)}. Received: a single "
            "unnamed output"
        )
    return expected[0]
