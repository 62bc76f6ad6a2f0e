"""Accounts: users, credentials and the password and key material that protects them."""
