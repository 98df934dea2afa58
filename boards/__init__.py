"""srmac boards package."""
