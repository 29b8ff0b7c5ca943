"""`pipeline deploy smoke --env E`: start the real service for an environment on loopback, send a
fixed sample of rows, and check that every answer is a 200 from the version the registry's
aliases name. The CD workflow runs it right after `deploy apply --env staging`.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from pipeline.core.config import Params
from pipeline.core.runner import stop_group

logger = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 120.0


class ServiceSmokeFailed(RuntimeError):
    """The service did not start, or answered with errors or from the wrong version."""


def problems(*, answers: list[tuple[int, dict[str, Any]]], allowed: set[str]) -> list[str]:
    """Pure: what is wrong with the service's answers (empty when all is well)."""
    found = []
    statuses = sorted({status for status, _ in answers if status != 200})
    if statuses:
        found.append(f"non-200 answers: {statuses}")
    versions = {str(body.get("model_version")) for status, body in answers if status == 200}
    if versions - allowed:
        found.append(f"answered by version(s) {sorted(versions - allowed)}, expected {sorted(allowed)}")
    scores = [body.get("score") for status, body in answers if status == 200]
    if any(not isinstance(s, int | float) or not 0 <= s <= 1 for s in scores):
        found.append("a score is missing or outside [0, 1]")
    return found


def run(*, params: Params, env: str) -> dict[str, Any]:
    import httpx

    from pipeline.core import io
    from pipeline.delivery import registry_state
    from pipeline.delivery.loadgen import free_port, wait_until_ok
    from pipeline.delivery.smoke import sample

    state = registry_state.deployment_state(name=params.tracking.registered_model, env=env)
    if state.champion is None:
        raise ServiceSmokeFailed(f"{env} has no champion alias: run `pipeline deploy apply --env {env}` first")
    allowed = {v for v in (state.champion, state.challenger) if v is not None}
    rows = sample(raw=io.read_table(params.data.raw), params=params).to_dict(orient="records")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="service-smoke-") as tmp:
        log = Path(tmp) / "serve.log"
        cmd = [
            *(sys.executable, "-m", "pipeline", "serve", "--env", env, "--host", "127.0.0.1", "--port", str(port)),
            *("--log-url", f"sqlite:///{Path(tmp) / 'predictions.db'}"),
        ]
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            try:
                wait_until_ok(url=f"{url}/ready", timeout=READY_TIMEOUT_SECONDS, process=proc)
            except (TimeoutError, RuntimeError) as exc:
                raise ServiceSmokeFailed(f"{exc}\n{log.read_text(errors='replace')[-2000:]}") from exc
            answers = []
            with httpx.Client(base_url=url, timeout=10) as http:
                for i, row in enumerate(rows):
                    response = http.post("/predict", json={"association_id": f"smoke-{i}", "features": row})
                    answers.append((response.status_code, response.json()))
        finally:
            stop_group(proc)
    found = problems(answers=answers, allowed=allowed)
    if found:
        raise ServiceSmokeFailed(f"{env} service smoke test failed: {'; '.join(found)}")
    summary = {"env": env, "requests": len(answers), "versions": sorted(allowed)}
    logger.info("%s service answered %d requests from version(s) %s", env, len(answers), sorted(allowed))
    return summary
