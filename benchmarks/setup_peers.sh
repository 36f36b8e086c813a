#!/usr/bin/env bash
# Builds the peers' environment for the throughput benchmark: learn2learn 0.2.0, higher 0.2.1 and
# TorchOpt 0.7.3 beside the same torch 2.13.0 CPU wheel as ours, every package with --no-deps so
# that pip never swaps torch for a CUDA build.
#   bash benchmarks/setup_peers.sh [VENV]   (default /work/peers-venv, what peers.py expects)
set -euo pipefail
VENV="${1:-/work/peers-venv}"
python3 -m venv "$VENV"
PIP=("$VENV/bin/pip" install -q)
"${PIP[@]}" torch==2.13.0
"${PIP[@]}" numpy optree typing-extensions tqdm requests Cython setuptools wheel
"${PIP[@]}" --no-deps higher==0.2.1 torchopt==0.7.3 gym==0.26.2 cloudpickle gym-notices \
    scipy pillow graphviz

# learn2learn's sdist ships C files made by Cython 0.29 that do not compile for Python 3.11:
# regenerate them with Cython 3, then build without isolation (against the torch above).
work="$(mktemp -d)"
"$VENV/bin/pip" download -q --no-deps --no-binary :all: -d "$work" learn2learn==0.2.0
tar xzf "$work"/learn2learn-0.2.0.tar.gz -C "$work"
for module in meta_dataset task_dataset transforms; do
    "$VENV/bin/cython" -3 "$work/learn2learn-0.2.0/learn2learn/data/$module.pyx" \
        -o "$work/learn2learn-0.2.0/learn2learn/data/$module.c"
done
"${PIP[@]}" --no-deps --no-build-isolation "$work/learn2learn-0.2.0"

# learn2learn imports torchvision at import time; PyPI's torchvision does not import beside this
# torch, and the benchmark never calls it, so an inert stand-in takes its place.
site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
mkdir -p "$site/torchvision"
cp "$(dirname "$0")/torchvision_stub.py" "$site/torchvision/__init__.py"
"$VENV/bin/python" -c "import learn2learn, higher, torchopt; print('peers ready:', learn2learn.__version__, torchopt.__version__)"
