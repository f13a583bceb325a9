#!/usr/bin/env bash
# Set up .venv with the test extras and run the whole test suite (it launches real
# `mpiexec -n N` jobs). Extra arguments go to pytest. Fails if no test ran.
set -euo pipefail
HPCTRAIN_EXTRAS=${HPCTRAIN_EXTRAS:-mpich,test,plot,kernels,jit}
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$HPCTRAIN_ROOT"
# PyTorch (CPU build) for the torch: model adapter's tests; optional for users. The pinned
# version is a CPU build on the registries here (a plain `torch` pulls the CUDA stack).
python -c 'import torch' 2>/dev/null || python -m pip install -q --disable-pip-version-check torch==2.13.0
set +e
python -m pytest "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
  echo "hpctrain: pytest collected no tests" >&2
  exit 1
fi
exit $rc
