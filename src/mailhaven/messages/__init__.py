"""The stored message: its row, its sealed document, the facts events tell about it, and the
MIME built from it for each recipient. Below both `sending` (which stores it) and `delivery`
(which renders and sends it)."""
