"""Tessera: an OpenStack Image API v2 service built as nameko microservices."""

import warnings

# nameko 2.14 imports eventlet, which warns that it is deprecated on every import; the
# warning class is not a DeprecationWarning subclass, so filter it by its message.
warnings.filterwarnings("ignore", message=r"(?s).*Eventlet is deprecated")
