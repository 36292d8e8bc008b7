"""A kine-style revision log on SQL: every write appends a row whose id is the resourceVersion."""
