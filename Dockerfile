# One image for every Python service of the stack: watcher, worker, image server, dashboard, sandbox.
# The compose file picks the service with its `command` (`miro-sync watch`, `miro-sync worker`, ...).
#
# BASE_IMAGE: any Debian-like image with Python >= 3.11 and the venv module. The default is the official
# image; the container test harness (scripts/compose-e2e) passes a locally built one instead.
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# A virtualenv works the same on both bases: the official image's Python in /usr/local and a
# distribution's Python in /usr/bin (which refuses system-wide pip installs, PEP 668).
RUN python3 -m venv /opt/venv

# jpegtran turns a JPEG stored sideways upright without re-encoding it (shared/image/upright.py).
RUN apt-get update -q \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libjpeg-turbo-progs \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first, from the locks alone (the versions the suite passed with, each file's hash checked),
# so a source change does not re-download them. The build lock first: pip, setuptools and what pyvips
# (published as an sdist only) builds with; every build after it uses these, not an isolated build's newest.
COPY requirements-build.lock requirements-runtime.lock ./
RUN pip install --require-hashes -r requirements-build.lock \
    && pip install --require-hashes --no-build-isolation -r requirements-runtime.lock

# Then the project itself: a regular, non-editable install, built with the locked setuptools. README.md,
# which the metadata names, is a placeholder.
COPY pyproject.toml ./
COPY shared ./shared
COPY services ./services
RUN touch README.md \
    && pip install --no-deps --no-build-isolation . \
    && rm -rf build *.egg-info \
    && miro-sync --help >/dev/null \
    && python -c "import pyvips, pillow_heif; pyvips.Image.black(1, 1).avg(); pillow_heif.register_heif_opener()"

# Never run as root. The uid is fixed so bind-mounted folders can be matched on the host if needed.
RUN groupadd --gid 10001 miro \
    && useradd --uid 10001 --gid miro --home-dir /app --no-create-home --shell /usr/sbin/nologin miro \
    && mkdir -p /data/inbox /data/state \
    && chown miro:miro /data/inbox /data/state
USER miro:miro

ENV WATCH_FOLDER=/data/inbox
EXPOSE 8000 9181 9108

# Exec form: `miro-sync` is PID 1's child under compose's `init: true`, and gets SIGTERM directly.
ENTRYPOINT ["miro-sync"]
CMD ["--help"]
