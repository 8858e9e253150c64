"""The copy editor for marketing: drafts, preview, publish, history and revert."""
