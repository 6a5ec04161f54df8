"""The SQL side: declarations of the .sql files under queries/sql/ and the loader that checks them.

This package never imports from `api`; the dependency points one way.
"""
