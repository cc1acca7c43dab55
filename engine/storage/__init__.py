"""Storage backends: a local folder, Azure Blob (staged) and abfss:// (direct)."""
