from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.core.config import ConfigError, load_params
from tests.conftest import DEMO_PARAMS, demo_params_text

pytestmark = pytest.mark.unit


def _write(tmp_path: Path, mutate: object) -> Path:
    raw = yaml.safe_load(demo_params_text())
    assert callable(mutate)
    mutate(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_shipped_params_load() -> None:
    params = load_params(DEMO_PARAMS)
    assert params.base.target not in params.data.features
    assert set(params.fairness.groups) <= set(params.data.features)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("base: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(path)


def test_typo_in_a_key_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda raw: raw["base"].update(sed=1))
    with pytest.raises(ConfigError, match=r"base\.sed"):
        load_params(path)


def test_candidate_without_estimator(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda raw: raw["train"].update(candidates=["random_forest"]))
    with pytest.raises(ConfigError, match="undefined estimators"):
        load_params(path)


def test_fairness_thresholds_must_cover_groups(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda raw: raw["fairness"]["thresholds"].pop("SEX"))
    with pytest.raises(ConfigError, match="SEX"):
        load_params(path)


def test_bins_need_labels(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda raw: raw["fairness"]["groups"]["AGEP"].update(labels=["a"]))
    with pytest.raises(ConfigError, match="one label per interval"):
        load_params(path)
