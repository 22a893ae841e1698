"""flashcode's language server: LSP wiring over the prompts and inference packages."""
