"""SQL storage (SQLModel/SQLAlchemy) for SQLite and PostgreSQL."""
