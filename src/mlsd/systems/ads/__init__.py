"""Ad click prediction (the book's chapter 8): click events, streaming CTR-style features."""
