"""What makes the benchmark process look like a Function instance to the code running in it, and the
measuring tools ``bench.cost_per_cycle`` needs: CPU pinning, CPU clocks, request counters.

- *Environment*: a Linux Functions host gives the worker ~100 environment variables (platform settings,
  identity, storage, the app settings themselves). Every ``requests`` call that reads proxy/``.netrc``/CA
  settings from the environment pays for their number and size, so the benchmark runs with a filler of
  realistic names and sizes next to the engine's real app settings (``ROTATION_TARGETS`` included: in
  Azure the target list *is* an environment variable). The names below are the host's documented ones
  (learn.microsoft.com "App settings reference for Azure Functions", "Environment variables and app
  settings in Azure App Service"); their value lengths are assumptions of typical sizes.
- *Logging*: the Python worker sets the root logger to INFO and installs one handler,
  ``azure_functions_worker.dispatcher.AsyncLoggingHandler``, whose ``emit`` formats the record and hands
  it to the dispatcher, which builds an ``RpcLog`` message for the host's gRPC stream. ``WorkerLikeHandler``
  does the same work: format, build the message, queue it.
"""

from __future__ import annotations

import http.client
import logging
import os
import resource
import secrets
import threading
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# Platform variables of a Linux Functions host (names as documented), with assumed typical value sizes.
HOST_VARIABLES: dict[str, int] = {
    "FUNCTIONS_EXTENSION_VERSION": 2,
    "FUNCTIONS_WORKER_RUNTIME": 6,
    "FUNCTIONS_WORKER_RUNTIME_VERSION": 4,
    "FUNCTIONS_WORKER_PROCESS_COUNT": 1,
    "PYTHON_THREADPOOL_THREAD_COUNT": 4,
    "PYTHON_ENABLE_WORKER_EXTENSIONS": 1,
    "PYTHON_ISOLATE_WORKER_DEPENDENCIES": 1,
    "APPLICATIONINSIGHTS_CONNECTION_STRING": 250,
    "APPINSIGHTS_INSTRUMENTATIONKEY": 36,
    "AzureWebJobsFeatureFlags": 30,
    "AzureWebJobsScriptRoot": 20,
    "AzureWebJobsSecretStorageType": 5,
    "AzureFunctionsJobHost__logging__logLevel__default": 11,
    "WEBSITE_SITE_NAME": 20,
    "WEBSITE_HOSTNAME": 40,
    "WEBSITE_INSTANCE_ID": 64,
    "WEBSITE_OWNER_NAME": 70,
    "WEBSITE_RESOURCE_GROUP": 20,
    "WEBSITE_SKU": 7,
    "WEBSITE_AUTH_ENABLED": 5,
    "WEBSITE_AUTH_ENCRYPTION_KEY": 64,
    "WEBSITE_AUTH_SIGNING_KEY": 64,
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING": 180,
    "WEBSITE_CONTENTSHARE": 30,
    "WEBSITE_RUN_FROM_PACKAGE": 1,
    "WEBSITE_MOUNT_ENABLED": 1,
    "WEBSITE_PLACEHOLDER_MODE": 1,
    "WEBSITE_HOME_STAMPNAME": 20,
    "WEBSITE_CURRENT_STAMPNAME": 20,
    "WEBSITE_ROLE_INSTANCE_ID": 1,
    "WEBSITE_USE_PLACEHOLDER_DOTNETISOLATED": 1,
    "WEBSITE_CORS_ALLOWED_ORIGINS": 30,
    "WEBSITE_CORS_SUPPORT_CREDENTIALS": 5,
    "WEBSITE_STACK": 6,
    "WEBSITE_ENABLE_SYNC_UPDATE_SITE": 4,
    "WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID": 150,
    "WEBSITE_SLOT_NAME": 10,
    "WEBSITE_DEPLOYMENT_ID": 20,
    "WEBSITE_AUTH_LOGOUT_PATH": 20,
    "WEBSITE_AUTH_AUTO_AAD": 5,
    "CONTAINER_NAME": 40,
    "CONTAINER_ENCRYPTION_KEY": 44,
    "CONTAINER_START_CONTEXT_SAS_URI": 300,
    "CONTAINER_IMAGE_URL": 60,
    "MSI_ENDPOINT": 40,
    "MSI_SECRET": 36,
    "ASPNETCORE_URLS": 20,
    "DOTNET_RUNNING_IN_CONTAINER": 4,
    "FUNCTIONS_LOGS_MOUNT_PATH": 30,
    "FUNCTIONS_WORKER_DIRECTORY": 40,
    "HOME": 9,
    "HOSTNAME": 12,
    "LANG": 11,
    "TERM": 5,
    "SHLVL": 1,
    "PWD": 20,
    "HOST_VERSION": 10,
    "LANGUAGEWORKERS_PYTHON_VERSION": 4,
    "REGION_NAME": 10,
    "ScmType": 4,
    "SSH_PORT": 4,
    "WEBSITE_INFRASTRUCTURE_IP": 15,
    "WEBSITE_PRIVATE_IP": 15,
    "WEBSITE_PRIVATE_PORTS": 12,
    "WEBSITE_VNET_ROUTE_ALL": 1,
    "COMPUTERNAME": 15,
    "LD_LIBRARY_PATH": 60,
    "PYTHONHOME": 20,
    "APPSVC_RUN_ZIP": 5,
    "ENABLE_ORYX_BUILD": 5,
    "SCM_DO_BUILD_DURING_DEPLOYMENT": 5,
    "XDG_CACHE_HOME": 20,
    "AZURE_FUNCTIONS_ENVIRONMENT": 10,
    "FUNCTIONS_RUNTIME_SCALE_MONITORING_ENABLED": 1,
    "WEBSITE_TIME_ZONE": 3,
}
TARGET_VARIABLE_COUNT = 100


def function_environment(app_settings: Mapping[str, str]) -> dict[str, str]:
    """The app settings plus host variables (random values of the assumed sizes), about 100 in all;
    the process's own PATH and Python variables are kept so child processes still start."""
    kept = {k: v for k, v in os.environ.items() if k in ("PATH", "VIRTUAL_ENV", "PYTHONPATH", "TMPDIR")}
    env = {**kept, **dict(app_settings)}
    for name, size in HOST_VARIABLES.items():
        if len(env) >= TARGET_VARIABLE_COUNT:
            break
        env.setdefault(name, secrets.token_urlsafe(size)[:size] if size > 1 else "1")
    # App Service also exposes each app setting as APPSETTING_{name}; copy the short ones up to ~100.
    for name, value in list(app_settings.items()):
        if len(env) >= TARGET_VARIABLE_COUNT:
            break
        if len(value) < 1024:
            env[f"APPSETTING_{name}"] = value
    return env


@contextmanager
def process_environment(env: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class WorkerLikeHandler(logging.Handler):
    """The Functions Python worker's handler: format each record, wrap it as the host's log message and
    queue it for the gRPC stream (here a bounded deque nobody reads)."""

    def __init__(self) -> None:
        super().__init__()
        self.outbox: deque[dict[str, Any]] = deque(maxlen=10_000)
        self.records = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = self.format(record)
        self.records += 1
        self.outbox.append(
            {
                "invocation_id": getattr(record, "invocation_id", ""),
                "category": record.name,
                "level": record.levelname,
                "message": message,
                "exception": None,
                "log_category": "User",
            }
        )


@contextmanager
def worker_logging() -> Iterator[WorkerLikeHandler]:
    """Root logger at INFO with only the worker-like handler, as in a Function; restored afterwards."""
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    handler = WorkerLikeHandler()
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.handlers = saved_handlers
        root.setLevel(saved_level)


# -- CPU ---------------------------------------------------------------------------------------------


def own_cpu_seconds() -> float:
    """User + system CPU of this whole process (every thread), from getrusage."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (Azurite runs node under a launcher script)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def pin(pids: Iterable[int], cores: set[int]) -> None:
    """What ``taskset -a -p`` does: every thread of each process onto ``cores`` (threads made later
    inherit it from the thread that makes them)."""
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                os.sched_setaffinity(int(task.name), cores)
            except (OSError, ValueError):
                continue  # a thread that ended meanwhile


@contextmanager
def pinned_here(cores: set[int]) -> Iterator[bool]:
    """Pin this process to ``cores`` while inside (when the machine has two cores or more), then give it
    back the cores it had: a benchmark run from the test suite must not leave pytest on one core."""
    if not can_pin():
        yield False
        return
    before = os.sched_getaffinity(0)
    pin([os.getpid()], cores)
    try:
        yield True
    finally:
        pin([os.getpid()], before)


def can_pin() -> bool:
    return hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2


# -- requests per destination --------------------------------------------------------------------------


SERIALIZER_HOST = "fakehost"  # azure.core.pipeline.transport._base._HTTPSerializer


class RequestCounter:
    """Counts HTTP requests this process sends, per port (Table Storage is Azurite's table port). Wraps
    ``http.client.HTTPConnection.putrequest``, under requests/urllib3 and every azure-core transport
    built on them (one Counter increment per request), and aiohttp's ``ClientSession._request``: there it
    only notes the method and URL, parsed when the counts are read — parsing each URL as it was sent cost
    the engine's process ~10 µs per request (urlsplit), a cost a deployed Function does not pay."""

    def __init__(self) -> None:
        self._counts: Counter[int] = Counter()
        self._by_path: Counter[tuple[int, str, str]] = Counter()  # (port, method, first name in the path)
        self._sent: list[tuple[str, Any]] = []  # aiohttp's (method, url), not counted yet
        self._lock = threading.Lock()
        self._original = http.client.HTTPConnection.putrequest
        self._original_aio: Any = None

    def __enter__(self) -> RequestCounter:
        original, counts, lock = self._original, self._counts, self._lock

        def putrequest(connection: http.client.HTTPConnection, *args: Any, **kwargs: Any) -> Any:
            # azure-core serializes the parts of a Table batch through an HTTPConnection subclass
            # writing to memory (host "fakehost"): those are not requests on the wire.
            if connection.host != SERIALIZER_HOST:
                with lock:
                    counts[connection.port or 0] += 1
            return original(connection, *args, **kwargs)

        http.client.HTTPConnection.putrequest = putrequest  # type: ignore[method-assign,assignment]
        # The asynchronous I/O path (ROTATION_ASYNC_IO) sends through aiohttp, not http.client.
        import aiohttp

        original_request = self._original_aio = aiohttp.ClientSession._request

        sent = self._sent

        async def request(session: aiohttp.ClientSession, method: str, url: Any, **kwargs: Any) -> Any:
            sent.append((method, url))  # one list append (atomic): parsed in _fold
            return await original_request(session, method, url, **kwargs)

        aiohttp.ClientSession._request = request  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        import aiohttp

        http.client.HTTPConnection.putrequest = self._original  # type: ignore[method-assign]
        aiohttp.ClientSession._request = self._original_aio  # type: ignore[method-assign]

    @property
    def counts(self) -> Counter[int]:
        self._fold()
        return self._counts

    @property
    def by_path(self) -> Counter[tuple[int, str, str]]:
        self._fold()
        return self._by_path

    def _fold(self) -> None:
        """Counts the aiohttp requests noted since the last read (read between rounds, nothing in flight)."""
        with self._lock:
            noted = self._sent[:]
            del self._sent[: len(noted)]  # what was noted meanwhile stays for the next read
            for method, url in noted:
                parts = urlsplit(str(url))
                # Azurite's paths name the account, then the table: /devstoreaccount1/state(PartitionKey=…)
                names = [p for p in parts.path.split("/") if p]
                name = names[1 if len(names) > 1 and names[0].startswith("devstore") else 0] if names else ""
                self._counts[parts.port or 0] += 1
                self._by_path[(parts.port or 0, method, name.split("(")[0])] += 1

    def clear(self) -> None:
        with self._lock:
            self._sent.clear()
            self._counts.clear()
            self._by_path.clear()

