"""Alembic migrations of the controller's database, one linear chain (``tests/unit/test_migrations.py``
checks there is one head); ``controller.db.engine.migrate`` runs them."""
