"""The ``htda-bench`` command line: one entry point, a module per subcommand group."""
