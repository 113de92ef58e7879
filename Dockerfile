# The operator image: docker build -t e2b-operator:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml ./
COPY operator ./operator
RUN pip install . && rm -rf /src \
    && useradd --system --uid 10001 --user-group --no-create-home --home-dir /tmp e2b

WORKDIR /tmp
# Numeric, so the pod's runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8080
CMD ["kopf", "run", "--all-namespaces", "--standalone", "--liveness=http://0.0.0.0:8080/healthz", \
     "-m", "e2b_operator.handlers.main"]
