"""Models of the learning app (filled in by later issues)."""
