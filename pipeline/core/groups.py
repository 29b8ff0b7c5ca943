"""Map raw sensitive columns to the named groups of params.fairness.groups."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.core.config import GroupSpec

UNMAPPED = "unmapped"


def group_labels(*, values: pd.Series, spec: GroupSpec) -> pd.Series:
    """One label per row; codes not listed (or ages outside the bins) become "unmapped"."""
    if spec.codes is not None:
        lookup = {code: name for name, codes in spec.codes.items() for code in codes}
        mapped = values.astype(str).map(lookup)
    else:
        # GroupSpec's validator guarantees both when codes are absent.
        assert spec.bins is not None
        assert spec.labels is not None
        mapped = pd.cut(values.astype(float), bins=list(spec.bins), labels=list(spec.labels), right=False)
        mapped = mapped.astype(object)
    return pd.Series(np.where(mapped.isna(), UNMAPPED, mapped.astype(str)), index=values.index, name=values.name)


def sensitive_frame(*, frame: pd.DataFrame, groups: dict[str, GroupSpec]) -> pd.DataFrame:
    return pd.DataFrame({name: group_labels(values=frame[name], spec=spec) for name, spec in groups.items()})
