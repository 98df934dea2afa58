"""srmac hwgen package."""
