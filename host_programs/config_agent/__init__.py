"""hostkit-config-agent: the web servers' runtime settings follow the global config."""
