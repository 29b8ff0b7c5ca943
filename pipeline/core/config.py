"""The typed view of params.yaml: one frozen object, loaded explicitly, never at import."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.core.config_data import (  # noqa: F401 - re-exported: callers import every section from here
    BaseSection,
    CategoricalColumn,
    DataSection,
    Label,
    NumericRange,
    SourceSection,
    _Frozen,
    label_key,
)

DEFAULT_PARAMS = Path("params.yaml")


class ConfigError(ValueError):
    """params.yaml is missing, unreadable or does not match the schema."""


class ValidationSection(_Frozen):
    min_rows: int = Field(ge=0)
    max_rows: int = Field(gt=0)
    example_values: int = Field(ge=1)


class RepresentationSection(_Frozen):
    min_rows_per_class: int = Field(ge=0)
    min_class_share: float = Field(ge=0, le=0.5)
    min_rows_per_group: int = Field(ge=0)
    min_group_positive_rate: float = Field(ge=0, le=1)
    group_features: tuple[str, ...]


class LeakageSection(_Frozen):
    max_single_feature_auc: float = Field(gt=0.5, le=1)


class PrepareSection(_Frozen):
    test_size: float = Field(gt=0, lt=1)
    valid_size: float = Field(gt=0, lt=1)
    representation: RepresentationSection
    leakage: LeakageSection


class EstimatorSpec(BaseModel):
    # Hyper-parameters pass straight to scikit-learn, so unknown keys are allowed here.
    model_config = ConfigDict(frozen=True, extra="allow")
    kind: Literal["hist_gradient_boosting", "logistic_regression"]

    def hyperparameters(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TrainSection(_Frozen):
    primary_metric: Literal["roc_auc", "f1", "accuracy", "average_precision"]
    candidates: tuple[str, ...] = Field(min_length=1)
    estimators: dict[str, EstimatorSpec]
    # Largest |p_onnx - p_sklearn| on the test split for the ONNX compilation to serve at all.
    onnx_tolerance: float = Field(default=1e-5, gt=0, lt=1)

    @model_validator(mode="after")
    def _candidates_exist(self) -> TrainSection:
        unknown = [c for c in self.candidates if c not in self.estimators]
        if unknown:
            raise ValueError(f"train.candidates names undefined estimators: {unknown}")
        return self


class PermutationSection(_Frozen):
    n_repeats: int = Field(ge=1)
    max_rows: int = Field(ge=10)


class MinRecallSection(_Frozen):
    per_class: float = Field(ge=0, le=1)
    per_group: float = Field(ge=0, le=1)


class EvaluateSection(_Frozen):
    threshold: float = Field(gt=0, lt=1)
    calibration_bins: int = Field(ge=2)
    permutation: PermutationSection
    min_recall: MinRecallSection


class GroupSpec(_Frozen):
    """Either code lists per group (categorical) or bins with labels (numeric)."""

    codes: dict[str, tuple[str, ...]] | None = None
    bins: tuple[float, ...] | None = None
    labels: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> GroupSpec:
        if (self.codes is None) == (self.bins is None):
            raise ValueError("give either codes or bins (with labels) for a sensitive feature")
        if self.bins is not None and (self.labels is None or len(self.labels) != len(self.bins) - 1):
            raise ValueError("bins need exactly one label per interval")
        return self


class FairnessThreshold(_Frozen):
    demographic_parity: float | None
    equalized_odds: float | None


class FairnessSection(_Frozen):
    min_group_size: int = Field(ge=1)
    groups: dict[str, GroupSpec]
    thresholds: dict[str, FairnessThreshold]

    @model_validator(mode="after")
    def _thresholds_match_groups(self) -> FairnessSection:
        missing = sorted(set(self.groups) ^ set(self.thresholds))
        if missing:
            raise ValueError(f"fairness.groups and fairness.thresholds differ on {missing}")
        return self


class TrackingSection(_Frozen):
    uri: str
    artifact_location: Path
    experiment: str
    registered_model: str


class CardSection(_Frozen):
    source: Path
    output: Path


class PathsSection(_Frozen):
    reports: Path
    prepared: Path
    model: Path
    # The model compiled to ONNX (empty when it did not match scikit-learn).
    compiled: Path = Path("models/model.onnx")


# A window of the prediction log as an age: a whole number of days, hours or minutes (7d, 36h).
WINDOW_PATTERN = r"^[1-9][0-9]*[dhm]$"


class DriftPredictionSpec(_Frozen):
    score_column: str
    min_score_effect: float = Field(gt=0)
    max_positive_share_change: float = Field(gt=0, lt=1)


class DriftPerformanceSpec(_Frozen):
    baseline: Path
    metrics: tuple[Literal["roc_auc", "accuracy"], ...] = Field(min_length=1)
    max_drop: float = Field(gt=0, lt=1)
    period_column: str
    # From the prediction log: the period of a prediction is its day, ISO week or month (UTC),
    # unless the logged inputs hold period_column.
    period: Literal["day", "week", "month"] = "week"


class DriftSection(_Frozen):
    correction: Literal["benjamini_hochberg", "bonferroni"]
    alpha: float = Field(gt=0, lt=1)
    min_rows: int = Field(ge=2)
    min_numeric_effect: float = Field(gt=0)
    min_categorical_effect: float = Field(gt=0, le=1)
    psi_bins: int = Field(ge=2)
    psi_epsilon: float = Field(gt=0, lt=1)
    max_null_share: float = Field(ge=0, lt=1)
    max_plots: int = Field(ge=0)
    out_dir: Path
    # Reading the prediction log: this environment's answers over the last `window` (an age).
    env: str = Field(default="production", min_length=1)
    window: str = Field(default="7d", pattern=WINDOW_PATTERN)
    prediction: DriftPredictionSpec
    performance: DriftPerformanceSpec


class SimulateCovariate(_Frozen):
    feature: str
    strength: float


class SimulateConcept(_Frozen):
    share: float = Field(gt=0, le=1)
    codes: dict[str, tuple[str, ...]]
    ranges: dict[str, tuple[float, float]]


class SimulateNewCategory(_Frozen):
    column: str
    code: str
    share: float = Field(gt=0, le=1)


class SimulateSection(_Frozen):
    rows: int = Field(ge=1)
    covariate: SimulateCovariate
    concept: SimulateConcept
    new_category: SimulateNewCategory


# The log holds people's raw inputs: they are kept this many days unless params say otherwise,
# and keeping them forever is deliberately not offered.
DEFAULT_RETENTION_DAYS = 90
MAX_RETENTION_DAYS = 36_500
ERR_RETENTION_DAYS = (
    "must be a whole number of days from 1 to {max}, not {value!r} "
    "(the prediction log holds personal data: keeping it forever is not offered)"
)


class ServeLogSection(_Frozen):
    path: Path
    flush_rows: int = Field(ge=1)
    flush_seconds: float = Field(gt=0)
    queue_rows: int = Field(ge=1)
    retention_days: int = DEFAULT_RETENTION_DAYS

    @field_validator("retention_days", mode="before")
    @classmethod
    def _whole_days(cls, value: object) -> object:
        # Before pydantic's coercion: `true` would become 1 day and null has no meaning here.
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RETENTION_DAYS:
            raise ValueError(ERR_RETENTION_DAYS.format(max=MAX_RETENTION_DAYS, value=value))
        return value


class HumilitySection(_Frozen):
    uncertain_band: tuple[float, float]
    fallback_label: Literal[0, 1] | None = None

    @model_validator(mode="after")
    def _band_in_unit_interval(self) -> HumilitySection:
        low, high = self.uncertain_band
        if not 0 <= low <= high <= 1:
            raise ValueError("serve.humility.uncertain_band must be [low, high] with 0 <= low <= high <= 1")
        return self


class ServeSection(_Frozen):
    host: str
    port: int = Field(ge=0, le=65535)
    poll_seconds: float = Field(gt=0)
    max_batch: int = Field(ge=1)
    max_wait_ms: float = Field(ge=0)
    predict_threads: int = Field(ge=1)
    max_body_bytes: int = Field(ge=64)
    max_association_id_chars: int = Field(ge=1)
    keep_alive_seconds: int = Field(ge=1)
    read_timeout_seconds: float = Field(gt=0)
    log: ServeLogSection
    humility: HumilitySection
    # auto: score on onnxruntime when the version carries a parity-checked ONNX file; off: always
    # scikit-learn.
    compiled: Literal["auto", "off"] = "auto"


class CanarySection(_Frozen):
    window_hours: float = Field(gt=0)
    score_bins: int = Field(ge=2)
    min_labelled: int = Field(ge=1)
    report_dir: Path


class GateSection(_Frozen):
    # Non-inferiority: the candidate may trail the champion's primary metric by at most this much.
    primary_margin: float = Field(ge=0, lt=1)
    max_recall_drop: float = Field(ge=0, lt=1)
    max_fairness_increase: float = Field(ge=0, lt=1)
    champion_env: str
    incomparable_champion: Literal["floors", "fail"] = "floors"


class SmokeSection(_Frozen):
    rows: int = Field(ge=1)
    max_single_row_ms: float = Field(gt=0)
    repeats: int = Field(ge=1)


class GuardrailsSection(_Frozen):
    max_error_rate: float = Field(ge=0, le=1)
    max_p99_latency_ms: float = Field(gt=0)
    max_prediction_distance: float = Field(ge=0, le=1)
    min_requests: int = Field(ge=1)
    # Absolute floor on the challenger's labelled accuracy; null: not judged on its own.
    min_accuracy: float | None = Field(default=None, ge=0, le=1)
    # The challenger's labelled accuracy may be at most this far below the champion's on the same
    # window; null: not compared.
    max_accuracy_drop: float | None = Field(default=None, ge=0, le=1)


class DeploySection(_Frozen):
    manifests: Path
    environments: tuple[str, ...] = Field(min_length=1)
    canary_share: float = Field(gt=0, lt=1)
    lock_timeout_seconds: float = Field(gt=0)
    lock_ttl_seconds: float = Field(gt=0)
    guardrails: GuardrailsSection


class RetrainSection(_Frozen):
    reference: Path
    production_dir: Path
    max_periods: int = Field(ge=1)
    min_labelled_rows: int = Field(ge=1)
    out_dir: Path
    # Retraining from the prediction log: labelled answers over the last `window` (an age).
    window: str = Field(default="90d", pattern=WINDOW_PATTERN)
    # Association ids become keyed hashes; the key is read from the variable salt_env names.
    pseudonymise: bool = False
    salt_env: str = Field(default="RETRAIN_ID_SALT", pattern=r"^[A-Z_][A-Z0-9_]*$")


class ScoreSection(_Frozen):
    """`pipeline score`: batch scoring of a table with a registered model or a model file."""

    # Rows read, validated and scored at a time: memory stays bounded by it. Each batch is one
    # output part, so changing it changes the part files (and the run's fingerprint).
    batch_rows: int = Field(default=100_000, ge=1)
    # Rows refused by the service's input rules go to rejects/; above this share of the input
    # the command exits 1 (the output is still written, complete and marked so).
    max_reject_share: float = Field(default=0.01, ge=0, le=1)
    # local: batches in this process; dask: partitions on a Dask cluster (--scheduler /
    # DASK_SCHEDULER_ADDRESS, else a local cluster sized to the machine). Same output either way.
    engine: Literal["local", "dask"] = "local"
    # How long to wait for a Dask scheduler before giving up with nothing written.
    connect_seconds: float = Field(default=5.0, gt=0, le=300)
    # Append every scored row to the prediction log (environment `batch`), as the service does.
    log: bool = False


class LabelsSection(_Frozen):
    """Ground truth arriving after the prediction, joined to it by association id."""

    # A second, different label for an id: `refuse` keeps the first one (the later is reported),
    # `version` keeps both and readers take the newest.
    duplicates: Literal["refuse", "version"] = "refuse"
    max_batch: int = Field(default=500, ge=1)
    id_column: str = Field(default="association_id", min_length=1)
    label_column: str = Field(default="label", min_length=1)
    observed_at_column: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _distinct_columns(self) -> LabelsSection:
        named = [c for c in (self.id_column, self.label_column, self.observed_at_column) if c is not None]
        if len(set(named)) < len(named):
            raise ValueError(f"id_column, label_column and observed_at_column must name different columns, got {named}")
        return self


class Params(_Frozen):
    base: BaseSection
    data: DataSection
    validation: ValidationSection
    prepare: PrepareSection
    train: TrainSection
    evaluate: EvaluateSection
    fairness: FairnessSection
    tracking: TrackingSection
    card: CardSection
    paths: PathsSection
    drift: DriftSection
    simulate: SimulateSection
    serve: ServeSection
    canary: CanarySection
    gate: GateSection
    smoke: SmokeSection
    deploy: DeploySection
    retrain: RetrainSection
    # Last and optional: a params.yaml written before labels existed still loads.
    labels: LabelsSection = Field(default_factory=LabelsSection)
    # Optional too: params written before batch scoring existed still load.
    score: ScoreSection = Field(default_factory=ScoreSection)

    @model_validator(mode="after")
    def _named_columns_declared(self) -> Params:
        from pipeline.core.config_keys import column_problems

        problems = column_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def load_params(path: Path | str = DEFAULT_PARAMS) -> Params:
    """Read and check params.yaml; every problem becomes one ConfigError naming the key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} not found: run from the project root or pass --params") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of sections")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_problem(err) for err in exc.errors())
        raise ConfigError(f"{path}: {problems}") from exc


def _problem(err: Any) -> str:
    message = str(err["msg"]).removeprefix("Value error, ")
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {message}" if where else message
