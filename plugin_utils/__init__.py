"""Controller-side logic of hostkit's Jinja filters, lookups and action plugins: pure
Python, no Ansible imports, unit-tested as is (tests/unit). Code that runs on the managed
hosts, or that Ansible modules import, lives in module_utils/ instead; this package runs only
on the controller, in the project's virtualenv, where scripts/bootstrap.sh installs the
repository as the editable package `hostkit` (pyproject.toml), so that plugins import it
without changing sys.path."""
