"""Export of i-RevNet classifiers as SavedModels for TensorFlow Serving.

`export_lib` writes a forward and an inverse SavedModel plus the model
server's `models.config`; `export` is its command line; `serving_client`
builds requests for the model server and reads its responses.
"""
