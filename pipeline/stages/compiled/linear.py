"""The logistic-regression pipeline (scaled numbers, imputed nullable numbers with their missing
indicators, one-hot codes -> LogisticRegression) as ONNX, in float64.

skl2onnx cannot write it: its SimpleImputer converter drops `add_indicator`, so the graph it
builds for a nullable column has the wrong width. Here each block of the ColumnTransformer
becomes its share of the logit:

- scaled numbers: sum of coef * (x - mean) / scale;
- a nullable block: x imputed with the fitted statistic where NaN, the 0/1 indicators of the
  columns training saw missing, both scaled, then the same sum;
- one-hot codes: a listed code contributes its own coefficient, any other code (unlisted,
  missing) nothing, exactly the all-zero row of handle_unknown="ignore";

and the logit is their sum plus the intercept.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.stages.compiled.graph import (
    DOUBLE,
    Unsupported,
    binary_classes,
    code_values,
    model_proto,
    passthrough,
    selected,
    tensor,
)


def _scaler(step: Any, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) of a fitted StandardScaler; 0 and 1 where it centres or scales nothing."""
    if type(step).__name__ != "StandardScaler":
        raise Unsupported(f"expected a StandardScaler, found {type(step).__name__}")
    mean = np.zeros(width) if step.mean_ is None or not step.with_mean else np.asarray(step.mean_, dtype=np.float64)
    scale = np.ones(width) if step.scale_ is None or not step.with_std else np.asarray(step.scale_, dtype=np.float64)
    return mean, scale


def _imputer(step: Any, cols: list[str]) -> tuple[np.ndarray, list[int]]:
    """(fill value per column, positions of the columns with a missing indicator)."""
    if type(step).__name__ != "SimpleImputer" or not (
        isinstance(step.missing_values, float) and np.isnan(step.missing_values)
    ):
        raise Unsupported(f"expected a SimpleImputer of NaN, found {type(step).__name__}")
    fill = np.asarray(step.statistics_, dtype=np.float64)
    if len(fill) != len(cols) or np.isnan(fill).any():
        # scikit-learn drops a column missing throughout training: the widths would differ.
        raise Unsupported("the imputer learned no value for a column (missing throughout training)")
    indicator = getattr(step, "indicator_", None)
    if indicator is None:
        return fill, []
    if indicator.features != "missing-only":
        raise Unsupported("the missing indicator must mark the columns training saw missing only")
    return fill, [int(i) for i in indicator.features_]


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.terms: list[str] = []

    def node(self, op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def const(self, values: Any, name: str) -> str:
        self.initializers.append(tensor(values, name))
        return name

    def weighted(self, x: str, *, mean: np.ndarray, scale: np.ndarray, coef: np.ndarray, tag: str) -> None:
        """Add coef . ((x - mean) / scale) [N, 1] to the logit's terms."""
        centred = self.node("Sub", [x, self.const(mean.reshape(1, -1), f"{tag}_mean")], f"{tag}_centred")
        scaled = self.node("Div", [centred, self.const(scale.reshape(1, -1), f"{tag}_scale")], f"{tag}_scaled")
        weights = self.const(coef.reshape(-1, 1), f"{tag}_coef")
        self.terms.append(self.node("MatMul", [scaled, weights], f"{tag}_term"))

    def columns(self, cols: list[str], tag: str) -> str:
        return cols[0] if len(cols) == 1 else self.node("Concat", cols, f"{tag}_x", axis=1)


def linear_graph(pipeline: Any, *, name: str) -> Any:
    """The ONNX model of a fitted Pipeline([features, LogisticRegression])."""
    steps: dict[str, Any] = dict(pipeline.steps)
    if len(steps) != 2 or "features" not in steps or type(steps.get("model")).__name__ != "LogisticRegression":
        raise Unsupported("expected Pipeline([features, LogisticRegression])")
    features, model = steps["features"], steps["model"]
    binary_classes(model)
    coef = np.asarray(model.coef_, dtype=np.float64).ravel()
    out = features.output_indices_
    g = _Builder()
    numeric: list[str] = []
    categorical: list[str] = []
    for b, (block, step, columns) in enumerate(features.transformers_):
        width = out[block].stop - out[block].start
        # A block given no column (every number nullable, say) stays unfitted and adds nothing.
        if step == "drop" or not len(columns) or width == 0:
            continue
        cols, w, tag = selected(columns), coef[out[block]], f"b{b}"
        if type(step).__name__ == "OneHotEncoder":
            categorical += cols
            _one_hot(g, step, cols, w, tag)
            continue
        numeric += cols
        x = g.columns(cols, tag)
        if passthrough(step):
            g.weighted(x, mean=np.zeros(width), scale=np.ones(width), coef=w, tag=tag)
        elif type(step).__name__ == "StandardScaler":
            mean, scale = _scaler(step, width)
            g.weighted(x, mean=mean, scale=scale, coef=w, tag=tag)
        elif type(step).__name__ == "Pipeline" and [type(s).__name__ for _, s in step.steps] == [
            "SimpleImputer",
            "StandardScaler",
        ]:
            fill, flagged = _imputer(step.steps[0][1], cols)
            mean, scale = _scaler(step.steps[1][1], width)
            if width != len(cols) + len(flagged):
                raise Unsupported(f"feature step {block!r} has {width} outputs, not {len(cols) + len(flagged)}")
            missing = g.node("IsNaN", [x], f"{tag}_missing")
            filled = g.node("Where", [missing, g.const(fill.reshape(1, -1), f"{tag}_fill"), x], f"{tag}_filled")
            parts = [filled]
            if flagged:
                index = f"{tag}_flagged"
                g.initializers.append(_int64(flagged, index))
                picked = g.node("Gather", [missing, index], f"{tag}_picked", axis=1)
                parts.append(g.node("Cast", [picked], f"{tag}_indicator", to=DOUBLE))
            y = parts[0] if len(parts) == 1 else g.node("Concat", parts, f"{tag}_y", axis=1)
            g.weighted(y, mean=mean, scale=scale, coef=w, tag=tag)
        else:
            raise Unsupported(f"feature step {block!r} ({type(step).__name__}) has no exact ONNX form here")
    intercept = g.const(np.asarray(model.intercept_, dtype=np.float64).reshape(1, 1), "intercept")
    g.node("Sum", [*g.terms, intercept], "logit")
    return model_proto(
        name=name, numeric=numeric, categorical=categorical, nodes=g.nodes, initializers=g.initializers, logit="logit"
    )


def _one_hot(g: _Builder, step: Any, cols: list[str], w: np.ndarray, tag: str) -> None:
    if step.handle_unknown != "ignore" or getattr(step, "drop_idx_", None) is not None:
        raise Unsupported("the one-hot encoder must ignore unknown codes and drop no category")
    if getattr(step, "_infrequent_enabled", False):
        raise Unsupported("the one-hot encoder groups infrequent categories")
    offset = 0
    for k, (column, categories) in enumerate(zip(cols, step.categories_, strict=True)):
        texts = [c for c in categories if isinstance(c, str)]
        if len(texts) != len(categories):
            raise Unsupported(f"column {column!r}: the one-hot categories must all be text")
        weights = {t: float(w[offset + i]) for i, t in enumerate(texts)}
        offset += len(texts)
        g.nodes.append(code_values(column, weights, default=0.0, out=f"{tag}_{k}_term"))
        g.terms.append(f"{tag}_{k}_term")
    if offset != len(w):
        raise Unsupported("the one-hot encoder's width differs from its categories")


def _int64(values: list[int], name: str) -> Any:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)
