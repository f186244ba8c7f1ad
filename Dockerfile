# One image for every role: web (gunicorn), worker (celery) and migrations (one-shot).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FLASK_APP=app:create_app \
    AMSW_INSTANCE_DIR=/data

RUN groupadd --system amsw && useradd --system --gid amsw --home /app amsw \
    && mkdir -p /data && chown amsw:amsw /data
WORKDIR /app

# Kerberos: the MIT libraries at run time; the headers and compiler only while pip builds gssapi/krb5.
COPY requirements.txt .
RUN apt-get update \
    && apt-get install -y --no-install-recommends libkrb5-3 libgssapi-krb5-2 \
       libkrb5-dev gcc \
    && pip install --no-cache-dir -r requirements.txt \
    && apt-get purge -y --auto-remove libkrb5-dev gcc \
    && rm -rf /var/lib/apt/lists/*

COPY --chown=amsw:amsw . .
USER amsw

EXPOSE 8000
# Web by default; the compose file runs the worker and migrations with other commands.
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "--worker-class", "gthread", "--workers", "2", \
     "--threads", "16", "--timeout", "0", "--access-logfile", "-", "app:create_app()"]
