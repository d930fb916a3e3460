"""Documentation fragment: the AWS endpoint and credentials of the hostkit modules that call
AWS through boto3 (module_utils/global_config.py make_client, module_utils/aws.py)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  endpoint_url:
    description:
      - The service's endpoint instead of AWS's (the sandbox's emulator, for example
        C(http://127.0.0.1:15000)).
      - The C(AWS_ENDPOINT_URL) environment variable may also be used.
    type: str
notes:
  - Credentials come from the usual boto3 sources (environment, profile, instance role);
    run the module where they are, normally the controller (C(delegate_to=localhost)).
  - Calls are retried by botocore's standard retry mode (throttling, 5xx, timeouts).
requirements:
  - boto3
"""
