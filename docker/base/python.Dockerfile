# CI only: the stand-in for python:3.11-slim, from Debian bookworm's own python3 (3.11).
# Like the official image it has python, python3 and pip on PATH (pip in a venv, so Debian's
# packaged Python stays untouched); the project's Dockerfile adds python3-dev where it builds.
ARG BASE=amsw-ci/debian:bookworm
FROM ${BASE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /usr/local/python
ENV PATH=/usr/local/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    LANG=C.UTF-8
CMD ["python3"]
