"""Glance's ``image_conversion`` import plugin on the store replica
(``[image_import_opts] image_import_plugins``, ``[image_conversion] output_format``).

The staged input is inspected whole first (services/store/formats.py: the content must
be the format its disk_format says, as Glance requires, and pass the safety checks, so a
qcow2 with a backing file or an external data file is refused) and only then handed to
``qemu-img convert`` with its format named (``-f``: qemu-img never probes). The output
goes to a temporary file beside the staged one, which the import then stores under the
output format; both files are removed after the import, whatever its end
(services/store/imports.py removes ``<image_id>*`` from the staging area)."""

from __future__ import annotations

import logging
from pathlib import Path

from eventlet.green import subprocess

from services.common.errors import InvalidImageData
from services.store.formats import FormatInspector, FormatPolicy

log = logging.getLogger(__name__)

PLUGIN = "image_conversion"
#: qemu-img's names of Glance's disk formats, where they differ
QEMU_NAMES = {"vhd": "vpc"}
READ = 1 << 20
TIMEOUT = 3600


def enabled(conf) -> bool:
    return PLUGIN in conf.image_import_opts.image_import_plugins


def inspect(path: Path, disk_format: str | None, policy: FormatPolicy) -> None:
    """The whole input through the format checks; InvalidImageData when it may not be
    converted."""
    strict = FormatPolicy(True, policy.gpt_safety_checks_nonfatal)
    inspector = FormatInspector(disk_format, "bare", strict)
    with open(path, "rb") as handle:
        while chunk := handle.read(READ):
            inspector.feed(chunk)
    inspector.finish()
    if inspector.found != disk_format:
        raise InvalidImageData(
            f"Image disk_format {disk_format} does not match the data ({inspector.found}): "
            f"not converted."
        )


def convert(path: Path, disk_format: str, output_format: str, policy: FormatPolicy) -> Path:
    """Inspect, then convert ``path``; the converted file (``<path>.converted``)."""
    inspect(path, disk_format, policy)
    target = path.with_name(f"{path.name}.converted")
    command = [
        "qemu-img",
        "convert",
        "-f",
        QEMU_NAMES.get(disk_format, disk_format),
        "-O",
        output_format,
        str(path),
        str(target),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _out, err = process.communicate(timeout=TIMEOUT)
    except BaseException:
        process.kill()
        target.unlink(missing_ok=True)
        raise
    if process.returncode != 0:
        target.unlink(missing_ok=True)
        message = err.decode(errors="replace").strip()
        log.info("qemu-img convert of %s failed: %s", path.name, message)
        raise InvalidImageData(f"Image conversion to {output_format} failed: {message}")
    log.info("converted %s from %s to %s", path.name, disk_format, output_format)
    return target
