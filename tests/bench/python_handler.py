"""The Python side of tests/bench/cold_start.py: what a Python Lambda does before its first
invocation when it builds its boto3 clients at start-up, then asks the Runtime API for work.

Usage: python_handler.py SERVICE...  (boto3 service names, e.g. rds ssm)
"""

import os
import sys
import urllib.request

import boto3

CLIENTS = [boto3.client(service) for service in sys.argv[1:]]

api = os.environ["AWS_LAMBDA_RUNTIME_API"]
urllib.request.urlopen(f"http://{api}/2018-06-01/runtime/invocation/next")
