"""PASTA: personalized, sequential text-to-image co-creation. `pasta.agent` runs the loop; `pasta.cli` the commands."""

from pasta.console import quiet_libraries

quiet_libraries()  # before any model library is imported: their load bars are not for people to read
