# crm-renewals: one image for its two long-lived processes, `renewals serve` (webhooks, the
# admin console and the inbox worker) and `renewals scheduler`. compose.yaml builds and runs it.

# Build stage: the package from this repository, with PostgreSQL support, in a virtualenv.
# Every dependency has a manylinux wheel, so no compiler is needed.
FROM python:3.11-slim AS build
RUN python -m venv /opt/renewals
WORKDIR /src
COPY . .
RUN /opt/renewals/bin/pip install --no-cache-dir --disable-pip-version-check ".[postgres]"

# Runtime stage: the virtualenv only, run by an unprivileged user.
FROM python:3.11-slim
RUN groupadd --system --gid 10001 renewals \
    && useradd --system --uid 10001 --gid renewals --home-dir /app --no-create-home renewals
COPY --from=build /opt/renewals /opt/renewals
ENV PATH=/opt/renewals/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RENEWALS_CONFIG=/app/app.yaml
WORKDIR /app
# The commented app.yaml and the default mappings, as `renewals init` writes them (app.yaml is
# part of the image: change it in the repository and rebuild). data/ and mappings/ belong to the
# app user: compose.yaml mounts volumes there (the console saves mapping edits; the web and
# scheduler containers share both).
RUN renewals init /app \
    && mkdir /app/data \
    && chown -R renewals:renewals /app/data /app/mappings
USER 10001:10001
EXPOSE 8000
CMD ["renewals", "serve", "--bind", "0.0.0.0:8000"]
