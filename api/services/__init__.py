"""Business rules, authorisation decisions and transactions; no HTTP here."""
