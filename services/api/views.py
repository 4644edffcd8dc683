"""Registry records to Glance's response bodies."""

from __future__ import annotations

from services.common.config import enabled_backends
from services.common.image_attributes import ATTRIBUTES, HIDDEN_PROPERTIES

# The attributes every image body carries (null when unset), in Glance's order.
VIEWED = tuple(a.name for a in ATTRIBUTES if a.column or a.name == "tags")


def image_href(image_id: str, sub: str = "") -> str:
    return f"/v2/images/{image_id}/{sub}" if sub else f"/v2/images/{image_id}"


def image_view(record: dict, conf) -> dict:
    view = {k: v for k, v in record["properties"].items() if k not in HIDDEN_PROPERTIES}
    for key in VIEWED:
        view[key] = record[key]
    locations = record.get("locations") or []
    if conf.show_multiple_locations:
        view["locations"] = locations
    if conf.show_image_direct_url and locations:
        view["direct_url"] = locations[0]["url"]
    if enabled_backends(conf):  # multiple stores: the store ids of its copies, as Glance
        stores = [loc["metadata"].get("store") for loc in locations]
        if any(stores):
            view["stores"] = ",".join(s for s in stores if s)
    view["self"] = image_href(record["id"])
    view["file"] = image_href(record["id"], "file")
    view["schema"] = "/v2/schemas/image"
    return view
