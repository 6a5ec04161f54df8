"""HTTP shape only: paths, parameters, status codes and security."""
