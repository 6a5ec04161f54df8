"""Process-level plumbing: settings, the connection pool and the embedded server."""
