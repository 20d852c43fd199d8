"""CLI subcommands: each module here defines ``add_parser(subparsers)`` and is found automatically.

Modules must stay cheap to import (import torch and friends inside the command's function), so that
``divita --help`` is instant.
"""
