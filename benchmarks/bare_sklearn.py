"""The peer of the pipeline benchmark: the same model fitted and evaluated on the same data and
split, with nothing around it (no validation, tracking, reports, fairness or DVC).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
from sklearn.metrics import accuracy_score, roc_auc_score

from pipeline.core.config import load_params
from pipeline.stages.prepare import split
from pipeline.stages.train import build_pipeline


def main(params_path: Path) -> None:
    params = load_params(params_path)
    seed, target = params.base.seed, params.base.target
    frame = pd.read_parquet(params.data.raw)
    features = list(params.data.features)
    parts = split(frame=frame, params=params)
    train, valid, test = parts["train"], parts["valid"], parts["test"]
    scored = []
    for name in params.train.candidates:
        model = build_pipeline(data=params.data, spec=params.train.estimators[name], seed=seed)
        model.fit(train[features], train[target])
        scored.append((roc_auc_score(valid[target], model.predict_proba(valid[features])[:, 1]), name, model))
    _, name, best = max(scored, key=lambda s: s[0])
    proba = best.predict_proba(test[features])[:, 1]
    print(
        json.dumps(
            {
                "chosen": name,
                "roc_auc": roc_auc_score(test[target], proba),
                "accuracy": accuracy_score(test[target], proba >= params.evaluate.threshold),
            }
        )
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("params.yaml"))
