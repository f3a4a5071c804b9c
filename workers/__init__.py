"""The reference deployment: a Celery app with rfqueue installed, and example tasks."""
