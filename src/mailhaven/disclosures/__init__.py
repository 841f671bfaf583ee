"""The disclosure log and Article 19 propagation (SPEC N10)."""
