"""Production periods on disk: `<period>_features.parquet`, joined by `<period>_labels.parquet`
once the period is labelled, all in params `retrain.production_dir`.

One policy for every loop that looks for them (the drift check's default batch, the retraining
window, the demo's replay): periods are ordered by file name, so the newest is the last, and
names must sort in time (2024-01, 2024-02, ...; or plain years).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

FEATURES_SUFFIX = "_features"
LABELS_SUFFIX = "_labels"
PATTERN = f"<period>{FEATURES_SUFFIX}.parquet"


@dataclass(frozen=True)
class Period:
    name: str
    features: Path
    labels: Path | None


def discover_periods(*, names: Sequence[str], directory: Path) -> list[Period]:
    """Pure: periods from file names, oldest first; a period has labels when its labels file is there."""
    present = set(names)
    periods = []
    for name in sorted(names):
        if name.endswith(f"{FEATURES_SUFFIX}.parquet"):
            period = name.removesuffix(f"{FEATURES_SUFFIX}.parquet")
            labels = f"{period}{LABELS_SUFFIX}.parquet"
            periods.append(Period(period, directory / name, directory / labels if labels in present else None))
    return periods


def periods_in(directory: Path) -> list[Period]:
    """The periods of a folder, oldest first; none when the folder does not exist."""
    if not directory.is_dir():
        return []
    return discover_periods(names=[p.name for p in directory.iterdir() if p.is_file()], directory=directory)


def newest_batch(directory: Path) -> Path | None:
    """The newest period's features file, labelled or not; None when the folder holds none."""
    periods = periods_in(directory)
    return periods[-1].features if periods else None
