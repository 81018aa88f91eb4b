"""The read side: queries over the read models, and the documents the fronts answer with."""
