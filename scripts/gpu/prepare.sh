#!/usr/bin/env bash
# Run HERE (the CPU machine, which reaches PyPI) before a device-machine run: fetches what the GPU machine cannot
# download into the git-ignored folder .gpu/ (~31 MB), which the run carries:
#   .gpu/difflogic-0.1.0.tar.gz   difflogic's sdist (patched and built for the GPU by check.sh)
#   .gpu/wheels/                  torchlogix (pure Python, needs Python >= 3.12, which the GPU machine has)
#   .gpu/data/                    the Fashion-MNIST IDX files (apt-get install dataset-fashion-mnist)
# Then, with the device tool:  run(command="bash scripts/gpu/check.sh", carry=[".gpu"], timeout_s=590)
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .gpu/wheels .gpu/data
# difflogic's sdist, fetched by name through pip (its configured index). pip reads an sdist's metadata by running
# its setup.py, which builds a CUDAExtension and fails without CUDA; a throwaway stub of torch.utils.cpp_extension
# lets that metadata step pass (nothing is compiled here; check.sh builds the real extension on the GPU machine).
if [ ! -f .gpu/difflogic-0.1.0.tar.gz ]; then
  STUB=$(mktemp -d)
  trap 'rm -rf "$STUB"' EXIT
  mkdir -p "$STUB/torch/utils"
  touch "$STUB/torch/__init__.py" "$STUB/torch/utils/__init__.py"
  printf '%s\n' 'from setuptools import Extension' \
    'from setuptools.command.build_ext import build_ext as BuildExtension' \
    'def CUDAExtension(name, sources, *args, **kwargs): return Extension(name, sources)' \
    > "$STUB/torch/utils/cpp_extension.py"
  PYTHONPATH="$STUB" python3 -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d .gpu \
      difflogic==0.1.0
fi
echo "979ce845a494bdf8ebeeb94d61f3bbf1ae018257ee5b048f936567b53fc115a1  .gpu/difflogic-0.1.0.tar.gz" | sha256sum -c -
ls .gpu/wheels/torchlogix-*.whl >/dev/null 2>&1 || python3 -m pip download -q --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp --platform manylinux2014_x86_64 -d .gpu/wheels torchlogix==0.2.2
FM=/usr/share/datasets/fashion-mnist
[ -d "$FM" ] || { echo "missing $FM: apt-get install dataset-fashion-mnist" >&2; exit 1; }
cp -u "$FM"/*.gz .gpu/data/
du -sh .gpu
