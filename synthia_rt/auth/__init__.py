"""Tokens (issue/verify/rotate), passwords (Argon2id) and revocation."""
