"""Cost models that score configurations without measuring them."""
