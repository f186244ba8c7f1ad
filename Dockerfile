# One image for every role: web (gunicorn), worker, beat and migrations (celery / flask setup).
# BASE: any Debian-based image with Python 3.11 and pip (CI builds its own, see docker/base/).
# WHEELHOUSE: a folder of the build context holding every file of requirements.lock and
# docker/requirements-build.lock (`make wheelhouse`); when it holds packages, pip installs from it
# alone (--no-index). Either way every package must match a hash in the lock files.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
ARG WHEELHOUSE=docker/no-wheelhouse
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# gssapi and krb5 are built from source against the MIT Kerberos headers (and Python's own, which
# python:3.11-slim has and a Debian python3 base gets from python3-dev).
RUN headers=$(python3 -c 'import sysconfig; print(sysconfig.get_path("include"))') \
    && if [ -f "$headers/Python.h" ]; then dev=""; else dev=python3-dev; fi \
    && apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev libkrb5-dev ${dev:+"$dev"} \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.lock docker/requirements-build.lock /build/
COPY ${WHEELHOUSE}/ /wheels/
RUN python3 -m venv /opt/venv \
    && if [ -n "$(find /wheels -name '*.whl' -print -quit)" ]; then \
         echo "Installing from the wheelhouse only"; offline=1; source=wheelhouse; \
       else \
         echo "Installing from the package index"; offline=""; source=index; \
       fi \
    && echo "$source" >/opt/venv/installed-from \
    && /opt/venv/bin/pip install ${offline:+--no-index --find-links=/wheels} --require-hashes \
         -r /build/requirements-build.lock \
    && /opt/venv/bin/pip install ${offline:+--no-index --find-links=/wheels} --require-hashes \
         --no-build-isolation -r /build/requirements.lock \
    && /opt/venv/bin/pip uninstall --yes cython setuptools

FROM ${BASE}
# FIRST_ADMIN_PASSWORD_FILE is where `flask setup` leaves the first admin's password (not a value).
# hadolint ignore=DL3064
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    FLASK_APP=app:create_app \
    AMSW_INSTANCE_DIR=/data \
    FIRST_ADMIN_PASSWORD_FILE=/data/first-admin-password
# The Kerberos libraries at run time; a fixed uid/gid so secret files can be given to it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libkrb5-3 libgssapi-krb5-2 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 amsw \
    && useradd --system --uid 10001 --gid amsw --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin amsw \
    && mkdir /data && chown amsw:amsw /data && chmod 0700 /data
COPY --from=build /opt/venv /opt/venv
# The application belongs to root and cannot be changed by the app user; only /data is writable.
WORKDIR /app
COPY config.py ./
COPY app/ app/
COPY migrations/ migrations/
COPY templates/ templates/
COPY static/ static/
COPY docker/healthcheck.py docker/
RUN python -m compileall -q /app/app /app/config.py /app/migrations \
    && chmod -R go-w /app
USER 10001:10001
EXPOSE 8000
# The web role by default; the compose file gives the worker, beat and migrate their commands.
# gunicorn's control socket (default $HOME/.gunicorn) is not used: no process here reads it.
CMD ["gunicorn", "--config", "python:app.gunicorn_config", "--no-control-socket", "app:create_app()"]
