"""Pydantic models for requests and responses."""
