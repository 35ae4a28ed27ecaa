"""The names of the exported models, as the model server serves them.

The export (`export/export_lib.py`) writes two SavedModels under these
names and the client (`irevnet_tf.serving.client`) addresses them by them:

    irevnet_forward   serving_default: images -> logits, probabilities,
                                                features
                      image_bytes: image_bytes -> logits, probabilities,
                                                  features
    irevnet_inverse   serving_default: features -> images

`images` are float32 pixels in [0, 1] `[batch, H, W, C]` (the model
standardises them itself, if it was trained to); `image_bytes` a string
tensor `[batch]` of encoded images (PNG, JPEG, GIF or BMP), decoded and
brought to the model's input size as its training recipe evaluated.
Every other tensor is float32. The forward's `features` output is the
inverse's `features` input; the inverse returns pixels.
"""

# Model names: the directories under the export's --output_dir and the
# names in its models.config.
FORWARD_NAME = "irevnet_forward"
INVERSE_NAME = "irevnet_inverse"

# The signature of each SavedModel that takes tensors (TF Serving's default).
SIGNATURE_NAME = "serving_default"
# The forward model's second signature, and its input: encoded images.
IMAGE_BYTES_SIGNATURE_NAME = "image_bytes"
IMAGE_BYTES = "image_bytes"

IMAGES = "images"
LOGITS = "logits"
PROBABILITIES = "probabilities"
FEATURES = "features"

FORWARD_INPUT = IMAGES
FORWARD_OUTPUTS = (LOGITS, PROBABILITIES, FEATURES)
INVERSE_INPUT = FEATURES
INVERSE_OUTPUTS = (IMAGES,)

# The model server's default ports.
GRPC_PORT = 8500
REST_PORT = 8501
