"""The only code that talks to databases, Redis, password hashing and token libraries."""
