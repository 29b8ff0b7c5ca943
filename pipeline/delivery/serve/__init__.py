"""The scoring service: champion/challenger routing resolved from registry aliases, input
validation from params, micro-batched scoring, humility flags, Prometheus metrics and a
prediction log written off the request path.

Shape of a request: POST /predict {"association_id": "...", "features": {"<column>": <value>, ...}}.
The association id is optional (one is generated); it keys the sticky canary split and the
later join with labels, which arrive on POST /feedback {"association_id": "...", "label": ...}.

Concerns, lowest first: `models` (sources, routing, reloads), `inputs` (schema, profile,
flags), `batching`, `metrics`, `http` (bounded JSON bodies), `feedback` (labels), `app` (the
ASGI app) and `server` (the process).
"""

from pipeline.delivery.serve.app import ERR_EMPTY_BODY, ERR_TOO_LARGE, Service, create_app
from pipeline.delivery.serve.batching import Batcher, Outcome, limit_threads
from pipeline.delivery.serve.inputs import (
    FLAG_CATEGORY,
    FLAG_RANGE,
    FLAG_UNCERTAIN,
    TrainingProfile,
    answer,
    field_errors,
    input_flags,
    load_profile,
    request_model,
    score_flags,
    to_frame,
    training_profile,
)
from pipeline.delivery.serve.metrics import Metrics
from pipeline.delivery.serve.models import (
    ERR_NO_MODEL,
    STRATEGIES,
    FileSource,
    LoadedModelLike,
    LocalModel,
    ModelManager,
    ModelSource,
    RegistrySource,
    Routing,
    ServeError,
    ServingState,
    assign_role,
    bucket,
    state_from_registry,
)
from pipeline.delivery.serve.server import listening_socket, run

__all__ = [
    "ERR_EMPTY_BODY",
    "ERR_NO_MODEL",
    "ERR_TOO_LARGE",
    "FLAG_CATEGORY",
    "FLAG_RANGE",
    "FLAG_UNCERTAIN",
    "STRATEGIES",
    "Batcher",
    "FileSource",
    "LoadedModelLike",
    "LocalModel",
    "Metrics",
    "ModelManager",
    "ModelSource",
    "Outcome",
    "RegistrySource",
    "Routing",
    "ServeError",
    "Service",
    "ServingState",
    "TrainingProfile",
    "answer",
    "assign_role",
    "bucket",
    "create_app",
    "field_errors",
    "input_flags",
    "limit_threads",
    "listening_socket",
    "load_profile",
    "request_model",
    "run",
    "score_flags",
    "state_from_registry",
    "to_frame",
    "training_profile",
]
