"""Statistics from aggregate counters that hold no personal data (SPEC P11)."""
