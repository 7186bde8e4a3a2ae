"""The Ray executor: the same task function as the local executors, run as Ray tasks on a
cluster (``address``: ``auto``, ``ray://host:port`` or ``host:port``) or on a local Ray
instance started for the command and stopped after it.

Each task asks for ``ray.cpus_per_task`` CPUs (and ``ray.memory_gb_per_task``); a task whose
worker dies is retried (``ray.max_retries``). At most twice the cluster's CPUs of tasks are
in flight, so a kill of the driver loses little. Results come back as they finish; the
caller writes what only it may write (a cache's manifest, the log's outputs). Each Ray
worker of the job is set up as a local pool worker is (``SET_UP``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from ictal.errors import ExitCode, IctalError, UsageError
from ictal.machine import own_process, usable_cpus
from ictal.parallel.executors import SINGLE_THREAD_ENV, WorkerDied

T = TypeVar("T")
R = TypeVar("R")


# Ray's worker_process_setup_hook, by name (each worker imports it itself before its first
# task): the settings of every process Ictal owns, as a local pool worker takes them (its
# threads come from SINGLE_THREAD_ENV, set as the job's).
SET_UP = f"{own_process.__module__}.{own_process.__name__}"

RAY_MISSING = "--executor ray needs Ray, an optional extra: pip install 'ictal[ray]'"


class RayUnreachable(IctalError):
    """The Ray cluster named by ``--address`` / ``ray.address`` cannot be joined (exit 3)."""

    exit_code = ExitCode.PREFLIGHT


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise UsageError(RAY_MISSING) from exc
    return ray


JOIN_ATTEMPTS = 5  # Ray's attempts (about 5 s each) to reach a cluster that answered a connect


def _has_token() -> bool:
    """A Ray authentication token is available to this driver (env or ~/.ray/auth_token)."""
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return True
    return os.path.isfile(os.path.join(os.path.expanduser("~"), ".ray", "auth_token"))


def _reachable(address: str) -> None:
    """Refuse at once an address that is malformed or where nothing listens."""
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(
            f"--address / ray.address {address!r} is not auto, host:port or ray://host:port"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5.0).close()
    except OSError as exc:
        raise RayUnreachable(
            f"cannot join the Ray cluster at {address}: nothing answers there "
            f"({exc.strerror or exc})"
            "\n  fix: start it (`ray start --head`) or correct --address / ray.address; leave "
            "it out to start a local Ray instance"
        ) from exc


class RayExecutor:
    """Runs ``fn`` over items as Ray tasks and yields their results as they finish."""

    def __init__(
        self,
        workers: int | None,
        address: str | None = None,
        *,
        cpus_per_task: float = 1.0,
        memory_gb_per_task: float | None = None,
        max_retries: int = 3,
    ) -> None:
        if address:  # before Ray is imported: it reads these then
            if address != "auto":
                _reachable(address)  # Ray itself retries a dead address for minutes
            os.environ.setdefault("RAY_gcs_server_port_wait_time_s", str(JOIN_ATTEMPTS))
            if "RAY_AUTH_MODE" not in os.environ and _has_token():
                os.environ["RAY_AUTH_MODE"] = "token"  # joining does not look for it by itself
        self.ray = _ray()
        self.address = address
        self.local_cpus = workers or usable_cpus()
        self.options: dict[str, Any] = {"num_cpus": cpus_per_task, "max_retries": max_retries}
        if memory_gb_per_task:
            self.options["memory"] = int(memory_gb_per_task * 2**30)
        self.started = False
        self._connect()
        self.workers = max(1, int(self.ray.cluster_resources().get("CPU", 1) // cpus_per_task))

    def _connect(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        env = {"env_vars": dict(SINGLE_THREAD_ENV), "worker_process_setup_hook": SET_UP}
        try:
            if self.address:
                ray.init(address=self.address, runtime_env=env, log_to_driver=False,
                         configure_logging=False)  # fmt: skip
            else:
                ray.init(num_cpus=self.local_cpus, include_dashboard=False, runtime_env=env,
                         log_to_driver=False, configure_logging=False)  # fmt: skip
        except ConnectionError as exc:
            raise RayUnreachable(
                f"cannot join the Ray cluster at {self.address}: {exc}\n  fix: check "
                "--address / ray.address (auto, host:port, ray://host:port); a cluster with "
                "token authentication needs its token here (RAY_AUTH_TOKEN or "
                "~/.ray/auth_token); or leave the address out to start a local Ray instance"
            ) from exc
        self.started = True

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        ray = self.ray
        remote = ray.remote(**self.options)(fn)
        limit = 2 * self.workers
        pending: list[Any] = []
        try:
            for item in items:
                pending.append(remote.remote(item))
                if len(pending) >= limit:
                    done, pending = ray.wait(pending, num_returns=1)
                    yield from (self._get(ref) for ref in done)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                yield from (self._get(ref) for ref in done)
        finally:
            for ref in pending:  # stopped early (an error, a signal): nothing keeps running
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # already finished or gone
                    continue
            if self.started:
                ray.shutdown()
                self.started = False

    def _get(self, ref: Any) -> Any:
        from ray.exceptions import RayTaskError, WorkerCrashedError

        try:
            return self.ray.get(ref)
        except WorkerCrashedError as exc:
            tries = self.options["max_retries"] + 1
            raise WorkerDied(
                f"a Ray worker died {'once' if tries == 1 else f'{tries} times'} on one task "
                "(killed, out of memory, or it could not start: its set-up imports ictal, "
                f"{SET_UP}); everything finished before is kept\n  fix: run the same "
                "command again (it resumes); raise ray.memory_gb_per_task or give the "
                "cluster more memory; install this ictal on every node of the cluster "
                "(`python -c 'import ictal'` there)"
            ) from exc
        except RayTaskError as exc:
            if isinstance(exc.cause, IctalError):  # said in one line, as a local worker's
                raise exc.cause from None
            raise exc.as_instanceof_cause() from None
