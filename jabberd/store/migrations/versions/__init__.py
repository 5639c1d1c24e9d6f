"""One file per schema revision, a single linear chain; see L{jabberd.store.schema}."""
