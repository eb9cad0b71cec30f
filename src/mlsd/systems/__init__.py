"""Reference systems from the book, built only on the platform's public API."""
