"""Registry records to Glance's response bodies."""

from __future__ import annotations

ATTRIBUTES = (
    "name",
    "disk_format",
    "container_format",
    "visibility",
    "size",
    "virtual_size",
    "status",
    "checksum",
    "protected",
    "min_ram",
    "min_disk",
    "owner",
    "os_hidden",
    "os_hash_algo",
    "os_hash_value",
    "id",
    "created_at",
    "updated_at",
    "tags",
)
HIDDEN_PROPERTIES = ("os_glance_stage_host",)


def image_href(image_id: str, sub: str = "") -> str:
    return f"/v2/images/{image_id}/{sub}" if sub else f"/v2/images/{image_id}"


def image_view(record: dict, conf) -> dict:
    view = {k: v for k, v in record["properties"].items() if k not in HIDDEN_PROPERTIES}
    for key in ATTRIBUTES:
        view[key] = record[key]
    locations = record.get("locations") or []
    if conf.show_multiple_locations:
        view["locations"] = locations
    if conf.show_image_direct_url and locations:
        view["direct_url"] = locations[0]["url"]
    view["self"] = image_href(record["id"])
    view["file"] = image_href(record["id"], "file")
    view["schema"] = "/v2/schemas/image"
    return view
