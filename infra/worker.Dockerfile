# The Trialake image: the runtime lock (requirements.lock, hashes required) and the package,
# installed with `make setup`; no test or dev tools (those are in requirements-dev.lock).
# Used by the Prefect server, the deployment job, the Prefect worker and the Dask scheduler and
# workers, so every process runs the very same pinned versions (Prefect, Dask, the library).
# Build context: the repository root (see infra/compose.yaml).
FROM python:3.11.7-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends make curl \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/trialake
# Only what `make setup` and the flows need; the virtualenv is created inside the image.
COPY Makefile pyproject.toml requirements.lock README.md ./
COPY src ./src
COPY flows ./flows
COPY tasks ./tasks
COPY expectations ./expectations
COPY infra ./infra
# Also seen by `make deploy` and `make worker` in the container, so they find the setup done.
ENV SETUP_LOCKS=requirements.lock SETUP_INSTALL=.
RUN make setup PYTHON=python3

ENV PATH=/opt/trialake/.venv/bin:$PATH \
    TRIALAKE_HOME=/opt/trialake \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1

RUN useradd --system --uid 10001 --home-dir /opt/trialake trialake \
 && chown -R trialake /opt/trialake
USER trialake
