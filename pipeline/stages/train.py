"""Fit every candidate estimator named in params, keep the best on the validation split,
log the run (params, metrics, model, lineage) to MLflow and write the model file, with its
ONNX compilation beside it when that scores like scikit-learn (pipeline.stages.compiled).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from pipeline.core.config import DataSection, EstimatorSpec, Params
from pipeline.stages.compiled.export import ONNX, Compiled

logger = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"
# Tag on the run, the logged model and (copied by `pipeline register`) the version: onnx|sklearn.
SERVING_PATH_TAG = "serving.path"
# Names inside the logged model's extra_files/: serving looks for them there.
ONNX_FILE, COMPILED_REPORT = "model.onnx", "compiled.json"
# Packages the logged model needs to load; versions are read from the installed environment.
MODEL_REQUIREMENTS = ("scikit-learn", "skops", "pandas", "numpy", "scipy")


def build_pipeline(*, data: DataSection, spec: EstimatorSpec, seed: int) -> Pipeline:
    """A ColumnTransformer + estimator over the model's inputs (audit-only columns never reach
    it). Category lists come from params, so a code the training split happens not to contain is
    still known to the encoder; a missing or unseen category is the encoders' unknown bucket.
    """
    numeric, categorical = list(data.numeric_features), list(data.categorical_features)
    categories = [list(data.categorical[c].values) for c in categorical]
    hyper = spec.hyperparameters()
    if spec.kind == "hist_gradient_boosting":
        # Gradient boosting takes missing numbers as they are: it learns where they go.
        encode = ColumnTransformer(
            [
                ("num", "passthrough", numeric),
                (
                    "cat",
                    OrdinalEncoder(
                        categories=categories,
                        handle_unknown="use_encoded_value",
                        unknown_value=np.nan,
                        dtype=np.float64,
                    ),
                    categorical,
                ),
            ],
            verbose_feature_names_out=False,
        )
        is_categorical = [False] * len(numeric) + [True] * len(categorical)
        estimator: Any = HistGradientBoostingClassifier(categorical_features=is_categorical, random_state=seed, **hyper)
    else:
        nullable = [c for c in numeric if data.numeric[c].nullable]
        complete = [c for c in numeric if c not in nullable]
        imputed = Pipeline(
            [("impute", SimpleImputer(strategy="median", add_indicator=True)), ("scale", StandardScaler())]
        )
        encode = ColumnTransformer(
            [
                ("num", StandardScaler(), complete),
                *([("num_nullable", imputed, nullable)] if nullable else []),
                ("cat", OneHotEncoder(categories=categories, handle_unknown="ignore"), categorical),
            ],
            verbose_feature_names_out=False,
        )
        estimator = LogisticRegression(random_state=seed, **hyper)
    return Pipeline([("features", encode), ("model", estimator)])


def score(*, metric: str, y_true: np.ndarray, proba: np.ndarray, threshold: float = 0.5) -> float:
    if metric == "roc_auc":
        return float(roc_auc_score(y_true, proba))
    if metric == "average_precision":
        return float(average_precision_score(y_true, proba))
    pred = (proba >= threshold).astype(int)
    if metric == "f1":
        return float(f1_score(y_true, pred))
    return float(accuracy_score(y_true, pred))


@dataclass(frozen=True)
class CandidateResult:
    name: str
    kind: str
    score: float
    fit_seconds: float
    model: Pipeline


def fit_candidates(*, train: pd.DataFrame, valid: pd.DataFrame, params: Params) -> list[CandidateResult]:
    """Fit each candidate; the list is sorted best first (ties keep params order)."""
    import time

    features, target = list(params.data.features), params.base.target
    results = []
    for name in params.train.candidates:
        spec = params.train.estimators[name]
        model = build_pipeline(data=params.data, spec=spec, seed=params.base.seed)
        started = time.perf_counter()
        model.fit(train[features], train[target])
        elapsed = time.perf_counter() - started
        proba = model.predict_proba(valid[features])[:, 1]
        value = score(metric=params.train.primary_metric, y_true=valid[target].to_numpy(), proba=proba)
        logger.info("candidate %s: valid %s = %.4f (%.1fs)", name, params.train.primary_metric, value, elapsed)
        results.append(CandidateResult(name, spec.kind, value, elapsed, model))
    return sorted(results, key=lambda r: -r.score)


def params_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def lineage_tags(*, params: Params, params_path: Path) -> dict[str, str]:
    from pipeline.core.io import file_md5
    from pipeline.core.tracking import git_commit

    commit, dirty = git_commit()
    tags = {
        "git.commit": commit,
        "git.dirty": str(dirty).lower(),
        "data.raw.path": params.data.raw.as_posix(),
        "data.raw.md5": file_md5(params.data.raw),
        "params.sha256": params_hash(params_path),
    }
    for split in ("train", "valid", "test"):
        tags[f"data.{split}.md5"] = file_md5(params.paths.prepared / f"{split}.parquet")
    lock = Path("uv.lock")
    if lock.is_file():
        tags["env.uv_lock.sha256"] = hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
    return tags


def model_requirements() -> list[str]:
    return [f"{pkg}=={importlib.metadata.version(pkg)}" for pkg in MODEL_REQUIREMENTS]


def leaderboard(*, results: list[CandidateResult], params: Params) -> dict[str, Any]:
    rows = [
        {"rank": i + 1, "name": r.name, "kind": r.kind, params.train.primary_metric: r.score}
        for i, r in enumerate(results)
    ]
    return {"chosen": results[0].name, "primary_metric": params.train.primary_metric, "leaderboard": rows}


def log_run(
    *, results: list[CandidateResult], params: Params, tags: dict[str, str], example: pd.DataFrame, compiled: Compiled
) -> str:
    """One MLflow run with a child run per candidate and the chosen model; returns the run id.

    The compilation report always travels inside the logged model, the ONNX file only when it
    passed parity: the version's artifact hash then covers both, and serving finds them there.
    """
    import tempfile

    from mlflow.models import infer_signature

    from pipeline.core import io
    from pipeline.core.tracking import connect

    best = results[0]
    mlflow = connect(params.tracking)
    with mlflow.start_run(run_name=f"train-{best.name}", tags=tags) as run:
        for r in results:
            with mlflow.start_run(run_name=r.name, nested=True, tags={"candidate": r.name}):
                mlflow.log_params({"kind": r.kind, **params.train.estimators[r.name].hyperparameters()})
                mlflow.log_metrics({f"valid_{params.train.primary_metric}": r.score, "fit_seconds": r.fit_seconds})
        mlflow.log_params(
            {
                "chosen": best.name,
                "seed": params.base.seed,
                "sample_rows": params.data.sample_rows,
                "primary_metric": params.train.primary_metric,
                **{f"model.{k}": v for k, v in params.train.estimators[best.name].hyperparameters().items()},
            }
        )
        mlflow.log_metric(f"valid_{params.train.primary_metric}", best.score)
        signature = infer_signature(example, best.model.predict_proba(example)[:, 1])
        import mlflow.sklearn

        with tempfile.TemporaryDirectory(prefix="compiled-") as tmp:
            extra = [Path(tmp) / COMPILED_REPORT]
            io.write_json(compiled.record, extra[0])
            if compiled.serving_path == ONNX and compiled.onnx is not None:
                extra.append(Path(tmp) / ONNX_FILE)
                extra[1].write_bytes(compiled.onnx)
            info = mlflow.sklearn.log_model(
                best.model,
                name=MODEL_ARTIFACT,
                serialization_format="skops",
                skops_trusted_types=io.SKOPS_TRUSTED_TYPES,
                signature=signature,
                input_example=example,
                pip_requirements=model_requirements(),
                pyfunc_predict_fn="predict_proba",
                extra_files=[str(p) for p in extra],
            )
        mlflow.set_tag(SERVING_PATH_TAG, compiled.serving_path)
        mlflow.set_logged_model_tags(info.model_id, {SERVING_PATH_TAG: compiled.serving_path})
        if compiled.record.get("parity"):
            mlflow.log_metric("onnx_parity_max_abs_diff", float(compiled.record["parity"]["max_abs_diff"]))
        return str(run.info.run_id)


def compile_best(*, best: CandidateResult, params: Params) -> Compiled:
    """The chosen model compiled to ONNX and checked on the test split; the file (empty when
    refused) beside the model file and reports/compiled.json say which path will serve.
    """
    from pipeline.core import io
    from pipeline.stages.compiled.export import compile_model, sha256, write

    compiled = compile_model(
        best.model,
        kind=best.kind,
        data=params.data,
        test=io.read_table(params.paths.prepared / "test.parquet"),
        tolerance=params.train.onnx_tolerance,
        sklearn_sha256=sha256(params.paths.model.read_bytes()),
    )
    write(compiled, onnx_path=params.paths.compiled, report_path=params.paths.reports / COMPILED_REPORT)
    return compiled


def main(*, params: Params, params_path: Path) -> dict[str, Any]:
    from pipeline.core import io

    train = io.read_table(params.paths.prepared / "train.parquet")
    valid = io.read_table(params.paths.prepared / "valid.parquet")
    results = fit_candidates(train=train, valid=valid, params=params)
    tags = lineage_tags(params=params, params_path=params_path)
    io.save_model(results[0].model, params.paths.model)
    compiled = compile_best(best=results[0], params=params)
    run_id = log_run(
        results=results,
        params=params,
        tags=tags,
        example=train[list(params.data.features)].head(5),
        compiled=compiled,
    )
    report = leaderboard(results=results, params=params)
    io.write_json(report, params.paths.reports / "train.json")
    # Kept apart from train.json: the run id differs every run, the leaderboard does not.
    io.write_json(
        {
            "run_id": run_id,
            "experiment": params.tracking.experiment,
            **tags,
            SERVING_PATH_TAG: compiled.serving_path,
        },
        params.paths.reports / "run.json",
    )
    return {**report, "run_id": run_id}
