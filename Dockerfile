# vitmon: one image for `vitmon run`, `vitmon ui`, `vitmon simulate` and the other commands.
#   docker build -t vitmon .
#   docker run --rm vitmon --help
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# torch first, from PyTorch's CPU index: the default index resolves to multi-GB CUDA wheels
# (the same pin as the Makefile and pyproject.toml).
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

WORKDIR /opt/vitmon
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY detectors ./detectors
COPY slices ./slices
COPY ui ./ui
COPY simulator ./simulator
COPY migrations ./migrations
RUN pip install . && useradd --create-home --uid 10001 vitmon

USER vitmon
WORKDIR /home/vitmon
# 8501: the UI (vitmon ui), 9108: Prometheus metrics (vitmon run)
EXPOSE 8501 9108
ENTRYPOINT ["vitmon"]
CMD ["run"]
