"""Codes, encoding and whole-picture separation on a Dask cluster (``pip install "lsalsa[distributed]"``).

- :func:`optimal_codes` ``(problem, Y, *, client, chunk_rows, out=None, ...)``: the optimal
  codes of :func:`lsalsa.optimal_codes`, one task per ``chunk_rows`` rows;
- :func:`encode` ``(model, Y, *, client, chunk_rows, out=None)``: a trained encoder's codes;
- :func:`separate_images` ``(model, paths, out_dir, *, client)``: one task per picture;
- :func:`cached_codes`: :func:`lsalsa.optimal_codes`'s cache entry, computed on Dask (what
  ``lsalsa codes CONFIG --scheduler ADDRESS`` / ``--workers K`` runs);
- :func:`connect`, :func:`use_cluster`, :func:`active_cluster`: the client a job runs on.

``Y`` is a dask array, a zarr array or its path, a ``.npy`` path, or an array in memory. The
problem or model is sent to every worker once (a future every task takes); each task reads its own rows; outputs
go chunk by chunk into a zarr array with a completion marker per chunk, so that a job run again
after an interruption (or after a worker died) computes only the chunks not yet written
(:mod:`lsalsa.distributed._chunks`). The cluster is dask.distributed's: a ``LocalCluster``, a
scheduler started by hand, or one from dask-jobqueue.

Importing this package needs neither dask nor zarr (they are imported when a job runs), so
that the experiment runner can ask :func:`active_cluster` without the extra installed.
"""
from ._codes import cached_codes, optimal_codes
from ._jobs import encode, separate_images
from ._session import active_cluster, connect, use_cluster

__all__ = ["optimal_codes", "cached_codes", "encode", "separate_images", "connect", "use_cluster", "active_cluster"]
