"""The image attributes a client may set (the rest are read-only or derived); the
gateway and the registry both sort a request's fields with this list."""

SETTABLE_ATTRIBUTES = (
    "name",
    "disk_format",
    "container_format",
    "visibility",
    "protected",
    "os_hidden",
    "min_ram",
    "min_disk",
    "owner",
)
