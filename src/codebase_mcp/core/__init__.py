"""Pure helpers shared by every layer: code tokens, languages, secret rules, validation of what users
and clients send, and cleaning of untrusted text. Nothing here imports another codebase_mcp package
(only ``errors``), so any layer may import it."""
