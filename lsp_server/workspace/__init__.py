"""The user's workspace on disk: which files to read, and what is learned from them."""
