"""Rebuild the shipped demo data from the nannyml 0.13.1 wheel (provenance, run once).

    pip download --no-deps nannyml==0.13.1 -d /tmp/w && unzip -o /tmp/w/*.whl -d /tmp/w/x
    python scripts/extract_demo_data.py /tmp/w/x/nannyml/datasets/data

Only the parquet files inside the wheel are read; nannyml itself is never imported.
Coded columns are stored as plain strings (not pandas categoricals) so that CSV and
parquet inputs look the same to the validation suite.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

DROP = ["prediction", "predicted_probability"]


def main(src: Path, out: Path = Path("data")) -> None:
    ref = pd.read_parquet(src / "employment_MA_reference.pq").drop(columns=DROP)
    analysis = pd.read_parquet(src / "employment_MA_analysis.pq").drop(columns=DROP)
    target = pd.read_parquet(src / "employment_MA_analysis_target.pq")
    for frame in (ref, analysis):
        for col in frame.columns:
            if isinstance(frame[col].dtype, pd.CategoricalDtype):
                frame[col] = frame[col].astype(str)
    (out / "raw").mkdir(parents=True, exist_ok=True)
    (out / "production").mkdir(parents=True, exist_ok=True)
    ref.to_parquet(out / "raw" / "employment_2015.parquet", index=False)
    for year, group in analysis.groupby("year"):
        batch = group.reset_index(drop=True)
        batch.to_parquet(out / "production" / f"{year}_features.parquet", index=False)
        labels = target[target["id"].isin(batch["id"])].reset_index(drop=True)
        labels.to_parquet(out / "production" / f"{year}_labels.parquet", index=False)
        print(f"{year}: {len(batch)} rows, {len(labels)} labels")
    print(f"2015 reference: {len(ref)} rows")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
