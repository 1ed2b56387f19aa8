"""The built-in components, each an ordinary plugin module listed in ``plugins.BUILTIN_PLUGINS``."""
