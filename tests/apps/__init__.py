"""Celery apps of other shapes than the reference deployment, as users write them."""
