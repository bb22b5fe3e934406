#!/usr/bin/env bash
# tvcore's GPU bench on a machine without network access: installs the wheels
# carried in $TVCORE_WHEELS (default: .whl in the checkout) into a private folder,
# then runs bench/gpu/run.py (under 8 minutes on one H100 or H200).
#
# The wheels tvcore needs beyond a CUDA PyTorch image (torch, torchvision, timm,
# numpy, scipy, scikit-learn, pandas, matplotlib, safetensors, tabulate, tqdm),
# fetched once on a machine with PyPI access, from the checkout's root:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d .whl open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4
# Extra arguments go to run.py (--budget-s, --out).
set -euo pipefail
cd "$(dirname "$0")/../.."
wheels="${TVCORE_WHEELS:-.whl}"
site="${TVCORE_SITE:-/tmp/tvcore-site}"
if ! python3 -c "import open_clip" 2>/dev/null; then
    if ! ls "$wheels"/*.whl >/dev/null 2>&1; then
        echo "bench/gpu/run.sh: open_clip is missing and no wheels are in $wheels; set TVCORE_WHEELS to the folder" \
             "that holds them (see the header of this script)" >&2
        exit 2
    fi
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$wheels"/*.whl
    export PYTHONPATH="$site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
# Bytecode: an image whose site-packages hold no bytecode and cannot be written (or
# that sets PYTHONDONTWRITEBYTECODE) compiles every module of torch again in every
# process, 6 s a process on the lent H200; a pip install writes it once. The bench's
# processes write it once to a private folder instead; the JSON records what the image
# had ("python" in the end-to-end section). TVCORE_BYTECODE=image measures the image as is.
if [ "${TVCORE_BYTECODE:-private}" != image ]; then
    export TVCORE_IMAGE_DONTWRITEBYTECODE="${PYTHONDONTWRITEBYTECODE:-unset}"
    unset PYTHONDONTWRITEBYTECODE
    export PYTHONPYCACHEPREFIX="${PYTHONPYCACHEPREFIX:-/tmp/tvcore-pycache}"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
exec timeout 500 python3 bench/gpu/run.py "$@"
