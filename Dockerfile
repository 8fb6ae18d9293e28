# The one image every Kubeflow step runs in: Python 3.11 + CUDA PyTorch + this package, `mol` as entry point.
#
#   docker build -t REGISTRY/mol-pipeline:TAG .
#   docker run --rm --gpus all REGISTRY/mol-pipeline:TAG train --help
#
# Base: the official Python image. PyPI's Linux torch wheel (pinned to 2.13.0 by requirements.lock) carries
# its own CUDA runtime and cuDNN as nvidia-* wheels, so a CUDA base image would only add a second copy of
# them; the GPU driver comes from the host through the NVIDIA container toolkit / device plugin.
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    MPLBACKEND=Agg

# libgomp1: OpenMP runtime used by OpenCV and dlib.
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

# Run as an unprivileged user; /work is where `docker run -v ...:/work` puts a project or data folder.
RUN useradd --create-home --uid 1000 mol && mkdir -p /work && chown mol:mol /work
USER 1000
WORKDIR /work

ENTRYPOINT ["mol"]
CMD ["--help"]
