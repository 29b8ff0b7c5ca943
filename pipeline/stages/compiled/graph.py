"""What both compiled graphs share: the inputs (one [N, 1] tensor per model column, float64
numbers and text codes), text codes mapped to numbers, and the [N, 2] float64 `probabilities`
output built from the positive class's logit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

ML_DOMAIN = "ai.onnx.ml"
# ai.onnx.ml 5: TreeEnsemble with set-membership splits, LabelEncoder with float64 values.
OPSETS = {"": 18, ML_DOMAIN: 5}
IR_VERSION = 10
PRODUCER = "pipeline"
DOUBLE = 11  # onnx.TensorProto.DOUBLE, without importing onnx for a constant


class Unsupported(ValueError):
    """The pipeline holds a step or a setting the compiled graphs do not reproduce exactly."""


def passthrough(step: Any) -> bool:
    # A fitted ColumnTransformer holds "passthrough" as an identity FunctionTransformer.
    return bool(step == "passthrough" or (type(step).__name__ == "FunctionTransformer" and step.func is None))


def selected(columns: Any) -> list[str]:
    if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
        raise Unsupported(f"a feature step selects columns {columns!r}, not by a list of names")
    return [str(c) for c in columns]


def tensor(values: Any, name: str) -> Any:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(values, dtype=np.float64), name)


def code_values(column: str, mapping: Mapping[str, float], *, default: float, out: str) -> Any:
    """A node mapping the text codes of `column` to float64 numbers, `default` for any other."""
    from onnx import helper

    keys = sorted(mapping)
    if not keys:
        # LabelEncoder needs one key; a code nobody can send keeps every row on the default.
        keys, mapping = ["\x00"], {"\x00": default}
    return helper.make_node(
        "LabelEncoder",
        [column],
        [out],
        domain=ML_DOMAIN,
        keys_strings=keys,
        values_tensor=tensor([mapping[k] for k in keys], f"{out}_values"),
        default_tensor=tensor([default], f"{out}_default"),
        name=f"encode_{out}",
    )


def model_proto(
    *,
    name: str,
    numeric: Sequence[str],
    categorical: Sequence[str],
    nodes: list[Any],
    initializers: list[Any],
    logit: str,
) -> Any:
    """The ModelProto: the column inputs, `nodes` computing `logit` [N, 1], then the output."""
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info(c, TensorProto.DOUBLE, [None, 1]) for c in numeric]
    inputs += [helper.make_tensor_value_info(c, TensorProto.STRING, [None, 1]) for c in categorical]
    nodes = [
        *nodes,
        helper.make_node("Sigmoid", [logit], ["p1"], name="sigmoid"),
        helper.make_node("Sub", ["one", "p1"], ["p0"], name="complement"),
        helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1, name="probabilities"),
    ]
    output = helper.make_tensor_value_info("probabilities", TensorProto.DOUBLE, [None, 2])
    graph = helper.make_graph(nodes, name, inputs, [output], initializer=[*initializers, tensor([[1.0]], "one")])
    opsets = [helper.make_opsetid(domain, version) for domain, version in OPSETS.items()]
    return helper.make_model(graph, opset_imports=opsets, producer_name=PRODUCER, ir_version=IR_VERSION)


def binary_classes(model: Any) -> None:
    classes = [int(c) if isinstance(c, int | np.integer) else c for c in getattr(model, "classes_", [])]
    if classes != [0, 1]:
        raise Unsupported(f"the classifier's classes are {classes}, not [0, 1]")
