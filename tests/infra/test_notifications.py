"""Alert notifications: an existing action group and/or a new one with e-mail and webhook receivers
(Teams, Slack); lifecycle events documented as a contract for subscribers (docs/EVENTS.md)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.infra import bicep
from tests.infra.bicep import INFRA, MAIN, ROOT
from tests.infra.bicep_eval import Evaluator

ALERTS = bicep.app_module("alerts")
TEAMS = "https://prod-00.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=x"
SLACK = "https://hooks.slack.com/triggers/T000/B000/xyz"


def _alerts(**params: Any) -> Evaluator:
    return Evaluator(
        ALERTS,
        params={"namePrefix": "abc", "location": "westeurope", "applicationInsightsId": "appi", **params},
        samples={"actionGroup.id": "new-group"},
    )


def test_webhook_urls_are_a_secure_parameter_azd_can_set():
    for path in (MAIN, ALERTS):
        decorators = [d["type"] for d in bicep.param(path, "alertWebhookUrls")["decorators"]]
        assert "secure" in decorators, path.name
    values = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert values["alertWebhookUrls"]["value"] == "${ALERT_WEBHOOK_URLS=}"
    assert bicep.module(MAIN, "alerts").body["params"]["alertWebhookUrls"] == "alertWebhookUrls"


@pytest.mark.parametrize(
    "email, urls, expected_email, expected_hooks",
    [
        ("", [], 0, 0),
        ("ops@example.com", [], 1, 0),
        ("", [TEAMS, SLACK], 0, 2),
        ("ops@example.com", [TEAMS], 1, 1),
    ],
)
def test_action_group_receivers(email: str, urls: list[str], expected_email: int, expected_hooks: int):
    group = bicep.the_resource(ALERTS, "Microsoft.Insights/actionGroups")
    evaluator = _alerts(alertEmailAddress=email, alertWebhookUrls=json.dumps(urls) if urls else "")
    created = evaluator.eval(group.condition)
    assert created is bool(email or urls)
    webhook_urls = evaluator.eval("webhookUrls")
    assert webhook_urls == urls
    emails = evaluator.eval(group.properties["emailReceivers"])
    assert len(emails) == expected_email
    receivers = group.properties["webhookReceivers"]
    assert bicep.render(receivers["loop_type"]["detail"]["array_name"]) == "webhookUrls"
    hooks = [
        evaluator.eval(receivers["config"], {"url": url, "index": index})
        for index, url in enumerate(webhook_urls)
    ]
    assert len(hooks) == expected_hooks
    for index, hook in enumerate(hooks):
        assert hook == {
            "name": f"webhook-{index}",
            "serviceUri": urls[index],
            "useCommonAlertSchema": True,
            "useAadAuth": False,
        }
    # every alert notifies the new group when it exists, plus an existing one when named
    ids = _alerts(
        alertEmailAddress=email,
        alertWebhookUrls=json.dumps(urls) if urls else "",
        actionGroupResourceId="old",
    ).eval("actionGroupIds")
    assert ids == (["old", "new-group"] if created else ["old"])


def test_every_alert_rule_uses_the_action_groups():
    for rule in bicep.resources(ALERTS, "Microsoft.Insights/scheduledQueryRules"):
        assert rule.properties["actions"] == {"actionGroups": "actionGroupIds"}, rule.symbol


EVENTS = (ROOT / "docs" / "EVENTS.md").read_text()
DEPLOY = (ROOT / "docs" / "DEPLOY.md").read_text()


def test_events_doc_is_the_subscriber_contract_of_the_published_events():
    from rotation.outcomes import LifecycleEventType
    from rotation.ports import LifecycleEvent
    from shared.azure.event_grid import _data

    # What the engine publishes: every LifecycleEventType member some engine module passes to audit.publish.
    engine_code = "".join(path.read_text() for path in (ROOT / "rotation").rglob("*.py"))
    used = set(re.findall(r"LifecycleEventType\.([A-Z_]+)", engine_code))
    published = {LifecycleEventType[name].value for name in used}
    assert len(published) == 4 and published == {member.value for member in LifecycleEventType}, published
    for event_type in published:
        assert f"`{event_type}`" in EVENTS, event_type
    sample = LifecycleEvent(
        "KeyRotation.CycleFailed", "/subscriptions/s/x", "acc", "c1", "key2", "key1", "why"
    )
    for field in _data(sample):
        assert f"`{field}`" in EVENTS, field
    assert "Microsoft.EventGrid/topics/eventSubscriptions" in EVENTS  # the example subscription


def test_deploy_md_has_the_sections_the_issue_asks_for():
    for heading in ("## Private network", "## Notifications", "## Evidence workbook"):
        assert heading in DEPLOY, heading
    assert "docs/EVENTS.md" in DEPLOY
