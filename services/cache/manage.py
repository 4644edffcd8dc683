"""``tessera-manage cache list|queue|delete|clear|prune|clean``: the jobs of Glance's
``glance-cache-*`` commands, on the cache directory of the node it runs on (the one its
configuration names). Queued images are fetched by that node's cache service."""

from __future__ import annotations

import sys
import time

from services.cache.index import ImageCache, cacheable_id
from services.common.config import image_cache_settings


def _cache(conf) -> ImageCache:
    settings = image_cache_settings(conf)
    if not settings.enabled:
        sys.exit(
            "tessera-manage: the image cache is off in this configuration (set "
            "[DEFAULT] image_cache_dir, or [cache] enabled = true)"
        )
    return ImageCache.from_settings(settings)


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _list(conf, _args) -> None:
    cache = _cache(conf)
    cached = cache.cached_images()
    print(f"{len(cached)} cached images ({cache.total_size()} of {cache.max_size} bytes)")
    for entry in cached:
        print(
            f"  {entry['image_id']}  {entry['size']:>14} bytes  {entry['hits']:>6} hits  "
            f"last accessed {_when(entry['last_accessed'])}"
        )
    queued = cache.queued_images()
    print(f"{len(queued)} queued images")
    for image_id in queued:
        print(f"  {image_id}")


def _queue(conf, args) -> None:
    cache = _cache(conf)
    for image_id in args.image_ids:
        if not cacheable_id(image_id):
            sys.exit(f"tessera-manage: {image_id!r} is not an image id")
        print(f"{image_id}: {'queued' if cache.queue(image_id) else 'cached already'}")


def _delete(conf, args) -> None:
    cache = _cache(conf)
    for image_id in args.image_ids:
        found = cache.evict(image_id) | cache.dequeue(image_id)
        print(f"{image_id}: {'deleted' if found else 'neither cached nor queued'}")


def _clear(conf, args) -> None:
    cache = _cache(conf)
    if args.target in ("both", "cache"):
        print(f"{cache.evict_all()} cached images deleted")
    if args.target in ("both", "queue"):
        print(f"{cache.dequeue_all()} queued images deleted")


def _prune(conf, _args) -> None:
    files, size = _cache(conf).prune()
    print(f"{files} images ({size} bytes) pruned")


def _clean(conf, _args) -> None:
    print(f"{_cache(conf).clean()} files cleaned")


def add_commands(subparsers) -> None:
    cache = subparsers.add_parser("cache", help="this node's image cache").add_subparsers(
        dest="action", required=True
    )
    cache.add_parser("list", help="cached and queued images").set_defaults(run=_list)
    for name, run, help_text in (
        ("queue", _queue, "queue images for the prefetcher"),
        ("delete", _delete, "remove images from the cache and the queue"),
    ):
        parser = cache.add_parser(name, help=help_text)
        parser.add_argument("image_ids", nargs="+", metavar="IMAGE_ID")
        parser.set_defaults(run=run)
    clear = cache.add_parser("clear", help="empty the cache, the queue or both")
    clear.add_argument("--target", choices=("both", "cache", "queue"), default="both")
    clear.set_defaults(run=_clear)
    cache.add_parser(
        "prune", help="evict least recently used images down to image_cache_max_size"
    ).set_defaults(run=_prune)
    cache.add_parser(
        "clean", help="remove abandoned, stalled and invalid cache files"
    ).set_defaults(run=_clean)
