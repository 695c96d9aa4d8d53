# The reconciler's own image. The base image is a build argument so it also builds offline, from
# the locally built runner image (which has python3 and uv):
#   bash scripts/build-image                      (wheels + docker build; BASE_IMAGE=fastflow-runner:local)
# Any Debian-based Python 3.11+ image works as a base (python:3.12-slim-bookworm, ...).
# Python dependencies come from the wheelhouse in dist/wheels (no index is needed at build time).
ARG BASE_IMAGE=fastflow-runner:local
FROM ${BASE_IMAGE}
USER root
COPY dist/wheels /tmp/wheels
RUN set -eu; \
    if command -v uv >/dev/null 2>&1; then \
      uv venv --quiet /opt/fastflow --python "$(command -v python3)"; \
      uv pip install --quiet --python /opt/fastflow/bin/python --no-index --find-links /tmp/wheels fastflow; \
    else \
      python3 -m venv /opt/fastflow; \
      /opt/fastflow/bin/pip install --quiet --no-index --find-links /tmp/wheels fastflow; \
    fi; \
    rm -rf /tmp/wheels; \
    mkdir -p /var/lib/fastflow && chown 10001:10001 /var/lib/fastflow
ENV PATH=/opt/fastflow/bin:/usr/local/bin:/usr/bin:/bin \
    HOME=/tmp \
    FASTFLOW_DATA=/var/lib/fastflow \
    FASTFLOW_LISTEN=0.0.0.0:8080 \
    FASTFLOW_DOCKER_HOST=tcp://socket-proxy:2375 \
    PYTHONUNBUFFERED=1
# Non-root; the root filesystem can be read-only (writes go to FASTFLOW_DATA and /tmp).
USER 10001:10001
WORKDIR /var/lib/fastflow
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('FASTFLOW_LISTEN', ':8080').rsplit(':', 1)[1] + '/healthz', timeout=4)"]
ENTRYPOINT ["fastflow"]
CMD ["-v", "serve"]
