"""Each engine change of issue 17 undone on its own, so ``bench.cost_per_cycle`` measures what every one
of them buys in the same run, interleaved with the others (docs/BENCHMARKS.md §7).

- ``now``: the engine as it is;
- ``env``: sessions trust the environment again (requests re-reads proxies, ``.netrc`` and the CA
  variables on every request — the behaviour before, with ~100 variables to scan);
- ``logging``: azure-core's HTTP logging policy back at the root logger's INFO (two records per call);
- ``reserve``: no budget reserve (a Table read + compare-and-swap per budget take, as before);
- ``history``: one Table request per history row instead of one entity per target and invocation;
- ``carry``: one history entity per target and invocation again, instead of per cycle (the rows of an
  invocation that does not end the cycle carried in the state entity's write until the one that does);
- ``transaction``: the invocation's history rows as one entity-group transaction (this issue's first pass)
  instead of one entity holding them all;
- ``casread``: the write budgets read the entity before every compare-and-swap instead of reusing the
  ETag of this instance's last write;
- ``refuseread``: every budget refusal reads the entity (as queued takes did one after the other), and
  ``release``/``penalize`` read before their compare-and-swap, instead of deciding from this instance's
  view of the entity when that view was sent after the take began;
- ``requeue``: a refused take comes back at the next token, and every deferral sends its own queue message
  (before: deferred targets are not spread at the refill rate, and a target deferred again before its
  message is due gets another one);
- ``merge``: the sessions without a proxy go through requests' generic setting merge again (the CA lookup
  by name stays);
- ``fullreserve``: a take reserves tokens for more takes however low the bucket is (they may lapse unspent
  while the budget limits the work);
- ``sync`` / ``async``: the engine on the synchronous clients (requests) / on the SDKs' ``.aio`` clients on
  one event loop (``ROTATION_ASYNC_IO``, this issue's third pass), whichever the default is;
- ``unpaced``: the in-process sweep starts every due target again, whatever the write budgets can pay (a
  target past them has its take refused after its reads), instead of sending those back at their paced time;
- ``sdkops``: Key Vault's secret reads and writes, ARM's key operations and Table's entity operations
  through the SDKs' generated operations again instead of the lean azure-core pipeline
  (``shared/azure/lean_calls.py``, sixth pass);
- ``restrequest``: the lean calls through ``AsyncPipelineClient.send_request`` with azure-core's ``rest``
  request and response again, instead of the transport request on the bare pipeline (seventh pass);
- ``listkeys``: every regenerate step lists the keys after ``regenerateKey`` again and takes two ARM write
  tokens for it, instead of taking the keys from its answer (seventh pass);
- ``sdkqueue``: a deferral's queue message through azure-storage-queue's operation again instead of the
  lean call (seventh pass);
- ``onebyone``: one queue message per target the sweep sends back past its horizon again, instead of one
  per group of targets paced within the same second (eighth pass);
- ``threads``: the sweep's targets (and a queue message's group) on a thread each again, instead of as
  greenlets on the I/O loop's thread (``IoLoop.run_each``, ninth pass);
- ``guardreads``: the I2 guard reads the pointer, then P-active, one after the other, instead of both
  together (``SecretStore.get_secrets``, eleventh pass);
- ``sixth``: ``restrequest``, ``listkeys``, ``sdkqueue`` and ``threads`` (the engine as the sixth pass left
  it);
- ``before``: ``env``, ``logging``, ``reserve``, ``history``, ``carry``, ``casread``, ``requeue``,
  ``refuseread``, ``unpaced``, ``sdkops``, ``listkeys`` and ``threads`` undone at once (the engine before
  issue 17, as far as one process allows).
Token fetching (one per scope) only matters in a fresh process's first sweep and is not varied here.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import requests
from azure.core import AsyncPipelineClient
from azure.core.exceptions import AzureError, HttpResponseError
from azure.core.rest import HttpRequest as RestRequest

from rotation import history_carry, pacing, write_budgets
from rotation.errors import TransientAzureError
from rotation.model import HistoryRecord, Slot
from rotation.ports import AccountKeys, SecretStore
from rotation.service import RotationService
from rotation.side_by_side import on_threads
from rotation.steps import regenerate as regenerate_step
from rotation.steps import retire as retire_step
from rotation.steps.context import StepContext
from shared import aio_clients, fanout
from shared.azure import budget_table, lean_calls, queues, tables
from shared.azure.budget_table import TableTokenBucket
from shared.azure.key_vault import KeyVaultSecretStore
from shared.azure.lean_calls import LeanPipeline, checked
from shared.azure.queues import QueueWorkScheduler
from shared.azure.tables import TableHistoryStore
from shared.bootstrap import HTTP_LOGGER, build_service
from shared.fanout import fanout_message
from shared.http_session import LeanSession, ca_bundle_from_environment
from shared.http_settings import HttpEnvironment
from shared.settings import Settings

VARIANTS: dict[str, frozenset[str]] = {
    "now": frozenset(),
    "env": frozenset({"env"}),
    "logging": frozenset({"logging"}),
    "reserve": frozenset({"reserve"}),
    "history": frozenset({"history"}),
    "carry": frozenset({"carry"}),
    "transaction": frozenset({"transaction"}),
    "casread": frozenset({"casread"}),
    "refuseread": frozenset({"refuseread"}),
    "requeue": frozenset({"requeue"}),
    "merge": frozenset({"merge"}),
    "fullreserve": frozenset({"fullreserve"}),
    "sync": frozenset({"sync"}),
    "async": frozenset({"async"}),
    "unpaced": frozenset({"unpaced"}),
    "sdkops": frozenset({"sdkops"}),
    "restrequest": frozenset({"restrequest"}),
    "listkeys": frozenset({"listkeys"}),
    "sdkqueue": frozenset({"sdkqueue"}),
    "onebyone": frozenset({"onebyone"}),
    "threads": frozenset({"threads"}),
    "guardreads": frozenset({"guardreads"}),
    "sixth": frozenset({"restrequest", "listkeys", "sdkqueue", "threads"}),
    "before": frozenset(
        {
            "env",
            "logging",
            "reserve",
            "history",
            "carry",
            "casread",
            "requeue",
            "refuseread",
            "unpaced",
            "sdkops",
            "listkeys",
            "threads",
        }
    ),
}


def _generic_merge(
    session: LeanSession, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
) -> dict[str, Any]:
    if not session.trust_env and (verify is True or verify is None) and session.verify is True:
        verify = ca_bundle_from_environment() or verify
    return requests.Session.merge_environment_settings(session, url, proxies, stream, verify, cert)


def _wait_for_the_next_token(bucket: TableTokenBucket, key: str, writes: int = 1) -> float:
    return bucket._waits.get(bucket._row(key), writes / bucket.rate)


def _send_every_time(scheduler: QueueWorkScheduler, resource_id: str, delay_seconds: float) -> None:
    delay = min(queues.MAX_VISIBILITY_SECONDS, max(0, math.ceil(delay_seconds)))
    try:
        scheduler.client.send_message(fanout_message(resource_id), visibility_timeout=delay)
    except AzureError:
        pass  # as the scheduler: best effort, the next sweep takes the target anyway


def _send_each_every_time(scheduler: QueueWorkScheduler, resource_ids: Sequence[str], delay: float) -> None:
    for resource_id in resource_ids:
        _send_every_time(scheduler, resource_id, delay)


def _one_request_per_row(store: TableHistoryStore, target_key: str, records: Sequence[HistoryRecord]) -> None:
    for record in records:
        store.table.ready().create_entity(tables._entity(target_key, [record.to_fields()]))


def _one_transaction(store: TableHistoryStore, target_key: str, records: Sequence[HistoryRecord]) -> None:
    rows = [tables._entity(target_key, [record.to_fields()]) for record in records]
    for start in range(0, len(rows), 100):  # Table storage's limit of operations per transaction
        store.table.ready().submit_transaction([("create", row) for row in rows[start : start + 100]])


async def _rest_send(
    pipeline: LeanPipeline,
    method: str,
    url: str,
    body: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    errors: Mapping[int, type[HttpResponseError]] = lean_calls._ERRORS,
    expected: int = 200,
    content: bytes | None = None,
) -> Any:
    """``LeanPipeline.send`` as the sixth pass had it: an ``azure.core.rest`` request through
    ``AsyncPipelineClient.send_request`` (the pipeline response asked for, so callers read it as now)."""
    client = pipeline.__dict__.get("_rest_client")
    if client is None:
        client = pipeline.__dict__["_rest_client"] = AsyncPipelineClient(
            pipeline.base_url, pipeline=pipeline._pipeline
        )
    sent_headers = {"Accept": "application/json", **(headers or {})}
    request = RestRequest(method, url, json=body, content=content, headers=sent_headers)
    sent = await client.send_request(request, _return_pipeline_response=True, **pipeline._timeouts)
    return checked(sent, errors, expected)


def _regenerate_then_list(ctx: StepContext, slot: Slot) -> AccountKeys:
    """``regenerate_and_list`` as before the seventh pass: two ARM tokens, regenerateKey, then listKeys."""
    if not ctx.regenerate_budget and not ctx.ports.limiter.try_acquire(ctx.target.subscription_id, 2):
        raise TransientAzureError(f"{ctx.target.account_name}: ARM write budget exhausted; retrying later")
    ctx.regenerate_budget = False
    ctx.ports.keys.regenerate_key(ctx.target.resource_id, slot)
    return ctx.ports.keys.list_keys(ctx.target.resource_id)


# The modules that read WRITES_PER_REGENERATE (imported by name) and call regenerate_and_list.
_REGENERATE_BUDGET_READERS: tuple[Any, ...] = (pacing, write_budgets)
_REGENERATE_CALLERS: tuple[Any, ...] = (regenerate_step, retire_step)


def _sdk_queue(self: aio_clients.AsyncClients, client: Any, encoding: Any) -> Any:
    return client  # azure-storage-queue's own send_message


def settings_for(settings: Settings, variant: str) -> Settings:
    """``env``, ``sync`` and ``async`` need their own service: its clients are built differently."""
    changes = VARIANTS[variant]
    if "env" in changes:
        settings = dataclasses.replace(settings, http=HttpEnvironment(use_proxy_settings=True))
    if "sync" in changes or "async" in changes:
        settings = dataclasses.replace(settings, async_io="async" in changes)
    return settings


def built(settings: Settings, variant: str, clock: Callable[[], datetime]) -> RotationService:
    """``variant``'s own service: its settings (``settings_for``), its clients (``sdkops``: built while the
    lean calls are off; ``sdkqueue``: the queue client as the SDK built it) and its wiring (``unpaced``: its
    sweep's pacing; ``threads``: how its targets run side by side)."""
    lean, aio_queue = aio_clients.LEAN_CALLS, aio_clients.AsyncClients.aio_queue
    aio_clients.LEAN_CALLS = "sdkops" not in VARIANTS[variant]
    if "sdkqueue" in VARIANTS[variant]:
        aio_clients.AsyncClients.aio_queue = _sdk_queue  # type: ignore[method-assign]
    try:
        service = build_service(settings_for(settings, variant), clock=clock)
    finally:
        aio_clients.LEAN_CALLS = lean
        aio_clients.AsyncClients.aio_queue = aio_queue  # type: ignore[method-assign]
    if "unpaced" in VARIANTS[variant]:
        service.pacing = None
    if "threads" in VARIANTS[variant]:
        service.side_by_side = on_threads
    return service


@contextmanager
def undone(variant: str) -> Iterator[None]:
    """While inside, the process-wide changes named by ``variant`` are reverted."""
    changes = VARIANTS[variant]
    http_logger = logging.getLogger(HTTP_LOGGER)
    level, reserve = http_logger.level, budget_table.RESERVE_TAKES
    cas_from_last_write = budget_table.CAS_FROM_LAST_WRITE
    decide_from_view = budget_table.DECIDE_FROM_VIEW
    reserve_only_above = budget_table.RESERVE_ONLY_ABOVE
    if "fullreserve" in changes:
        budget_table.RESERVE_ONLY_ABOVE = 0.0
    append_all: Any = TableHistoryStore.append_all
    wait_seconds: Any = TableTokenBucket.wait_seconds
    schedule: Any = QueueWorkScheduler.schedule
    schedule_many: Any = QueueWorkScheduler.schedule_many
    per_message = fanout.MAX_TARGETS_PER_MESSAGE
    if "onebyone" in changes:
        fanout.MAX_TARGETS_PER_MESSAGE = 1
    merge: Any = LeanSession.merge_environment_settings
    if "merge" in changes:
        LeanSession.merge_environment_settings = _generic_merge  # type: ignore[method-assign,assignment]
    get_secrets: Any = KeyVaultSecretStore.get_secrets
    if "guardreads" in changes:
        KeyVaultSecretStore.get_secrets = SecretStore.get_secrets  # type: ignore[method-assign]
    lean_send: Any = LeanPipeline.send
    if "restrequest" in changes:
        LeanPipeline.send = _rest_send  # type: ignore[method-assign,assignment]
    regenerate_budgets = [m.WRITES_PER_REGENERATE for m in _REGENERATE_BUDGET_READERS]
    regenerate_and_list = regenerate_step.regenerate_and_list
    if "listkeys" in changes:
        for module in _REGENERATE_BUDGET_READERS:
            module.WRITES_PER_REGENERATE = 2
        for caller in _REGENERATE_CALLERS:
            caller.regenerate_and_list = _regenerate_then_list
    if "requeue" in changes:
        TableTokenBucket.wait_seconds = _wait_for_the_next_token  # type: ignore[method-assign,assignment]
        QueueWorkScheduler.schedule = _send_every_time  # type: ignore[method-assign,assignment]
        QueueWorkScheduler.schedule_many = _send_each_every_time  # type: ignore[method-assign,assignment]
    if "logging" in changes:
        http_logger.setLevel(logging.INFO)
    if "reserve" in changes:
        budget_table.RESERVE_TAKES = 0
    if "history" in changes:
        TableHistoryStore.append_all = _one_request_per_row  # type: ignore[method-assign,assignment]
    if "carry" in changes:
        history_carry.CARRY_HISTORY = False
    if "transaction" in changes:
        TableHistoryStore.append_all = _one_transaction  # type: ignore[method-assign,assignment]
    if "casread" in changes:
        budget_table.CAS_FROM_LAST_WRITE = False
    if "refuseread" in changes:
        budget_table.DECIDE_FROM_VIEW = False
    try:
        yield
    finally:
        http_logger.setLevel(level)
        budget_table.RESERVE_TAKES = reserve
        budget_table.CAS_FROM_LAST_WRITE = cas_from_last_write
        budget_table.DECIDE_FROM_VIEW = decide_from_view
        budget_table.RESERVE_ONLY_ABOVE = reserve_only_above
        TableHistoryStore.append_all = append_all  # type: ignore[method-assign]
        history_carry.CARRY_HISTORY = True
        TableTokenBucket.wait_seconds = wait_seconds  # type: ignore[method-assign]
        QueueWorkScheduler.schedule = schedule  # type: ignore[method-assign]
        QueueWorkScheduler.schedule_many = schedule_many  # type: ignore[method-assign]
        fanout.MAX_TARGETS_PER_MESSAGE = per_message
        LeanSession.merge_environment_settings = merge  # type: ignore[method-assign]
        LeanPipeline.send = lean_send  # type: ignore[method-assign]
        KeyVaultSecretStore.get_secrets = get_secrets  # type: ignore[method-assign]
        for module, writes in zip(_REGENERATE_BUDGET_READERS, regenerate_budgets, strict=True):
            module.WRITES_PER_REGENERATE = writes
        for caller in _REGENERATE_CALLERS:
            caller.regenerate_and_list = regenerate_and_list
