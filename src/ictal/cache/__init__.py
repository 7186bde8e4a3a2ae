"""The cache: built once from a corpus, identified by its key, verified, published and staged."""
