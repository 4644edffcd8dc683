# One image for every Tessera service; the command picks the service.
FROM python:3.11-slim
WORKDIR /app
COPY requirements.in constraints.txt pyproject.toml README.md ./
RUN pip install --no-cache-dir -r requirements.in -c constraints.txt
COPY services ./services
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e .
ENV OS_DEFAULT__DATA_DIR=/var/lib/tessera \
    OS_DEFAULT__BIND_HOST=0.0.0.0
VOLUME /var/lib/tessera
EXPOSE 9292
CMD ["tessera-api"]
