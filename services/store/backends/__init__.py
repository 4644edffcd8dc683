"""Store backends: file, http (read-only) and swift, behind one small contract
(services/store/backends/base.py)."""
