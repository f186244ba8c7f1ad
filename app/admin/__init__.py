"""Administration screens: user accounts (issue 6)."""
