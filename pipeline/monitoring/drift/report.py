"""The human side of a drift check: the markdown report, its plots and the workflow outputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.monitoring.drift.statistics import category_counts, numeric_values
from pipeline.monitoring.drift.verdicts import NOT_ENOUGH_DATA, FeatureResult

_PLOT_BINS = 30


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}" if abs(value) < 1e-3 else f"{value:.{digits}f}"


def _invalid_share(f: FeatureResult) -> str:
    share = f.missing_share_current + f.infinite_share_current
    return f"{100 * share:.1f}%" if share else "-"


def one_line(*, summary: Mapping[str, Any]) -> str:
    """The verdict as the command prints it, naming the features that failed data quality."""
    failed = summary["data_drift"]["data_quality"]
    details = "; ".join(f"{feature}: {reason}" for feature, reason in failed.items())
    return f"drift check: {summary['verdict']}" + (f" ({details})" if details else "")


def markdown_report(*, summary: Mapping[str, Any], features: Sequence[FeatureResult], plots: Mapping[str, str]) -> str:
    """The human report: verdict first, then features by severity with links to their plots."""
    data = summary["data_drift"]
    lines = [f"# Drift check: **{summary['verdict']}**", ""]
    lines.append(
        f"- Data drift: **{data['verdict']}**"
        + (f" ({', '.join(data['drifted_features'])})" if data["drifted_features"] else "")
    )
    if summary["prediction_drift"] is not None:
        lines.append(f"- Prediction drift: **{summary['prediction_drift']['verdict']}**")
    if summary["performance"] is not None:
        perf = summary["performance"]
        degraded = perf["overall"].get("degraded") or []
        lines.append(
            f"- Performance: **{perf['verdict']}**" + (f" ({', '.join(degraded)} dropped)" if degraded else "")
        )
    labels = summary.get("labels")
    if labels is not None:
        lines.append(
            f"- Labels: {labels['labelled']} of {labels['predicted']} answers of env `{labels['env']}` labelled "
            f"({100 * labels['coverage']:.1f}%), predictions from {labels['since']} to {labels['until']}"
        )
    for feature, reason in data["data_quality"].items():
        lines.append(f"- Data quality failed in `{feature}`: {reason}")
    for feature, codes in data["unseen_categories"].items():
        lines.append(f"- Unseen categories in `{feature}`: " + ", ".join(f"`{k}` ({v} rows)" for k, v in codes.items()))
    settings = summary["settings"]
    lines += [
        "",
        (
            f"A feature drifts when its {settings['correction'].replace('_', '-')} corrected p-value is at most "
            f"{settings['alpha']} and its effect size passes the threshold; it fails data quality when its "
            f"share of missing rows is more than {settings['max_null_share']} above the reference's, or it holds "
            "infinite values the reference never had. Missing and infinite values take no part in the tests."
        ),
        "",
        "| feature | verdict | effect | threshold | p (corrected) | PSI | rows | missing / inf | plot |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for f in features:
        plot = f"[plot]({plots[f.feature]})" if f.feature in plots else ""
        lines.append(
            f"| `{f.feature}` | {f.verdict} | {f.effect_name} {_fmt(f.effect)} | {f.effect_threshold} | "
            f"{_fmt(f.p_value_corrected)} | {_fmt(f.psi)} | {f.rows_current} | {_invalid_share(f)} | {plot} |"
        )
    pred = summary["prediction_drift"]
    if pred is not None and pred["verdict"] != NOT_ENOUGH_DATA:
        lines += [
            "",
            "## Predictions",
            "",
            (
                f"Positive share {pred['positive_share_reference']:.3f} -> {pred['positive_share_current']:.3f}; "
                f"score normalised Wasserstein {_fmt(pred['score_normalised_wasserstein'])}, "
                f"KS p {_fmt(pred['score_p_value'])}."
            ),
        ]
    perf = summary["performance"]
    if perf is not None:
        lines += ["", "## Performance", "", "| slice | rows | ROC AUC | accuracy | verdict |", "|---|---|---|---|---|"]
        slices = [("overall", perf["overall"])] + [(f"period {k}", v) for k, v in perf.get("periods", {}).items()]
        for name, row in slices:
            lines.append(
                f"| {name} | {_rows(row)} | {_fmt(row.get('roc_auc'))} | {_fmt(row.get('accuracy'))} | "
                f"{row['verdict']} |"
            )
        for feature, group_rows in perf["groups"].items():
            for label, row in group_rows.items():
                lines.append(
                    f"| {feature} = {label} | {_rows(row)} | {_fmt(row.get('roc_auc'))} | "
                    f"{_fmt(row.get('accuracy'))} | {row.get('verdict', 'reported')} |"
                )
    elif labels is not None:
        # No label yet: proxy monitoring only; the coverage says what is still to come.
        lines += ["", "## Labels", "", "| period | labelled | predicted |", "|---|---|---|"]
        lines += [f"| {k} | {v['labelled']} | {v['predicted']} |" for k, v in labels["periods"].items()]
    return "\n".join(lines) + "\n"


def _rows(row: Mapping[str, Any]) -> str:
    """Labelled rows, and of how many answers when the prediction log gave the coverage."""
    if "predicted" not in row:
        return str(row["rows"])
    return f"{row['rows']} of {row['predicted']} ({100 * row['coverage']:.1f}%)"


def plot_features(
    *, reference: pd.DataFrame, current: pd.DataFrame, features: Sequence[FeatureResult], out_dir: Path, limit: int
) -> dict[str, str]:
    """Small reference-vs-current distribution plots for the most severe features."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots: dict[str, str] = {}
    (out_dir / "plots").mkdir(parents=True, exist_ok=True)
    # A feature with no value left on either side has nothing to draw.
    drawable = [f for f in features if f.verdict != NOT_ENOUGH_DATA and min(f.rows_reference, f.rows_current) > 0]
    for f in drawable[:limit]:
        fig, ax = plt.subplots(figsize=(4, 2.6), dpi=80)
        if f.kind == "numeric":
            ref, cur = numeric_values(series=reference[f.feature]), numeric_values(series=current[f.feature])
            edges = np.histogram_bin_edges(ref, bins=_PLOT_BINS)
            if np.all(ref == np.round(ref)):
                # Whole numbers (ages): bins on integer boundaries, or bars alternate in height.
                width = max(1.0, float(np.ceil((ref.max() - ref.min()) / _PLOT_BINS)))
                edges = np.arange(ref.min() - 0.5, ref.max() + width, width)
            ax.hist(ref, bins=edges.tolist(), density=True, alpha=0.5, label="reference")
            ax.hist(cur, bins=edges.tolist(), density=True, alpha=0.5, label="current")
        else:
            table = pd.concat(
                [
                    category_counts(series=reference[f.feature]).rename("reference"),
                    category_counts(series=current[f.feature]).rename("current"),
                ],
                axis=1,
            ).fillna(0)
            shares = (table / table.sum()).sort_index()
            positions = np.arange(len(shares))
            ax.bar(positions - 0.2, shares["reference"], width=0.4, label="reference")
            ax.bar(positions + 0.2, shares["current"], width=0.4, label="current")
            ax.set_xticks(positions, [str(i) for i in shares.index], fontsize=6)
        ax.set_title(f"{f.feature}: {f.verdict}", fontsize=9)
        ax.legend(fontsize=6)
        fig.tight_layout()
        relative = f"plots/{f.feature}.png"
        fig.savefig(out_dir / relative, metadata={"Software": None})
        plt.close(fig)
        plots[f.feature] = relative
    return plots


def write_github_output(*, summary: Mapping[str, Any], path: Path | str) -> None:
    """Expose the verdict to later workflow steps (GITHUB_OUTPUT's key=value lines)."""
    with Path(path).open("a", encoding="utf-8") as fh:
        fh.write(f"drift={'true' if summary['drift'] else 'false'}\n")
        fh.write(f"verdict={summary['verdict']}\n")


def write_no_data_output(*, reason: str, path: Path | str) -> None:
    """No production data: the workflow alerts on verdict=no data (the step itself exits 3)."""
    from pipeline.core.redact import redact
    from pipeline.monitoring.drift.quality import NO_DATA

    with Path(path).open("a", encoding="utf-8") as fh:
        fh.write(f"drift=false\nverdict={NO_DATA}\n")
        fh.write(f"reason={' '.join(redact(reason).split())}\n")
