"""Deploy manifests and plans as pure functions: one test per kind of bad manifest, plan order,
idempotence and the manifest edits a workflow proposes.
"""

from __future__ import annotations

import json

import pytest

from pipeline.core.config import Params
from pipeline.delivery import deploy, registry, registry_state, service_smoke
from pipeline.delivery import manifest as manifests

pytestmark = pytest.mark.unit


def _parse(params: Params, **fields: object) -> manifests.Manifest:
    body = {"model": params.tracking.registered_model, **fields}
    return manifests.parse_manifest(text=json.dumps(body), source="deploy/test.yaml", params=params)


def test_valid_canary_manifest(params: Params) -> None:
    manifest = _parse(params, champion=1, challenger=2, strategy="canary", traffic_share=0.2)
    assert (manifest.champion, manifest.challenger, manifest.strategy) == (1, 2, "canary")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"champion": 1, "strategy": "blue-green"}, "strategy: Input should be 'none', 'shadow' or 'canary'"),
        ({"champion": 1, "challenger": 2, "strategy": "canary", "traffic_share": 1.5}, "traffic_share"),
        ({"champion": 1, "challenger": 2, "strategy": "canary", "traffic_share": 1.0}, "between 0 and 1"),
        ({"champion": 1, "strategy": "canary", "traffic_share": 0.2}, "strategy canary needs a challenger"),
        ({"champion": 1, "challenger": 2}, "a challenger needs strategy shadow or canary"),
        ({"champion": 1, "challenger": 1, "strategy": "shadow"}, "must be different versions"),
        ({"champion": True}, "champion: Input should be a valid integer"),
        ({"champion": 0}, "champion: Input should be greater than or equal to 1"),
        ({"champion": 1, "guardrails": {"max_error_rate": 2}}, "guardrails.max_error_rate"),
        ({"champion": 1, "replicas": 3}, "replicas: Extra inputs are not permitted"),
        ({}, "champion: Field required"),
    ],
    ids=[
        "unknown-strategy",
        "share-out-of-range",
        "canary-share-not-partial",
        "canary-without-challenger",
        "challenger-without-strategy",
        "challenger-is-champion",
        "bool-version",
        "version-zero",
        "guardrail-out-of-range",
        "unknown-field",
        "missing-champion",
    ],
)
def test_bad_manifest_is_refused_with_the_field(params: Params, fields: dict[str, object], message: str) -> None:
    with pytest.raises(manifests.DeployError, match=r"deploy/test\.yaml") as err:
        _parse(params, **fields)
    assert message in str(err.value)


def test_other_model_name_is_refused(params: Params) -> None:
    with pytest.raises(manifests.DeployError, match=r"is not params tracking\.registered_model"):
        manifests.parse_manifest(text="model: other\nchampion: 1\n", source="m.yaml", params=params)


@pytest.mark.parametrize("text", ["champion: [1", "- 1\n- 2\n"], ids=["bad-yaml", "not-a-mapping"])
def test_unreadable_manifest_is_refused(params: Params, text: str) -> None:
    with pytest.raises(manifests.DeployError, match=r"m\.yaml"):
        manifests.parse_manifest(text=text, source="m.yaml", params=params)


def test_unknown_environment_is_refused(params: Params) -> None:
    with pytest.raises(manifests.DeployError, match="unknown environment 'qa'"):
        manifests.manifest_path(params=params, env="qa")


def test_guardrails_fall_back_to_params(params: Params) -> None:
    manifest = _parse(params, champion=1, guardrails={"min_requests": 7})
    effective = manifests.guardrails(manifest=manifest, params=params)
    assert effective.min_requests == 7
    assert effective.max_error_rate == params.deploy.guardrails.max_error_rate


def test_plan_from_nothing_sets_aliases_before_routing(params: Params) -> None:
    desired = deploy.desired_state(
        manifest=_parse(params, champion=1, challenger=2, strategy="canary", traffic_share=0.2), env="production"
    )
    changes = deploy.plan(desired=desired, aliases={}, tags={})
    assert [c.key for c in changes][:2] == ["production-champion", "production-challenger"]
    assert changes[2] == deploy.Change("tag", "deploy.production.strategy", None, "canary")


def test_plan_is_empty_once_applied(params: Params) -> None:
    desired = deploy.desired_state(manifest=_parse(params, champion=3), env="staging")
    aliases = {"staging-champion": "3"}
    tags = {c.key: str(c.new) for c in deploy.plan(desired=desired, aliases=aliases, tags={})}
    assert deploy.plan(desired=desired, aliases=aliases, tags=tags) == []


def test_withdrawing_a_challenger_stops_routing_first(params: Params) -> None:
    desired = deploy.desired_state(manifest=_parse(params, champion=1), env="production")
    aliases = {"production-champion": "1", "production-challenger": "2"}
    tags = {"deploy.production.strategy": "canary", "deploy.production.traffic_share": "0.2"}
    changes = deploy.plan(desired=desired, aliases=aliases, tags=tags)
    assert changes[0].key == "deploy.production.strategy"
    assert changes[-2] == deploy.Change("alias", "production-challenger", "2", None)
    assert changes[-1].key == "deploy.production.seal"


def test_propose_promote_rollback(params: Params) -> None:
    base = _parse(params, champion=1)
    canary = manifests.propose(manifest=base, version=2, strategy="canary", share=params.deploy.canary_share)
    assert (canary.challenger, canary.traffic_share) == (2, params.deploy.canary_share)
    assert manifests.propose(manifest=base, version=1, strategy="canary", share=0.5) == base
    promoted = manifests.promote(manifest=canary)
    assert (promoted.champion, promoted.challenger, promoted.strategy) == (2, None, "none")
    assert manifests.rollback(manifest=canary) == base
    with pytest.raises(manifests.DeployError, match="no challenger"):
        manifests.promote(manifest=base)


def test_rendered_manifest_round_trips(params: Params) -> None:
    manifest = _parse(params, champion=4, challenger=5, strategy="shadow", guardrails={"min_accuracy": 0.8})
    text = manifests.render_manifest(manifest=manifest, env="staging")
    assert text.startswith("# Desired state of the staging deployment")
    assert manifests.parse_manifest(text=text, source="x", params=params) == manifest


def test_state_from_registry_aliases_and_tags() -> None:
    state = registry_state.state_from(
        aliases={"production-champion": "1", "production-challenger": "2", "staging-champion": "2"},
        tags={"deploy.production.strategy": "canary", "deploy.production.traffic_share": "0.25"},
        env="production",
    )
    assert state == registry_state.DeploymentState("1", "2", "canary", 0.25)
    staging = registry_state.state_from(aliases={"staging-champion": "2"}, tags={}, env="staging")
    assert staging == registry_state.DeploymentState("2", None, "none", 0.0)


def test_refusals_name_failed_checks() -> None:
    assert registry.refusals({"validation": "passed", "fairness": "failed", "gate": "not-run"}) == ["fairness failed"]


def test_service_smoke_problems() -> None:
    good = (200, {"model_version": "2", "score": 0.4})
    assert service_smoke.problems(answers=[good, good], allowed={"2"}) == []
    found = service_smoke.problems(
        answers=[good, (500, {"detail": "x"}), (200, {"model_version": "1", "score": 1.5})], allowed={"2"}
    )
    assert found == [
        "non-200 answers: [500]",
        "answered by version(s) ['1'], expected ['2']",
        "a score is missing or outside [0, 1]",
    ]


def test_a_new_registry_starts_with_an_empty_manifest(params: Params) -> None:
    manifest = _parse(params, champion=None)
    assert manifest.champion is None
    desired = deploy.desired_state(manifest=manifest, env="staging")
    # An alias left from an earlier deployment goes: the manifest says nothing is deployed.
    changes = deploy.plan(desired=desired, aliases={"staging-champion": "3"}, tags={})
    assert [(c.key, c.new) for c in changes if c.kind == "alias"] == [("staging-champion", None)]
    first = manifests.propose(manifest=manifest, version=1, strategy="canary", share=0.2)
    # Nothing to compare a canary with: the first version becomes the champion outright.
    assert (first.champion, first.challenger, first.strategy) == (1, None, "none")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"champion": None, "challenger": 2, "strategy": "shadow"}, "needs a champion"),
        ({"champion": None, "champion_sha256": "a" * 64}, "champion_sha256"),
    ],
)
def test_an_empty_manifest_refuses_what_needs_a_champion(
    params: Params, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(manifests.DeployError, match=message):
        _parse(params, **fields)
