"""SQLAlchemy Core storage for SQLite (embedded) and PostgreSQL."""
