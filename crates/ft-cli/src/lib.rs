//! The `ft42` command line: configuration, logging, commands and exit codes.
