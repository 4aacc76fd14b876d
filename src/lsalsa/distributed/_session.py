"""Which Dask cluster a job runs on, and the cluster a command line asked for.

Importing this module needs neither dask nor zarr: the experiment runner asks
:func:`active_cluster` whether ``lsalsa codes ... --scheduler/--workers`` set one up, and only
then is the ``distributed`` extra imported.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from .._validation import check_positive_int
from ..errors import LsalsaError

CONNECT_TIMEOUT_S = 10.0
DEFAULT_CHUNK_ROWS = 16384  # four of optimal_codes' default batches of 4096 rows


def require_extra() -> None:
    """Raise :class:`LsalsaError` when dask.distributed or zarr is not installed."""
    try:
        import dask.array  # noqa: F401
        import distributed  # noqa: F401
        import zarr  # noqa: F401
    except ImportError as exc:
        raise LsalsaError(f"lsalsa.distributed needs dask[distributed] and zarr ({exc}); "
                          "install them: pip install 'lsalsa[distributed]'") from None


@dataclass(frozen=True)
class Cluster:
    """A connected Dask client and the rows per task that jobs on it use."""

    client: Any
    chunk_rows: int

    def describe(self) -> str:
        """One line: how many workers, where."""
        threads = self.client.nthreads()
        return (f"a Dask cluster at {self.client.scheduler.address} ({len(threads)} workers, "
                f"{sum(threads.values())} threads)")


_ACTIVE: ContextVar[Cluster | None] = ContextVar("lsalsa_dask_cluster", default=None)


def active_cluster() -> Cluster | None:
    """The cluster :func:`use_cluster` set up for this context, or None (run in process)."""
    return _ACTIVE.get()


def connect(scheduler: str, *, timeout: float | None = None) -> Any:
    """A ``distributed.Client`` of the scheduler at ``scheduler`` (``tcp://host:port``);
    :class:`LsalsaError` naming the address when it cannot be reached within ``timeout`` s
    (default :data:`CONNECT_TIMEOUT_S`)."""
    require_extra()
    from distributed import Client

    if not isinstance(scheduler, str) or not scheduler:
        raise LsalsaError(f"scheduler: expected an address such as tcp://host:8786, got {scheduler!r}")
    try:
        return Client(scheduler, timeout=CONNECT_TIMEOUT_S if timeout is None else timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise LsalsaError(f"scheduler: cannot reach the Dask scheduler at {scheduler} ({why})") from None


def checked_client(client: Any) -> Any:
    """``client`` if it is a connected ``distributed.Client``, else :class:`LsalsaError`."""
    require_extra()
    from distributed import Client

    if not isinstance(client, Client):
        raise LsalsaError(f"client: expected a distributed.Client, got {type(client).__name__}; "
                          "connect one with lsalsa.distributed.connect(address)")
    if client.status != "running":
        raise LsalsaError(f"client: the Dask client is {client.status}, not running; connect a new one")
    return client


@contextmanager
def use_cluster(*, scheduler: str | None = None, workers: int | None = None,
                chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[Cluster]:
    """Run the jobs of this context on Dask: the scheduler at ``scheduler``, or a
    ``LocalCluster`` of ``workers`` processes of one thread each (exactly one of the two).
    The client (and a local cluster) is closed on exit."""
    if (scheduler is None) == (workers is None):
        raise LsalsaError("give either a scheduler address or a number of local workers, not both or neither")
    chunk_rows = check_positive_int(chunk_rows, "chunk_rows")
    if scheduler is not None:
        client, cluster = connect(scheduler), None
    else:
        require_extra()
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=check_positive_int(workers, "workers"), threads_per_worker=1,
                               processes=True, dashboard_address=":0")
        client = Client(cluster)
    token = _ACTIVE.set(Cluster(client, chunk_rows))
    try:
        yield _ACTIVE.get()
    finally:
        _ACTIVE.reset(token)
        client.close()
        if cluster is not None:
            cluster.close()


@contextmanager
def client_of(client: Any) -> Iterator[Any]:
    """The ``distributed.Client`` a job runs on: ``client`` itself (checked), or, for an address
    string, a client connected for the job and closed after it."""
    if isinstance(client, str):
        connected = connect(client)
        try:
            yield connected
        finally:
            connected.close()
    else:
        yield checked_client(client)
