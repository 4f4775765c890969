# One image for api, worker and migrate. GPU workers get the card through compose's
# device reservation; the CUDA build of torch from PyPI carries its own runtime.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY api api
COPY worker worker
COPY repair_core repair_core
COPY repairctl repairctl
COPY migrations migrations
RUN pip install --no-cache-dir . && useradd --create-home repair && mkdir -p /data && chown repair /data
USER repair
EXPOSE 8000
CMD ["uvicorn", "api.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000"]
