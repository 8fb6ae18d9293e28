# The one image every Kubeflow step runs in: the official PyTorch CUDA runtime image + this package,
# `mol` as entry point.
#
#   docker build -t REGISTRY/mol-pipeline:TAG .
#   docker run --rm --gpus all REGISTRY/mol-pipeline:TAG train --help
#
# Base: PyTorch's own CUDA runtime image for the torch version requirements.lock pins (2.13.0, built for
# CUDA 13.0 and cuDNN 9, like PyPI's Linux wheel of that version). Its torch satisfies the lock's pin, so
# pip installs only the rest; the GPU driver comes from the host (NVIDIA container toolkit / device
# plugin). Bump the tag together with the pin: tests/test_docker.py checks that they agree.
ARG BASE_IMAGE=pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    MPLBACKEND=Agg

# libgomp1: the OpenMP runtime dlib and OpenCV use (usually present already; cheap to make sure).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/mol

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml or the lock changes,
# not on every source edit. The runtime dependency list is read from pyproject.toml (no dev tools).
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > runtime-requirements.txt \
    && pip install -c requirements.lock -r runtime-requirements.txt \
    && rm runtime-requirements.txt

# Then the source; --no-deps: everything it needs is already installed above.
COPY README.md ./
COPY mol_model ./mol_model
COPY components ./components
COPY pipeline ./pipeline
COPY benchmarks ./benchmarks
RUN pip install --no-deps . && rm -rf build *.egg-info

# Run as an unprivileged user, with a uid no Ubuntu base has taken (24.04 images own 1000);
# /work is where `docker run -v ...:/work` puts a project or data folder.
RUN useradd --create-home --uid 10001 mol && mkdir -p /work && chown mol:mol /work
USER 10001
WORKDIR /work

ENTRYPOINT ["mol"]
CMD ["--help"]
