"""Candidate vs champion on the candidate's own holdout: both models are scored here, on the same
rows, with the same metric code; numbers stored by an older run are never trusted.

The champion is production's (named by the deploy manifest) when there is one, else the base
branch's model file (see pipeline.ci.champion). No champion at all is the first-model case. A
champion fitted on other input columns (a retargeted fork's first pull request) cannot score the
candidate's holdout: params gate.incomparable_champion then judges the candidate on the absolute
floors alone (`floors`) or refuses it (`fail`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.ci.floors import (
    EPSILON,
    RULES,
    VALIDATION_REPORT,
    floor_checks,
    incomparable_line,
    model_features,
    number,
    schema_difference,
)
from pipeline.core.config import GateSection, Params

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

logger = logging.getLogger(__name__)

GATE_REPORT = "gate.json"


class GateFailed(RuntimeError):
    """The candidate is worse than the champion beyond a tolerance; gate.json says where."""


class GateInputError(ValueError):
    """The champion cannot be found or read; nothing was decided and nothing written."""


@dataclass(frozen=True)
class Champion:
    """Where the champion came from, the model itself (None: the first-model case) and the input
    columns it was fitted on (None: the model does not record them).
    """

    model: Pipeline | None
    source: dict[str, Any]
    features: tuple[str, ...] | None = None


def evaluate_model(
    *, model: Pipeline, test: pd.DataFrame, params: Params, features: Sequence[str] | None = None
) -> dict[str, Any]:
    """Metrics and fairness of one model on the given rows, with the pipeline's own functions.

    `features`: the model's own column order when it differs from params data.features.
    """
    from pipeline.core.groups import sensitive_frame
    from pipeline.stages.evaluate import classification_metrics
    from pipeline.stages.fairness import assess

    y_true = test[params.base.target].to_numpy()
    proba = model.predict_proba(test[list(features or params.data.features)])[:, 1]
    metrics = classification_metrics(y_true=y_true, proba=proba, threshold=params.evaluate.threshold)
    y_pred = (proba >= params.evaluate.threshold).astype(int)
    sensitive = sensitive_frame(frame=test, groups=params.fairness.groups)
    fairness = assess(y_true=y_true, y_pred=y_pred, sensitive=sensitive, section=params.fairness)
    return {"metrics": metrics, "fairness": fairness}


def _check(kind: str, name: str, candidate: float, champion: float, limit: float, ok: bool, reason: str) -> dict:
    return {
        "kind": kind,
        "name": name,
        "candidate": candidate,
        "champion": champion,
        "delta": candidate - champion,
        "limit": limit,
        "passed": ok,
        "reason": None if ok else reason,
    }


def decide(
    *,
    candidate: dict[str, Any],
    champion: dict[str, Any] | None,
    primary_metric: str,
    section: GateSection,
    min_recall: float | None = None,
    validation_passed: bool | None = None,
    incomparable: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Pure: the verdict from two evaluations (see evaluate_model) and the gate thresholds.

    Passing needs all of: the candidate's own fairness thresholds hold; the primary metric is no
    more than primary_margin below the champion's; no class's recall drops by more than
    max_recall_drop; no judged fairness difference (threshold not null) rises by more than
    max_fairness_increase.

    Without a champion to compare with (none, or `incomparable`: its features differ) only the
    absolute checks judge: data validation, the fairness thresholds and, given `min_recall`, each
    class's recall floor; an incomparable champion under gate.incomparable_champion `fail` refuses.
    """
    own = [f"candidate fairness: {b}" for b in candidate["fairness"]["breaches"]]
    if validation_passed is False:
        own.insert(0, f"data validation failed ({VALIDATION_REPORT.as_posix()} in the reports folder)")
    if champion is None:
        floors = [] if min_recall is None else floor_checks(candidate=candidate, min_recall=min_recall)
        own += [c["reason"] for c in floors if not c["passed"]]
        if incomparable is None:
            return {
                "passed": not own,
                "first_model": True,
                "summary": "first model: no champion to compare with; judged on its own checks",
                "reasons": own,
                "checks": floors,
            }
        line = f"{incomparable_line(incomparable)}; {RULES[section.incomparable_champion]}"
        if section.incomparable_champion == "floors":
            summary, reasons = line, own
        else:
            summary, reasons = "refused: no comparable champion to judge the candidate against", [line, *own]
        return {
            "passed": not reasons,
            "first_model": False,
            "incomparable": incomparable,
            "summary": summary,
            "reasons": reasons,
            "checks": floors,
        }
    checks = []
    cand, champ = float(candidate["metrics"][primary_metric]), float(champion["metrics"][primary_metric])
    checks.append(
        _check(
            "primary",
            primary_metric,
            cand,
            champ,
            section.primary_margin,
            cand - champ >= -section.primary_margin - EPSILON,
            f"{primary_metric} {cand:.4f} is {champ - cand:.4f} below the champion's {champ:.4f} "
            f"(allowed margin {section.primary_margin})",
        )
    )
    for cls, body in sorted(candidate["metrics"]["per_class"].items()):
        cand = float(body["recall"])
        champ = float(champion["metrics"]["per_class"][cls]["recall"])
        checks.append(
            _check(
                "recall",
                f"class {cls}",
                cand,
                champ,
                section.max_recall_drop,
                champ - cand <= section.max_recall_drop + EPSILON,
                f"recall of class {cls} dropped from {champ:.4f} to {cand:.4f} "
                f"(allowed drop {section.max_recall_drop})",
            )
        )
    for feature, body in candidate["fairness"]["features"].items():
        for metric, limit in body["thresholds"].items():
            if limit is None:
                continue  # reported, not judged (params fairness.thresholds)
            cand_v, champ_v = _difference(candidate, feature, metric), _difference(champion, feature, metric)
            if cand_v is None or champ_v is None:
                continue  # too few judged groups on one side: nothing comparable
            label = metric.replace("_", " ")
            checks.append(
                _check(
                    "fairness",
                    f"{feature} {label}",
                    cand_v,
                    champ_v,
                    section.max_fairness_increase,
                    cand_v - champ_v <= section.max_fairness_increase + EPSILON,
                    f"{feature}: {label} difference rose from {champ_v:.4f} to {cand_v:.4f} "
                    f"(allowed rise {section.max_fairness_increase})",
                )
            )
    reasons = own + [c["reason"] for c in checks if not c["passed"]]
    passed = not reasons
    summary = (
        f"candidate holds up against the champion on {len(checks)} checks"
        if passed
        else f"{len(reasons)} of the checks failed"
    )
    return {"passed": passed, "first_model": False, "summary": summary, "reasons": reasons, "checks": checks}


def find_champion(*, params: Params, champion_model: Path | None) -> Champion:
    """Production's champion from the deploy manifest, else the given model file, else none."""
    from pipeline.core import io
    from pipeline.delivery import manifest as manifests

    try:
        path = manifests.manifest_path(params=params, env=params.gate.champion_env)
        manifest = manifests.load_manifest(params=params, env=params.gate.champion_env) if path.is_file() else None
    except manifests.DeployError as exc:
        raise GateInputError(f"gate.champion_env: {exc}") from exc
    # A manifest with `champion: null` (a new registry) has nothing deployed: like no manifest.
    if manifest is not None and manifest.champion is not None:
        from pipeline.delivery import artifacts, registry_client

        name, version = manifest.model, str(manifest.champion)
        try:
            loaded = artifacts.load_model_version(name=name, version=version, pinned=manifest.champion_sha256)
        except registry_client.RegistryError as exc:
            if champion_model is None:
                raise GateInputError(f"champion from {path}: {exc}") from exc
            # CI without access to the team's registry still compares against the base branch;
            # the report names the fallback so nobody mistakes it for production's model.
            logger.warning("champion from %s unavailable (%s): using %s", path, exc, champion_model)
            fallback = f"production champion {name} version {version} unavailable ({exc})"
        else:
            features = model_features(loaded.model) or tuple(loaded.signature_columns) or None
            source = {"kind": "registry", "name": name, "version": version, "manifest": path}
            return Champion(loaded.model, source, features)
    else:
        fallback = None
    note = {"note": fallback} if fallback else {}
    if champion_model is None:
        return Champion(None, {"kind": "none", "detail": "no champion in the deploy manifest and no model given"})
    from pipeline.ci.champion import read_marker

    marker = read_marker(out=champion_model)
    if not champion_model.is_file() and marker is not None and marker.get("source") == "none":
        return Champion(None, {"kind": "none", "detail": marker.get("detail", ""), "rev": marker.get("rev"), **note})
    # A missing file without a "none" marker is an error: a wrong path must never pass as a first model.
    model = io.load_model(champion_model)
    return Champion(
        model,
        {"kind": "file", "path": champion_model, **({"rev": marker.get("rev")} if marker else {}), **note},
        model_features(model),
    )


def _summary(evaluation: dict[str, Any]) -> dict[str, Any]:
    fairness = evaluation["fairness"]
    return {
        "metrics": evaluation["metrics"],
        "fairness": {
            "passed": fairness["passed"],
            "breaches": fairness["breaches"],
            "features": {
                f: {"differences": b["differences"], "thresholds": b["thresholds"], "groups": b["groups"]}
                for f, b in fairness["features"].items()
            },
        },
    }


def _difference(evaluation: dict[str, Any], feature: str, metric: str) -> float | None:
    return number(evaluation["fairness"]["features"].get(feature, {}).get("differences", {}).get(metric))


def _deltas(candidate: dict[str, Any], champion: dict[str, Any] | None, primary_metric: str) -> dict[str, Any]:
    """Candidate minus champion; None where either side is not measurable."""
    if champion is None:
        return {}
    cm, hm = candidate["metrics"], champion["metrics"]
    fairness: dict[str, dict[str, float | None]] = {}
    for feature, body in candidate["fairness"]["features"].items():
        fairness[feature] = {}
        for metric in body["differences"]:
            cand, champ = _difference(candidate, feature, metric), _difference(champion, feature, metric)
            fairness[feature][metric] = None if cand is None or champ is None else cand - champ
    return {
        "primary_metric": primary_metric,
        "metrics": {k: v - hm[k] for k, v in cm.items() if isinstance(v, int | float) and k != "rows"},
        "recall": {c: cm["per_class"][c]["recall"] - hm["per_class"][c]["recall"] for c in sorted(cm["per_class"])},
        "fairness": fairness,
    }


def _validation_passed(path: Path) -> bool | None:
    """The validate stage's verdict; None when it has not run (the gate can run on its own)."""
    from pipeline.core import io

    if not path.is_file():
        return None
    data = io.read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("success"), bool):
        raise GateInputError(f"{path}: holds no boolean `success`; rerun the validate stage")
    return data["success"]


def _score_champion(
    *, champion: Champion, test: pd.DataFrame, params: Params
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the champion's evaluation, why it is incomparable): at most one of the two is set."""
    if champion.model is None:
        return None, None
    if champion.features is not None:
        difference = schema_difference(champion=champion.features, candidate=params.data.features)
        if difference is not None:
            logger.warning("%s", incomparable_line(difference))
            return None, difference
    try:
        return evaluate_model(model=champion.model, test=test, params=params, features=champion.features), None
    except (ValueError, KeyError) as exc:
        if champion.features is not None:
            raise  # same columns, so the failure is not the schema's: let it show
        # A model that never recorded its columns: its refusal of these rows is the only sign.
        incomparable = {"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
        logger.warning("%s", incomparable_line(incomparable))
        return None, incomparable


def run(*, params: Params, champion_model: Path | None) -> dict[str, Any]:
    """Score candidate and champion on the candidate's test split, decide, write gate.json."""
    from pipeline.core import io

    test = io.read_table(params.paths.prepared / "test.parquet")
    candidate_model = io.load_model(params.paths.model)
    champion = find_champion(params=params, champion_model=champion_model)
    candidate = evaluate_model(model=candidate_model, test=test, params=params)
    champion_eval, incomparable = _score_champion(champion=champion, test=test, params=params)
    primary = params.train.primary_metric
    validation = params.paths.reports / VALIDATION_REPORT
    decision = decide(
        candidate=candidate,
        champion=champion_eval,
        primary_metric=primary,
        section=params.gate,
        min_recall=params.evaluate.min_recall.per_class,
        validation_passed=_validation_passed(validation),
        incomparable=incomparable,
    )
    report = {
        **decision,
        "primary_metric": primary,
        "holdout": {"path": params.paths.prepared / "test.parquet", "rows": len(test)},
        "thresholds": params.gate.model_dump(mode="json"),
        "champion_source": champion.source,
        "candidate": _summary(candidate),
        "champion": None if champion_eval is None else _summary(champion_eval),
        "deltas": _deltas(candidate, champion_eval, primary),
    }
    io.write_json(report, params.paths.reports / GATE_REPORT)
    verdict = "passed" if decision["passed"] else "FAILED"
    logger.info("gate %s: %s", verdict, decision["summary"])
    for reason in decision["reasons"]:
        logger.info("  - %s", reason)
    return report
