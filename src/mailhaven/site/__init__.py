"""What the platform itself does as a website owner: its own mail, its contact form, its
visitors' cookie choices."""
