"""The privacy engine: data-subject requests, erasure, restriction, consent (SPEC N3–N9)."""
