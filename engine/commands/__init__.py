"""One module per `engine` verb; each defines add_parser(subparsers) and sets func=run."""
