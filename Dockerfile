# One image for every role: web (gunicorn), worker (celery) and migrations (one-shot).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FLASK_APP=app:create_app \
    AMSW_INSTANCE_DIR=/data

RUN groupadd --system amsw && useradd --system --gid amsw --home /app amsw \
    && mkdir -p /data && chown amsw:amsw /data
WORKDIR /app

COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY --chown=amsw:amsw . .
USER amsw

EXPOSE 8000
# Web by default; the compose file runs the worker and migrations with other commands.
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "--worker-class", "gthread", "--workers", "2", \
     "--threads", "16", "--timeout", "0", "--access-logfile", "-", "app:create_app()"]
