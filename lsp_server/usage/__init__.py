"""The local usage and cost report: what a server counted (recorder), where it keeps it (store),
the figures made from it (figures), and `flashcode stats` printing or plotting them (cli, table,
plot). Local only: nothing here opens a connection, and no code text is ever stored."""
