"""Sign-in, sign-out, accounts and roles."""
