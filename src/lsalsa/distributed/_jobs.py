"""A trained encoder's codes, and whole-picture separation, on a Dask cluster."""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._validation import check_positive_int
from ..errors import LsalsaError
from . import _chunks
from ._session import client_of, require_extra

DONE = "lsalsa_done.json"


def _encode_chunk(model: torch.nn.Module, Y: np.ndarray, settings: dict) -> tuple[np.ndarray, dict]:
    """Codes ``X: (B, N)`` of one chunk ``Y: (B, M)`` by ``model.encode``."""
    return model.encode(torch.from_numpy(Y)).cpu().numpy(), {}


def _state_sha256(model: torch.nn.Module) -> str:
    h = hashlib.sha256(type(model).__qualname__.encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def encode(model: torch.nn.Module, Y: Any, *, client: Any, chunk_rows: int, out: Any = None,
           progress: bool = False) -> Any:
    """A trained encoder's codes of every row of ``Y`` (``model.encode``) on a Dask cluster, one
    task per ``chunk_rows`` rows; the encoder is sent to every worker once.

    Parameters
    ----------
    model : an :class:`lsalsa.encoders.UnrolledEncoder` (LSALSA, LISTA) on the CPU.
    Y : (n, M) signals of the encoder's dtype: a dask array, a zarr array (or its path), a
        ``.npy`` path, or a numpy array / tensor in this process's memory.
    client : a ``distributed.Client``, or a scheduler address (connected for this call).
    chunk_rows : rows per task (and per zarr chunk of ``out``).
    out : None (the codes come back as one numpy array), or the path of a zarr array written
        chunk by chunk with completion markers, as in :func:`lsalsa.distributed.optimal_codes`.
    progress : show Dask's progress bar over the chunks.

    Returns
    -------
    X : (n, N) numpy array, or the zarr array ``out`` (read-only).
    """
    require_extra()
    from ..encoders._base import UnrolledEncoder

    if not isinstance(model, UnrolledEncoder):
        raise LsalsaError(f"model: expected a trained encoder (LSALSA, LISTA), got {type(model).__name__}")
    chunk_rows = check_positive_int(chunk_rows, "chunk_rows")
    dtype = torch.empty(0, dtype=model.W_e.dtype).numpy().dtype
    rows, source = _chunks.as_rows(Y, model.n_features, dtype)
    shape = (rows.n, model.n_atoms)
    inputs = {"job": "encode", "encoder": type(model).__name__, "state_sha256": _state_sha256(model), "n": rows.n,
              "n_features": model.n_features, "n_atoms": model.n_atoms, "dtype": str(dtype)}
    path = None if out is None else _chunks.open_out(out, shape, dtype, chunk_rows, inputs)
    job = _chunks.Job(_encode_chunk, {}, rows, chunk_rows, None if path is None else str(path),
                      _chunks.key_of(inputs))
    with client_of(client) as c:
        records = _chunks.run(c, job, source, model.eval(), progress=progress, name="encode")
    if path is None:
        return np.concatenate([r["X"] for r in records])
    import zarr

    return zarr.open_array(str(path), mode="r")


def _separate_one(model: Any, picture: str, out: str, stride: int | None, batch_size: int, key: str) -> dict:
    """The task of one picture on a worker: separated and written to ``out`` with its marker,
    unless the marker says this picture was separated by this model there already."""
    from ..files import read_json, write_json
    from ..separation import read_image, save_separation, separate_image

    digest = hashlib.sha256(Path(picture).read_bytes()).hexdigest()
    marker = Path(out) / DONE
    if marker.is_file():
        try:
            done = read_json(marker)
        except LsalsaError:
            done = None
        if isinstance(done, dict) and done.get("key") == key and done.get("picture_sha256") == digest:
            return done | {"computed": False}
    t0 = time.perf_counter()
    sep = separate_image(read_image(picture), model, stride=stride, batch_size=batch_size)
    paths = save_separation(sep, out, title=f"{Path(picture).name}: {model.method}")
    record = {"picture": picture, "out": out, "key": key, "picture_sha256": digest, "time_s": time.perf_counter() - t0,
              "pid": os.getpid(), "clipped": paths.pop("clipped"), "files": {k: str(v) for k, v in paths.items()}}
    write_json(marker, record)
    return record | {"computed": True}


def separate_images(model: Any, paths: list[str | os.PathLike], out_dir: str | os.PathLike, *, client: Any,
                    stride: int | None = None, batch_size: int | None = None, progress: bool = False) -> list[dict]:
    """Separate whole pictures into their sources (:func:`lsalsa.separate_image`) on a Dask
    cluster, one task per picture; the model is sent to every worker once.

    Each picture's sources and figure go to ``<out_dir>/<picture stem>/``
    (:func:`lsalsa.save_separation`) with a marker written last, so running the same call again
    separates only the pictures not yet done (or changed since).

    Parameters
    ----------
    model : a :class:`lsalsa.SeparationModel`, or the path of a model file (checked on load).
    paths : the picture files (on storage every worker reads), with distinct file stems.
    out_dir : where the per-picture directories go.
    client : a ``distributed.Client``, or a scheduler address (connected for this call).
    stride, batch_size : as in :func:`lsalsa.separate_image`.
    progress : show Dask's progress bar over the pictures.

    Returns
    -------
    One record per picture, in order: ``picture``, ``out``, ``files`` (written paths by
    name), ``clipped``, ``time_s``, ``computed`` (False when it was done already).
    """
    require_extra()
    from ..bundle import SeparationModel, load_model
    from ..separation import DEFAULT_BATCH

    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    elif not isinstance(model, SeparationModel):
        raise LsalsaError(f"model: expected a SeparationModel or a model file, got {type(model).__name__}")
    if stride is not None:
        stride = check_positive_int(stride, "stride")
    batch_size = check_positive_int(DEFAULT_BATCH if batch_size is None else batch_size, "batch_size")
    pictures = [Path(p).expanduser().resolve() for p in paths]
    if not pictures:
        raise LsalsaError("paths: no pictures given")
    missing = [str(p) for p in pictures if not p.is_file()]
    if missing:
        raise LsalsaError(f"paths: no such picture file: {missing[0]}" + (f" (and {len(missing) - 1} more)"
                                                                           if len(missing) > 1 else ""))
    stems = [p.stem for p in pictures]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise LsalsaError(f"paths: pictures with the same name would share an output directory: {', '.join(twice)}")
    key = _model_key(model, stride, batch_size)
    out_dir = Path(out_dir).expanduser().resolve()
    with client_of(client) as c:
        from distributed import progress as dask_progress

        shared = _chunks.share(c, model, f"separate-{key[:8]}")
        futures = [c.submit(_separate_one, shared, str(p), str(out_dir / p.stem), stride, batch_size, key,
                            key=f"separate-{key[:8]}-{i}", pure=False) for i, p in enumerate(pictures)]
        try:
            if progress:
                dask_progress(futures)
            return c.gather(futures)
        finally:
            c.cancel(futures + [shared])


def _model_key(model: Any, stride: int | None, batch_size: int) -> str:
    h = hashlib.sha256(np.ascontiguousarray(model.problem.A.detach().cpu().numpy()).tobytes())
    h.update(repr((model.method, model.patch_size, model.input_scale, model.names, model.n_iter, model.mu,
                   model.problem.alphas.tolist(), stride, batch_size)).encode())
    if model.encoder is not None:
        h.update(_state_sha256(model.encoder).encode())
    return h.hexdigest()[:16]
