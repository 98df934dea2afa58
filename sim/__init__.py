"""srmac sim package."""
