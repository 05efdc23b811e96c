"""FastAPI pieces shared by every API function."""
