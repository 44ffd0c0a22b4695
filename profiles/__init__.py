"""Built-in scan profiles (TOML), installed as `ecgaudit.builtin_profiles`."""
