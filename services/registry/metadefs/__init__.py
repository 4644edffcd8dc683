"""Metadata definitions (Glance's "metadefs"): namespaces of property, object and tag
definitions, and the resource types they apply to. The registry owns them in six tables
of their own (models.py); namespaces.py and contents.py are the rules, records.py the
records they answer, entrypoints.py the RPC methods, files.py the catalogue files that
``tessera-manage db load_metadefs|unload_metadefs|export_metadefs`` read and write."""
