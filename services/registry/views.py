"""Rows to the JSON records that cross RPC (timestamps in Glance's format)."""

from __future__ import annotations

import json
from datetime import datetime

from services.registry.models import Image


def isotime(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def image_record(image: Image) -> dict:
    return {
        "id": image.id,
        "name": image.name,
        "status": image.status,
        "visibility": image.visibility,
        "owner": image.owner,
        "size": image.size,
        "virtual_size": image.virtual_size,
        "disk_format": image.disk_format,
        "container_format": image.container_format,
        "checksum": image.checksum,
        "os_hash_algo": image.os_hash_algo,
        "os_hash_value": image.os_hash_value,
        "min_disk": image.min_disk,
        "min_ram": image.min_ram,
        "protected": image.protected,
        "os_hidden": image.os_hidden,
        "created_at": isotime(image.created_at),
        "updated_at": isotime(image.updated_at),
        "tags": sorted(t.value for t in image.tags),
        "properties": {p.name: p.value for p in image.properties},
        "locations": [{"url": loc.value, "metadata": json.loads(loc.meta_data or "{}")}
                      for loc in image.locations if loc.status == "active"],
    }
