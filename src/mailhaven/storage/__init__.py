"""Storage: the database, its migrations, and the data inventory every column declares."""
