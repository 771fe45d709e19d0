"""The Event Grid topic endpoint, fed by azure-eventgrid's EventGridPublisherClient."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent

from tests.emulator.conftest import VAULT_SCOPE, token_for


def test_eventgrid_events_and_cloud_events_are_recorded(emulator, unique_name):
    client = emulator.eventgrid_client()
    client.send(
        [
            EventGridEvent(
                subject=unique_name,
                event_type="KeyRotation.CycleStarted",
                data={"target": unique_name},
                data_version="1",
            )
        ],
        connection_verify=emulator.ca_bundle,
    )
    client.send(
        [
            CloudEvent(
                source="/rotation",
                type="KeyRotation.CycleCompleted",
                subject=unique_name,
                data={"target": unique_name},
            )
        ],
        connection_verify=emulator.ca_bundle,
    )
    mine = [e for e in emulator.control.eventgrid_events(topic="rotation") if e.get("subject") == unique_name]
    assert [e.get("eventType") or e.get("type") for e in mine] == [
        "KeyRotation.CycleStarted",
        "KeyRotation.CycleCompleted",
    ]
    assert mine[0]["data"] == {"target": unique_name} and mine[1]["specversion"] == "1.0"


def test_publishing_needs_an_event_grid_token(emulator):
    class VaultTokenOnly:
        def __init__(self, inner):
            self.inner = inner

        def get_token(self, *scopes, **kwargs):
            return self.inner.get_token(VAULT_SCOPE, **kwargs)

    client = emulator.eventgrid_client(credential=VaultTokenOnly(emulator.credential()))
    with pytest.raises(ClientAuthenticationError):
        client.send(
            [EventGridEvent(subject="s", event_type="t", data={}, data_version="1")],
            connection_verify=emulator.ca_bundle,
        )


@pytest.mark.parametrize("body", [{"not": "an array"}, [], [{"id": "1"}]])
def test_malformed_batches_are_rejected(emulator, http, body):
    token = token_for(emulator, "https://eventgrid.azure.net/.default")
    response = http.post(
        "/eventgrid/topics/rotation/api/events",
        params={"api-version": "2018-01-01"},
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "BadRequest"


def test_injected_500_is_retried_by_the_publisher_and_recorded_once(fresh_emulator):
    client = fresh_emulator.eventgrid_client()
    fresh_emulator.control.add_fault("eventgrid.publish", status=500)
    client.send(
        [EventGridEvent(subject="s", event_type="t", data={}, data_version="1")],
        connection_verify=fresh_emulator.ca_bundle,
    )
    assert fresh_emulator.control.calls()["eventgrid.publish"] == 2
    assert [e["subject"] for e in fresh_emulator.control.eventgrid_events()] == ["s"]


def test_persistent_fault_surfaces_as_http_response_error(fresh_emulator):
    client = fresh_emulator.eventgrid_client()
    fresh_emulator.control.add_fault("eventgrid.publish", status=400, code="BadRequest")
    with pytest.raises(HttpResponseError) as raised:
        client.send(
            [EventGridEvent(subject="s", event_type="t", data={}, data_version="1")],
            connection_verify=fresh_emulator.ca_bundle,
        )
    assert raised.value.status_code == 400
    assert fresh_emulator.control.eventgrid_events() == []
