"""The gradient-boosting pipeline (OrdinalEncoder -> HistGradientBoostingClassifier) as ONNX.

Written here because the stock converter gets it wrong in two silent ways: it writes categorical
(bitset) splits as numeric thresholds, and it ignores the estimator's own preprocessor, which
re-encodes the categorical columns and moves them in front of the numeric ones. This graph
reproduces scikit-learn's tree walk exactly, in float64:

- each categorical input maps, by one LabelEncoder, straight from its text code to the code the
  trees split on; a code params do not list, a code training never saw and a missing value all
  become NaN, the trees' missing value (scikit-learn sends all three down the missing branch);
- numeric splits are `x <= threshold`, categorical splits set membership (ai.onnx.ml
  TreeEnsemble, opset 5), NaN follows each node's learned missing direction;
- the raw score is the sum of the trees plus the baseline, through the logistic function.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.stages.compiled.graph import (
    ML_DOMAIN,
    Unsupported,
    binary_classes,
    code_values,
    model_proto,
    passthrough,
    selected,
    tensor,
)

MODE_LEQ, MODE_MEMBER = 0, 6
# Below every code: `x <= NO_CODE` holds for no code, so only a missing value takes the branch.
NO_CODE = -1.0


def _outer_columns(features: Any) -> tuple[list[str], list[str], Any]:
    """(numeric columns, categorical columns, ordinal encoder) of the outer ColumnTransformer."""
    numeric: list[str] = []
    categorical: list[str] = []
    encoder = None
    for name, step, columns in features.transformers_:
        if step == "drop" or not len(columns):
            continue
        cols = selected(columns)
        if passthrough(step):
            numeric += cols
        elif type(step).__name__ == "OrdinalEncoder" and encoder is None:
            encoder, categorical = step, cols
        else:
            raise Unsupported(f"feature step {name!r} ({type(step).__name__}) has no exact ONNX form here")
    if encoder is not None and not (encoder.handle_unknown == "use_encoded_value" and np.isnan(encoder.unknown_value)):
        raise Unsupported("the ordinal encoder must score an unknown code as missing (unknown_value=NaN)")
    return numeric, categorical, encoder


def _inner_order(model: Any, n_outer: int) -> list[int]:
    """For each column the trees read, the outer column it comes from: the estimator's own
    preprocessor puts its categorical columns first.
    """
    pre = getattr(model, "_preprocessor", None)
    if pre is None:
        return list(range(n_outer))
    order: list[int] = []
    for name, _step, mask in pre.transformers_:
        picked = np.flatnonzero(np.asarray(mask)) if len(np.atleast_1d(mask)) else np.array([], dtype=int)
        if np.asarray(mask).dtype != bool and len(picked):
            raise Unsupported(f"the estimator's preprocessor step {name!r} selects columns by position")
        order += [int(i) for i in picked]
    if sorted(order) != list(range(n_outer)):
        raise Unsupported("the estimator's preprocessor does not map every column once")
    return order


def _code_maps(model: Any, *, outer_encoder: Any, categorical: list[str], position: list[int]) -> dict[str, Any]:
    """Per categorical input: text code -> the number the trees compare, NaN when scikit-learn
    would treat the code as missing (unlisted, or a category the estimator never saw).
    """
    pre = getattr(model, "_preprocessor", None)
    inner = None if pre is None else pre.named_transformers_.get("encoder")
    start = 0 if pre is None or "encoder" not in pre.output_indices_ else pre.output_indices_["encoder"].start
    is_categorical = getattr(model, "_is_categorical_remapped", None)
    maps: dict[str, Any] = {}
    for k, column in enumerate(categorical):
        texts = [str(c) for c in outer_encoder.categories_[k]]
        feature = position[k]
        if is_categorical is None or not is_categorical[feature]:
            # The trees read the outer code as a number (no categorical splits on it).
            maps[column] = {t: float(i) for i, t in enumerate(texts)}
            continue
        if inner is None:
            raise Unsupported(f"column {column!r} has categorical splits but the estimator has no encoder")
        seen = [c for c in inner.categories_[feature - start] if not np.isnan(c)]
        known = {float(v) for v in np.asarray(model._bin_mapper.bin_thresholds_[feature]).ravel()}
        mapping = {texts[int(c)]: float(i) for i, c in enumerate(seen)}
        maps[column] = {t: v for t, v in mapping.items() if v in known}
    return maps


def _bitset_members(bitset: np.ndarray) -> list[float]:
    return [float(v) for v in range(256) if (int(bitset[v // 32]) >> (v % 32)) & 1]


def _ensemble(model: Any, *, n_features: int) -> tuple[dict[str, Any], float]:
    """TreeEnsemble attributes and the constant added to the summed leaves."""
    if getattr(model, "n_trees_per_iteration_", 1) != 1:
        raise Unsupported("only a binary classifier (one tree per iteration) is supported")
    # One row per interior node, in the order the operator numbers them.
    splits: list[dict[str, Any]] = []
    leaf_weights: list[float] = []
    roots: list[int] = []
    baseline = float(np.asarray(model._baseline_prediction).ravel()[0])
    for (predictor,) in model._predictors:
        nodes, bitsets = predictor.nodes, predictor.raw_left_cat_bitsets
        if nodes[0]["is_leaf"]:
            # A tree without a split adds the same value to every row.
            baseline += float(nodes[0]["value"])
            continue
        # Each sklearn node's position among the operator's leaves or interior nodes.
        index: dict[int, tuple[int, int]] = {}
        interior = len(splits)
        for i, node in enumerate(nodes):
            if node["is_leaf"]:
                index[i] = (len(leaf_weights), 1)
                leaf_weights.append(float(node["value"]))
            else:
                index[i] = (interior, 0)
                interior += 1
        roots.append(index[0][0])
        for node in nodes:
            if node["is_leaf"]:
                continue
            feature = int(node["feature_idx"])
            if not 0 <= feature < n_features:
                raise Unsupported(f"a split reads feature {feature}, beyond the {n_features} inputs")
            left_codes = _bitset_members(bitsets[int(node["bitset_idx"])]) if node["is_categorical"] else None
            left, right = index[int(node["left"])], index[int(node["right"])]
            if left_codes == []:
                # No code goes left, only a missing value may: the operator refuses an empty set.
                mode, split, left_codes = MODE_LEQ, NO_CODE, None
            elif left_codes is None:
                mode, split = MODE_LEQ, float(node["num_threshold"])
            else:
                mode, split = MODE_MEMBER, 0.0
            splits.append(
                {
                    "mode": mode,
                    "feature": feature,
                    "split": split,
                    "members": left_codes,
                    "true": left,
                    "false": right,
                    "missing": int(bool(node["missing_go_to_left"])),
                }
            )
    membership: list[float] = []
    for row in splits:
        if row["members"] is not None:
            membership += [*row["members"], float("nan")]
    attrs: dict[str, Any] = {
        "aggregate_function": 1,
        "post_transform": 0,
        "n_targets": 1,
        "tree_roots": roots,
        "nodes_modes": np.asarray([r["mode"] for r in splits], dtype=np.uint8),
        "nodes_featureids": [r["feature"] for r in splits],
        "nodes_splits": np.asarray([r["split"] for r in splits], dtype=np.float64),
        "nodes_truenodeids": [r["true"][0] for r in splits],
        "nodes_trueleafs": [r["true"][1] for r in splits],
        "nodes_falsenodeids": [r["false"][0] for r in splits],
        "nodes_falseleafs": [r["false"][1] for r in splits],
        "nodes_missing_value_tracks_true": [r["missing"] for r in splits],
        "leaf_targetids": [0] * len(leaf_weights),
        "leaf_weights": np.asarray(leaf_weights, dtype=np.float64),
    }
    if membership:
        attrs["membership_values"] = np.asarray(membership, dtype=np.float64)
    return attrs, baseline


def hgb_graph(pipeline: Any, *, name: str) -> Any:
    """The ONNX model of a fitted Pipeline([features, HistGradientBoostingClassifier])."""
    from onnx import helper

    steps: dict[str, Any] = dict(pipeline.steps)
    if (
        len(steps) != 2
        or "features" not in steps
        or type(steps.get("model")).__name__ != "HistGradientBoostingClassifier"
    ):
        raise Unsupported("expected Pipeline([features, HistGradientBoostingClassifier])")
    features, model = steps["features"], steps["model"]
    binary_classes(model)
    numeric, categorical, encoder = _outer_columns(features)
    outer = numeric + categorical
    order = _inner_order(model, len(outer))
    position = {outer_i: inner_i for inner_i, outer_i in enumerate(order)}
    cat_position = [position[len(numeric) + k] for k in range(len(categorical))]
    maps = _code_maps(model, outer_encoder=encoder, categorical=categorical, position=cat_position)
    nodes, columns = [], {c: c for c in numeric}
    for k, column in enumerate(categorical):
        nodes.append(code_values(column, maps[column], default=float("nan"), out=f"code_{k}"))
        columns[column] = f"code_{k}"
    nodes.append(helper.make_node("Concat", [columns[outer[i]] for i in order], ["X"], axis=1, name="columns"))
    attrs, baseline = _ensemble(model, n_features=len(outer))
    nodes += [
        helper.make_node("TreeEnsemble", ["X"], ["raw"], domain=ML_DOMAIN, name="trees", **_tensors(attrs)),
        helper.make_node("Add", ["raw", "baseline"], ["logit"], name="add_baseline"),
    ]
    return model_proto(
        name=name,
        numeric=numeric,
        categorical=categorical,
        nodes=nodes,
        initializers=[tensor([[baseline]], "baseline")],
        logit="logit",
    )


def _tensors(attrs: dict[str, Any]) -> dict[str, Any]:
    from onnx import numpy_helper

    # numpy arrays become tensor attributes (the opset-5 operator takes splits, weights and
    # membership values as tensors of the input type, float64 here; modes as uint8).
    return {k: numpy_helper.from_array(v, k) if isinstance(v, np.ndarray) else v for k, v in attrs.items()}
