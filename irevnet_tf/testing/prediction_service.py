"""Stand-ins for TF Serving's Predict API, run by `tf.saved_model.load`.

Not the model server: they check the client's side of the wire (the stubs,
request bodies, message sizes, input and output names and signatures of
the real SavedModels). `StandInPredictionService` answers gRPC `Predict`
calls; `rest_predict` answers a REST predict body as the model server's
REST API documents it (https://www.tensorflow.org/tfx/serving/api_rest):
row ("instances") or columnar ("inputs") format, `{"b64": ...}` for binary
strings, a row-format reply of "predictions" or a columnar one of
"outputs".
"""

import base64

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc


def load_signatures(export_dirs: dict) -> dict:
    """`{model name: {signature name: concrete function}}`."""
    return {
        name: dict(tf.saved_model.load(path).signatures)
        for name, path in export_dirs.items()
    }


class StandInPredictionService(
    prediction_service_pb2_grpc.PredictionServiceServicer
):
    """TF Serving's Predict over gRPC on the SavedModels of `export_dirs`."""

    def __init__(self, export_dirs: dict):
        self.signatures = load_signatures(export_dirs)

    def Predict(self, request, context):
        model = self.signatures[request.model_spec.name]
        signature = model[
            request.model_spec.signature_name or "serving_default"
        ]
        outputs = signature(
            **{
                name: tf.constant(tf.make_ndarray(tensor))
                for name, tensor in request.inputs.items()
            }
        )
        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(request.model_spec)
        for name, tensor in outputs.items():
            if not request.output_filter or name in request.output_filter:
                response.outputs[name].CopyFrom(
                    tf.make_tensor_proto(tensor.numpy())
                )
        return response


def _decode_value(value):
    """A JSON value of a request as TF Serving reads it."""
    if isinstance(value, dict) and list(value) == ["b64"]:
        return base64.b64decode(value["b64"])
    if isinstance(value, dict):
        return {name: _decode_value(v) for name, v in value.items()}
    if isinstance(value, list):
        return [_decode_value(v) for v in value]
    return value


def _tensor(values):
    if values and isinstance(values[0], bytes):
        return tf.constant(values, tf.string)
    return tf.constant(np.asarray(values, np.float32))


def rest_predict(signatures: dict, body: dict) -> dict:
    """The model server's JSON reply to the REST predict `body`.

    Args:
        signatures: `{signature name: concrete function}` of one model.
        body: the request body, as parsed from JSON.
    """
    signature = signatures[body.get("signature_name", "serving_default")]
    if "instances" in body:
        instances = [_decode_value(i) for i in body["instances"]]
        names = list(instances[0])
        inputs = {
            name: _tensor([instance[name] for instance in instances])
            for name in names
        }
    else:
        inputs = {
            name: _tensor(_decode_value(value))
            for name, value in body["inputs"].items()
        }
    outputs = {
        name: tensor.numpy().tolist()
        for name, tensor in signature(**inputs).items()
    }
    if "instances" in body:
        count = len(next(iter(outputs.values())))
        return {
            "predictions": [
                {name: values[i] for name, values in outputs.items()}
                for i in range(count)
            ]
        }
    return {"outputs": outputs}
