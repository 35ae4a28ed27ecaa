"""Small models and SavedModel inspection shared by the export tests."""

import collections

import keras
from tensorflow.core.protobuf import saved_model_pb2

from irevnet_tf import IRevNet
from irevnet_tf import IRevNetClassifier
from irevnet_tf.testing.test_case import randomize_batch_norm


def small_classifier(
    image_shape=(16, 16, 3), initial_block_size=1, seed=0, **kwargs
):
    """A two-block classifier with random BatchNorm statistics.

    Features are `(8, 8, 64)` for 16x16 images without initial down-sampling.
    """
    keras.utils.set_random_seed(seed)
    model = IRevNetClassifier(
        IRevNet(
            stage_depths=[1, 1],
            stage_filters=[8, 32],
            stage_strides=[1, 2],
            initial_block_size=initial_block_size,
            image_shape=image_shape,
            **kwargs,
        ),
        10,
    )
    randomize_batch_norm(model, seed)
    return model


def signature_nodes(export_dir, signature_name="serving_default"):
    """Every graph node a signature can run, including function bodies.

    Starts from the signature's output tensors and follows node inputs and
    the functions that call nodes name (`f` attributes), recursively.
    """
    saved_model = saved_model_pb2.SavedModel()
    with open(f"{export_dir}/saved_model.pb", "rb") as file:
        saved_model.ParseFromString(file.read())
    (meta_graph,) = saved_model.meta_graphs
    library = {
        f.signature.name: f for f in meta_graph.graph_def.library.function
    }
    signature = meta_graph.signature_def[signature_name]
    # Node names by scope: "" for the graph, else the function's name.
    scopes = {"": {node.name: node for node in meta_graph.graph_def.node}}
    for name, function in library.items():
        scopes[name] = {node.name: node for node in function.node_def}
    pending = collections.deque(
        ("", scopes[""][tensor.name.split(":")[0]])
        for tensor in signature.outputs.values()
    )
    seen, nodes = set(), []
    while pending:
        scope, node = pending.popleft()
        if (scope, node.name) in seen:
            continue
        seen.add((scope, node.name))
        nodes.append(node)
        for name in node.input:
            name = name.lstrip("^").split(":")[0]
            if name in scopes[scope]:
                pending.append((scope, scopes[scope][name]))
        for value in node.attr.values():
            if value.func.name in library:
                pending.extend(
                    (value.func.name, n)
                    for n in library[value.func.name].node_def
                )
    return nodes
