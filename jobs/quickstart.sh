#!/usr/bin/env bash
# Quickstart: set up .venv, fetch Fashion-MNIST if possible, train softmax regression on
# 4 MPI ranks over hpctrain's own ring AllReduce and print the test accuracy.
#   NP=4 (ranks)   extra arguments are passed to `hpctrain train`
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$HPCTRAIN_ROOT"

dataset=fashion-mnist
if ! python -c 'import sys; from hpctrain.data import find_fashion_mnist; sys.exit(find_fashion_mnist() is None)'; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "hpctrain: installing Fashion-MNIST (Debian package dataset-fashion-mnist)" >&2
    apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
      || { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null; } || true
  fi
  if ! python -c 'import sys; from hpctrain.data import find_fashion_mnist; sys.exit(find_fashion_mnist() is None)'; then
    echo "hpctrain: Fashion-MNIST is not available (needs root and apt-get, or HPCTRAIN_DATA=DIR);" \
         "training on the synthetic data set instead" >&2
    dataset=synthetic
  fi
fi

exec mpiexec -n "${NP:-4}" hpctrain train --dataset "$dataset" --collective ring \
  --epochs 10 --batch-size 128 --lr 0.05 --momentum 0.9 --weight-decay 1e-4 \
  --out runs/quickstart --overwrite "$@"
