"""hostkit image builders: one short recipe per server role, baked by a docker or ec2 backend."""

__version__ = "1.0.0"
