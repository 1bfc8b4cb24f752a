"""Load, fault and scale-out tests (issue 7) against real processes: Daphne, Celery, PostgreSQL, Redis."""
