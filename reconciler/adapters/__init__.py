"""One module per outside thing (pygit2, the file system, sops, ...); library errors stop here."""
