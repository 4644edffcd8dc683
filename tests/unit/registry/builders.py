"""Request contexts and change builders shared by the registry domain tests."""

from __future__ import annotations

from services.common.context import RequestContext
from services.common.contracts import ImageChange
from services.common.image_schema import image_validator

OWNER = RequestContext(project_id="p-owner", user_id="u-owner", roles=("member", "reader"))
OTHER = RequestContext(project_id="p-other", user_id="u-other", roles=("member", "reader"))
ADMIN = RequestContext(
    project_id="p-admin", user_id="u-admin", roles=("admin", "member"), is_admin=True
)
V21 = "application/openstack-images-v2.1-json-patch"
V20 = "application/openstack-images-v2.0-json-patch"


def patch(conf, *ops: tuple, media: str = V21) -> list[ImageChange]:
    """Checked changes, as the registry rebuilds them from the wire; each op is
    ``(op, path)`` or ``(op, path, value)`` with a JSON-pointer path."""

    def change(op: str, path: str, *value) -> ImageChange:
        wire = {
            "op": op,
            "path": path.lstrip("/").split("/"),
            "value": value[0] if value else None,
            "json_schema_version": 10 if media == V21 else 4,
        }
        return ImageChange.from_wire(wire, image_validator(conf))

    return [change(*o) for o in ops]
