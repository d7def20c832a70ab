"""Every run recorded: a SQLite index of the run directories, listing, filtering and comparison."""
