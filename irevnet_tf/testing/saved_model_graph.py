"""What a SavedModel's signature runs: its graph nodes, and training ops."""

import collections

from tensorflow.core.protobuf import saved_model_pb2

# Ops that only training runs: variable updates (BatchNorm statistics).
# Random numbers (dropout) are found by name, as "Random" ops.
TRAINING_OPS = (
    "AssignVariableOp",
    "AssignAddVariableOp",
    "AssignSubVariableOp",
)


def signature_nodes(export_dir: str, signature_name: str = "serving_default"):
    """Every graph node a signature can run, including function bodies.

    Starts from the signature's output tensors and follows node inputs and
    the functions that call nodes name (`f` attributes), recursively.

    Returns:
        A list of `NodeDef`s.
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


def training_nodes(nodes) -> list[str]:
    """Descriptions of the nodes only training would run.

    Custom gradients, BatchNorm in training mode, variable updates and
    random numbers: an inference graph has none.
    """
    found = []
    for node in nodes:
        if "_gradient_op_type" in node.attr:
            found.append(f"{node.op} (custom gradient)")
        if node.op.startswith("FusedBatchNorm") and node.attr["is_training"].b:
            found.append(f"{node.op} (training)")
        if node.op in TRAINING_OPS or "Random" in node.op:
            found.append(node.op)
    return found
