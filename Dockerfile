# One image for every Tessera service; the command picks the service (docker-compose.yml).
# The base image is pinned by version: bump it on purpose (deploy/README.md, "Upgrades").
FROM python:3.11.11-slim-bookworm
WORKDIR /app
COPY requirements.in constraints.txt pyproject.toml README.md ./
RUN pip install --no-cache-dir -r requirements.in -c constraints.txt
COPY services ./services
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e .
# Not root: a user of its own owns the directories the named volumes are mounted on (a
# new named volume takes the owner and mode of the directory it is mounted on).
RUN useradd --system --uid 10001 --home-dir /var/lib/tessera tessera \
 && install -d -o tessera -g tessera /var/lib/tessera /var/lib/tessera/images \
        /var/lib/tessera/staging /var/lib/tessera/cache
USER tessera
# The API binds loopback unless told otherwise (docker-compose.yml's api services are).
ENV OS_DEFAULT__DATA_DIR=/var/lib/tessera
EXPOSE 9292 9393
CMD ["tessera-api"]
