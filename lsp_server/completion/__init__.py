"""The protocol-free completion core: context, the pipeline's steps, the cache they share.

Nothing here imports pygls or lsprotocol; the LSP edge (lsp_server/features/) converts positions
and results, and calls `pipeline.CompletionService.suggest`.
"""
