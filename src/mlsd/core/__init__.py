"""Small shared pieces: time handling, atomic files, paths and errors."""
