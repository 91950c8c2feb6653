# Image for web, worker and beat. Browsers run on the Selenium Grid node in docker-compose.yml;
# for the local backend in one container, add: apt-get install chromium chromium-driver (and
# chromium-headless-shell, the headless_shell flavour: CHROMIUM_HEADLESS_SHELL_BINARY).
# ffmpeg encodes recordings' MP4 exports on the workers (workers/recording_export.py).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini ffmpeg \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN BROWSERFLEET_ENV=development python manage.py collectstatic --noinput -v 0
# Never root at run time: the code is root-owned and read-only to the service user, which may
# write only screenshots (/data/media, the compose volume inherits this owner) and var/.
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin browserfleet \
    && mkdir -p /data/media /app/var/browsers \
    && chown -R browserfleet:browserfleet /data/media /app/var/browsers
USER browserfleet
# tini reaps orphaned processes (PID 1 in a container does not do that by itself).
ENTRYPOINT ["tini", "--"]
# ASGI (project/asgi.py): uvicorn workers under gunicorn; WEB_THREADS threads per process for the API.
CMD ["gunicorn", "project.asgi:application", "--bind", "0.0.0.0:8000", "--worker-class", "project.asgi_worker.Worker", \
     "--logger-class", "project.access_log.RedactingLogger"]
