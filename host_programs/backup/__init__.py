"""hostkit-mysql-backup: snapshots and binary logs of a database cluster to S3, restores."""
