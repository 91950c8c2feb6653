"""The account's own reports over HTTP (overview, usage, ledger): they read sessions and billing,
so they sit above sessions in the layers (.importlinter)."""
