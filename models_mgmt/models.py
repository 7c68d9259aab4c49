"""Models of the models_mgmt app (filled in by later issues)."""
