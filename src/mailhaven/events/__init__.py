"""Events in Mailgun's JSON, and the Events API with its paging (SPEC P6)."""
