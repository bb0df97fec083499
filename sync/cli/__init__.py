"""The `icp` command: options, commands and what they print (results on stdout, logs on stderr).

`main` builds the command group; `options` holds what every command shares and the error
boundary that turns errors into exit codes; `mappings`, `editor`, `operate`, `score` and
`demo` are command groups; `render` and `preview` write what people read.
"""

from icp_engine.sync.cli.main import main

__all__ = ["main"]
