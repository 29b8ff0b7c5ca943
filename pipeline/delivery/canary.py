"""Canary analysis: the challenger against the champion from the prediction log, judged by the
manifest's guardrails, written as a markdown verdict (promote, hold, roll back) with reasons.
With `apply`, deploy/<env>.yaml is edited to match, for the workflow to commit or open as a PR.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from pipeline.core.config import GuardrailsSection, Params

logger = logging.getLogger(__name__)

Decision = Literal["promote", "hold", "roll back"]
CHALLENGER_ROLES = ("challenger", "shadow")


class CanaryInputError(ValueError):
    """The log, the labels or the manifest cannot be analysed."""


@dataclass(frozen=True)
class ModelStats:
    version: str
    role: str
    requests: int
    errors: int
    error_rate: float | None
    p50_latency_ms: float | None
    p99_latency_ms: float | None
    mean_score: float | None
    labelled: int
    accuracy: float | None


@dataclass(frozen=True)
class Check:
    name: str
    observed: float | None
    limit: float | None
    # None: not judged (not enough rows for it).
    passed: bool | None
    detail: str


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reasons: list[str]
    champion: ModelStats
    challenger: ModelStats
    checks: list[Check]
    distance: float | None


# --------------------------------------------------------------------------- pure core


def _quantile(values: np.ndarray, q: float) -> float | None:
    return float(np.quantile(values, q)) if len(values) else None


def model_stats(
    *,
    rows: pd.DataFrame,
    version: str,
    role: str,
    labels: pd.DataFrame | None,
    id_column: str,
    target: str,
    threshold: float,
) -> ModelStats:
    """Request, error, latency and (when labels joined by association id exist) accuracy figures."""
    requests = len(rows)
    failed = rows["error"].notna().to_numpy() if requests else np.zeros(0, dtype=bool)
    scored = rows.loc[~failed]
    latency = rows["latency_ms"].to_numpy(dtype=np.float64)
    accuracy, labelled = None, 0
    if labels is not None and len(scored):
        joined = scored.merge(labels, left_on="association_id", right_on=id_column, how="inner")
        labelled = len(joined)
        if labelled:
            predicted = (joined["score"].to_numpy() >= threshold).astype(int)
            accuracy = float(np.mean(predicted == joined[target].to_numpy(dtype=int)))
    return ModelStats(
        version=version,
        role=role,
        requests=requests,
        errors=int(failed.sum()),
        error_rate=float(failed.mean()) if requests else None,
        p50_latency_ms=_quantile(latency, 0.5),
        p99_latency_ms=_quantile(latency, 0.99),
        mean_score=float(scored["score"].mean()) if len(scored) else None,
        labelled=labelled,
        accuracy=accuracy,
    )


def score_distance(*, reference: np.ndarray, current: np.ndarray, bins: int) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between score histograms on fixed [0, 1] bins."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    p = np.histogram(np.clip(reference, 0, 1), bins=edges)[0].astype(np.float64)
    q = np.histogram(np.clip(current, 0, 1), bins=edges)[0].astype(np.float64)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    return math.sqrt(max((kl(p) + kl(q)) / 2, 0.0))


def judge(
    *,
    champion: ModelStats,
    challenger: ModelStats,
    distance: float | None,
    guardrails: GuardrailsSection,
    min_labelled: int,
) -> Verdict:
    """Roll back on any breached guardrail, hold while traffic is too thin to judge, else promote.

    One exception to holding: when the challenger has failed so often that even a perfect run up
    to the minimum request count would leave its error rate above the limit, waiting is pointless.
    """
    g = guardrails
    checks: list[Check] = []
    enough = challenger.requests >= g.min_requests and champion.requests >= g.min_requests
    checks.append(
        Check(
            "minimum requests",
            float(min(challenger.requests, champion.requests)),
            float(g.min_requests),
            enough,
            f"challenger {challenger.requests}, champion {champion.requests}",
        )
    )
    hopeless = challenger.errors > g.max_error_rate * max(g.min_requests, challenger.requests)
    error_ok = None if challenger.error_rate is None else challenger.error_rate <= g.max_error_rate
    checks.append(Check("error rate", challenger.error_rate, g.max_error_rate, error_ok, f"{challenger.errors} errors"))
    p99 = challenger.p99_latency_ms
    checks.append(
        Check("p99 latency (ms)", p99, g.max_p99_latency_ms, None if p99 is None else p99 <= g.max_p99_latency_ms, "")
    )
    checks.append(
        Check(
            "prediction distance from champion",
            distance,
            g.max_prediction_distance,
            None if distance is None else distance <= g.max_prediction_distance,
            "Jensen-Shannon distance of the score histograms",
        )
    )
    if challenger.labelled >= min_labelled and challenger.accuracy is not None:
        if g.min_accuracy is not None:
            checks.append(
                Check(
                    "accuracy (labelled)",
                    challenger.accuracy,
                    g.min_accuracy,
                    challenger.accuracy >= g.min_accuracy,
                    f"{challenger.labelled} labelled rows; champion {_fmt(champion.accuracy)}",
                )
            )
        if g.max_accuracy_drop is not None and champion.accuracy is not None and champion.labelled >= min_labelled:
            drop = round(champion.accuracy - challenger.accuracy, 6)
            checks.append(
                Check(
                    "accuracy drop from champion",
                    drop,
                    g.max_accuracy_drop,
                    drop <= g.max_accuracy_drop,
                    f"champion {_fmt(champion.accuracy)} on {champion.labelled} labelled rows",
                )
            )
    else:
        checks.append(
            Check(
                "accuracy (labelled)",
                challenger.accuracy,
                g.min_accuracy,
                None,
                f"not judged: {challenger.labelled} labelled rows, {min_labelled} needed",
            )
        )
    judged = checks[1:]
    breaches = [c for c in judged if c.passed is False]
    reasons = [f"{c.name}: {_fmt(c.observed)} breaches the limit {_fmt(c.limit)}" for c in breaches]
    if not enough:
        thin = (
            f"not enough traffic to judge: challenger {challenger.requests}, champion {champion.requests} "
            f"requests, {g.min_requests} needed each"
        )
        if hopeless:
            return Verdict(
                "roll back",
                [*reasons, f"{thin}, but the errors already exceed any passing rate"],
                champion,
                challenger,
                checks,
                distance,
            )
        return Verdict("hold", [thin, *(f"so far {r}" for r in reasons)], champion, challenger, checks, distance)
    if breaches:
        return Verdict("roll back", reasons, champion, challenger, checks, distance)
    passed = [f"{c.name}: {_fmt(c.observed)} within {_fmt(c.limit)}" for c in judged if c.passed]
    skipped = [f"{c.name}: {c.detail}" for c in judged if c.passed is None]
    return Verdict(
        "promote", ["every judged guardrail passed", *passed, *skipped], champion, challenger, checks, distance
    )


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}"


def markdown(*, verdict: Verdict, env: str, window: str) -> str:
    title = {"promote": "promote the challenger", "hold": "hold", "roll back": "roll back the challenger"}
    lines = [
        f"# Canary analysis: {env}",
        "",
        f"**Verdict: {title[verdict.decision]}** (challenger v{verdict.challenger.version} vs champion "
        f"v{verdict.champion.version}, {window})",
        "",
        *(f"- {r}" for r in verdict.reasons),
        "",
        "| guardrail | observed | limit | result | detail |",
        "|---|---|---|---|---|",
    ]
    mark = {True: "pass", False: "**breach**", None: "not judged"}
    lines += [
        f"| {c.name} | {_fmt(c.observed)} | {_fmt(c.limit)} | {mark[c.passed]} | {c.detail} |" for c in verdict.checks
    ]
    lines += ["", "| model | role | requests | errors | p50 ms | p99 ms | mean score | labelled | accuracy |"]
    lines += ["|---|---|---|---|---|---|---|---|---|"]
    for s in (verdict.champion, verdict.challenger):
        lines.append(
            f"| v{s.version} | {s.role} | {s.requests} | {s.errors} | {_fmt(s.p50_latency_ms)} | "
            f"{_fmt(s.p99_latency_ms)} | {_fmt(s.mean_score)} | {s.labelled} | {_fmt(s.accuracy)} |"
        )
    return "\n".join(lines) + "\n"


def evaluate_log(
    *,
    log: pd.DataFrame,
    champion: str,
    challenger: str,
    guardrails: GuardrailsSection,
    labels: pd.DataFrame | None,
    params: Params,
) -> Verdict:
    """Split the log into the two models' rows and judge them."""
    champ_rows = log[(log["role"] == "champion") & (log["model_version"] == champion)]
    chall_rows = log[log["role"].isin(CHALLENGER_ROLES) & (log["model_version"] == challenger)]
    role = str(chall_rows["role"].iloc[0]) if len(chall_rows) else "challenger"

    def stats(rows: pd.DataFrame, version: str, role: str) -> ModelStats:
        return model_stats(
            rows=rows,
            version=version,
            role=role,
            labels=labels,
            id_column=params.base.id_column,
            target=params.base.target,
            threshold=params.evaluate.threshold,
        )

    champ = stats(champ_rows, champion, "champion")
    chall = stats(chall_rows, challenger, role)
    a = champ_rows["score"].dropna().to_numpy(dtype=np.float64)
    b = chall_rows["score"].dropna().to_numpy(dtype=np.float64)
    distance = score_distance(reference=a, current=b, bins=params.canary.score_bins) if len(a) and len(b) else None
    return judge(
        champion=champ,
        challenger=chall,
        distance=distance,
        guardrails=guardrails,
        min_labelled=params.canary.min_labelled,
    )


def read_labels(*, path: Path, params: Params) -> pd.DataFrame:
    from pipeline.core import io

    frame = io.read_table(path)
    id_column, target = params.base.id_column, params.base.target
    missing = [c for c in (id_column, target) if c not in frame.columns]
    if missing:
        raise CanaryInputError(f"{path}: labels need the columns {missing}")
    if frame[id_column].duplicated().any():
        raise CanaryInputError(f"{path}: {id_column} repeats; one label per association id")
    from pipeline.core.schema import SchemaError, target_binary

    out = frame[[id_column, target]].dropna()
    try:
        binary = target_binary(out[target], params.base)
    except SchemaError as exc:
        raise CanaryInputError(f"{path}: {exc}") from exc
    # The log keeps association ids as text; ids in a parquet file are often integers.
    return out.assign(**{id_column: out[id_column].astype(str), target: binary})


# --------------------------------------------------------------------------- command


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict | None
    report: Path
    manifest: Path | None
    text: str


def analyze(
    *,
    params: Params,
    env: str,
    log_url: str | None = None,
    labels_path: Path | None = None,
    apply: bool = False,
    now: float | None = None,
    out_dir: Path | None = None,
) -> Outcome:
    from pipeline.core import io, predlog
    from pipeline.delivery import manifest as manifests

    manifest = manifests.load_manifest(params=params, env=env)
    out = (out_dir or params.canary.report_dir) / f"{env}.md"
    if manifest.challenger is None:
        text = f"# Canary analysis: {env}\n\n**Verdict: hold**\n\n- no challenger in the manifest: nothing to analyse\n"
        io.write_text(text, out)
        return Outcome(None, out, None, text)
    end = time.time() if now is None else now
    start = end - params.canary.window_hours * 3600
    url = predlog.resolve_url(configured=params.serve.log.path, override=log_url)
    try:
        log = predlog.read_log(
            url=url, env=env, start=start, end=end, retention_days=params.serve.log.retention_days, now=end
        )
    except predlog.PredictionLogError as exc:
        raise CanaryInputError(str(exc)) from exc
    labels = read_labels(path=labels_path, params=params) if labels_path is not None else None
    verdict = evaluate_log(
        log=log,
        champion=str(manifest.champion),
        challenger=str(manifest.challenger),
        guardrails=manifests.guardrails(manifest=manifest, params=params),
        labels=labels,
        params=params,
    )
    window = f"last {params.canary.window_hours:g} h of the prediction log"
    text = markdown(verdict=verdict, env=env, window=window)
    io.write_text(text, out)
    io.write_json({"env": env, **asdict(verdict)}, out.with_suffix(".json"))
    changed = None
    if apply and verdict.decision != "hold":
        updated = (
            manifests.promote(manifest=manifest)
            if verdict.decision == "promote"
            else manifests.rollback(manifest=manifest)
        )
        changed = manifests.write_manifest(manifest=updated, params=params, env=env)
        logger.info("%s: manifest edited (%s)", changed, verdict.decision)
    return Outcome(verdict, out, changed, text)


def summary_line(outcome: Outcome) -> str:
    decision = "hold" if outcome.verdict is None else outcome.verdict.decision
    edited = f"; edited {outcome.manifest}" if outcome.manifest else ""
    return f"canary verdict: {decision} (report {outcome.report}{edited})"
