"""The disk cache of completions: exact prompts and CRUD patterns, with hit statistics.

One cache directory holds two layers, each a diskcache (SQLite) database of its own, and a third
small database of hit/miss counters that `flashcode stats` reads without a server. Modules, one
question each:

- `store`: `CompletionCache`, the two layers behind one object (what is stored, how candidates
  under one pattern key are ordered), and the counting of lookups;
- `keys`: the exact key of a request, and the files whose text must never be cached;
- `database`: where the cache lives, and one database that keeps itself private and usable;
- `counters`: hit, miss and latency counts, and their summary.
"""
