"""Routes: which inbound mail goes where (placeholder: the routes builder's package wins)."""
