# The one image every Kubeflow step runs in: Python + PyPI's CUDA build of the locked torch + this
# package, `mol` as entry point.
#
#   docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD) -t REGISTRY/mol-pipeline:TAG .
#   docker run --rm --gpus all REGISTRY/mol-pipeline:TAG train --help
#
# Base: the official Python image of the Python requirements.lock was resolved for (its third line,
# `# python 3.11`), so the interpreter agrees with the lock by construction; a build from another
# base (`--build-arg PYTHON_IMAGE=...`) stops at the check below with one clear line. torch comes from
# PyPI like every other package: on Linux x86_64 PyPI's torch 2.13.0 is the CUDA 13.0 build, and its
# CUDA and cuDNN libraries come as nvidia-* wheels pinned by torch itself. The GPU driver comes from the
# host (NVIDIA container toolkit / device plugin, told what to mount by the NVIDIA_* variables below).
# tests/test_docker.py checks that the tag's Python is the lock's.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    MPLBACKEND=Agg

# libgomp1: the OpenMP runtime dlib and OpenCV use (cheap to make sure). The wheels bundle the rest.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/mol

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml or the lock changes,
# not on every source edit. First the base's Python against the lock's, then the runtime dependencies
# read from pyproject.toml (no dev tools; with the `gpu` extra: nvidia-ml-py, for MLflow's GPU metrics).
COPY pyproject.toml requirements.lock ./
RUN python -c "import re, sys; want = re.search(r'^# python (\d+\.\d+)', open('requirements.lock').read(), re.M)[1]; have = '%d.%d' % sys.version_info[:2]; sys.exit(0 if have == want else f'error: the base image has Python {have}, but requirements.lock was resolved for Python {want}: build FROM python:{want} (--build-arg PYTHON_IMAGE) or re-lock with make lock')"
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['gpu']))" \
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

# Run as an unprivileged user, with a uid no Debian or Ubuntu base has taken;
# /work is where `docker run -v ...:/work` puts a project or data folder.
RUN useradd --create-home --uid 10001 mol && mkdir -p /work && chown mol:mol /work
USER 10001
WORKDIR /work

# The commit the image was built from, for MLflow's `code_version` tags (there is no .git inside).
# Last, so a new commit rebuilds no layer above.
ARG GIT_COMMIT=""
ENV MOL_GIT_COMMIT=${GIT_COMMIT}

ENTRYPOINT ["mol"]
CMD ["--help"]
