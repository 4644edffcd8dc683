"""The ``location_import`` task of the 2.17 location API on a store replica.

With ``[DEFAULT] do_secure_hash`` (Glance's default) the replica reads the location's
data once, through the web fetcher (every redirect hop filtered) and the upload
pipeline (size cap, hashes, format checks), stores nothing, checks ``validation_data``
and ends the task: the image is active with the URL as its location, or queued again
when the data cannot be read or does not match. Without it, the image is active at
once with the hashes ``validation_data`` gave (Glance's ``_SetHashValues``)."""

from __future__ import annotations

import logging

from services.common.errors import Conflict, Gone, TesseraError, failure_message
from services.common.url_filter import UrlFilter
from services.store.web_fetch import open_source

log = logging.getLogger(__name__)


class ValidationMismatch(TesseraError):
    """The data read does not have the hashes validation_data gave."""


def _check(validation: dict, result: dict) -> None:
    """Glance's ``_VerifyValidationData`` (and the checksum and algorithm too)."""
    algo = validation.get("os_hash_algo")
    if algo is not None and algo != result["os_hash_algo"]:
        raise ValidationMismatch(
            f"os_hash_algo: ({algo}) not matched with actual os_hash_algo: "
            f"({result['os_hash_algo']})"
        )
    for key in ("os_hash_value", "checksum"):
        if key in validation and validation[key] != result[key]:
            raise ValidationMismatch(
                f"{key}: ({validation[key]}) not matched with actual {key}: ({result[key]})"
            )


def read_location(worker, claim: dict, progress: list) -> dict:
    """Read the location once (with do_secure_hash): the image's size and hashes."""
    source = open_source(claim["uri"], UrlFilter.from_config(worker.conf))
    try:
        pipeline = worker._pipeline(source.readinto, source.size, claim)
        progress.append(pipeline)
        for _chunk in pipeline.chunks():
            pass  # the hashes and the inspector see every chunk; nothing is stored
    finally:
        source.close()
    return pipeline.result()


def run_location_import(worker, claim: dict, progress: list) -> None:
    """Run the task to its end (the caller's lease renewal runs meanwhile)."""
    task_id, image_id = claim["task_id"], claim["image_id"]
    validation = claim.get("validation_data") or {}
    try:
        if worker.conf.do_secure_hash:
            result = read_location(worker, claim, progress)
            _check(validation, result)
        else:
            result = {
                "size": None,
                "checksum": validation.get("checksum"),
                "os_hash_algo": validation.get("os_hash_algo"),
                "os_hash_value": validation.get("os_hash_value"),
            }
    except Exception as exc:  # noqa: BLE001 - every failure fails the task
        log.info("location import %s of image %s failed: %s", task_id, image_id, exc)
        worker.registry.fail_import(task_id, failure_message(exc))
        return
    log.info("location of image %s imported: %s bytes", image_id, result["size"])
    try:
        worker.registry.finish_import(task_id, {**result, "location": claim["uri"], "metadata": {}})
    except (Gone, Conflict) as exc:
        log.info("location import %s of image %s ended meanwhile: %s", task_id, image_id, exc)
        worker.registry.fail_import(task_id, str(exc))
