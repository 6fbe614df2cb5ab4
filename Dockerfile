# syntax=docker/dockerfile:1
# One image for every role: the admin service (the default command), engine workers,
# reprocessing workers (started by the Kubernetes executor) and ingest runs.
#
#   docker build -t tailrace:dev .
#   docker build --build-arg VERSION=$(git describe --tags --abbrev=0 | sed 's/^v//') \
#       -t tailrace:0.2.0 .     # the version the image reports (the build has no .git)
#   docker run -p 3049:3049 -e TAILRACE_API_TOKENS=... tailrace:dev
#   docker run --no-healthcheck tailrace:dev --app myproject.tasks:app worker
#   docker run --no-healthcheck -e JOB_ID=... -e WORKER_INDEX=0 tailrace:dev worker
#   docker run --no-healthcheck tailrace:dev ingest s3://bucket/logs/ --sink @logs
#
# An image for engine workers adds the project's tasks on top:
#   FROM tailrace:0.1.0
#   COPY --chown=10001:10001 myproject/ /opt/app/myproject/
#   ENV PYTHONPATH=/opt/app TAILRACE_APP=myproject.tasks:app

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
# without .git, the package's version is VERSION, else pyproject's fallback
ARG VERSION=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 SETUPTOOLS_SCM_PRETEND_VERSION=${VERSION}
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# tailrace's wheel with every extra (the image serves, runs on Kubernetes, may spool to Redis
# and export traces) and every dependency's (all ship binary wheels for CPython 3.11 on
# x86_64 and aarch64, so the runtime stage needs no compiler and no network)
RUN pip wheel --wheel-dir /wheels '.[all]'

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# the wheels are mounted, not copied, so they never become a layer of the image
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels 'tailrace[all]' \
    && groupadd --system --gid 10001 tailrace \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin tailrace \
    && install -d -o 10001 -g 10001 -m 0750 /data
# relative paths (.tailrace/ for logs and the generated token, the embedded SQLite file)
# land in /data; Kubernetes mounts an emptyDir there and sets TAILRACE_DATA_DIR=/data
WORKDIR /data
# numeric, so that Kubernetes' runAsNonRoot can check it without /etc/passwd
USER 10001:10001
EXPOSE 3049
# for `docker run` of the admin service; Kubernetes ignores it and uses the manifests'
# probes. Containers started for other roles run with --no-healthcheck.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('TAILRACE_PORT', '3049'), timeout=4)"]
ENTRYPOINT ["tailrace"]
CMD ["serve", "--host", "0.0.0.0"]
