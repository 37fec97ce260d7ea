#!/usr/bin/env python3
"""Expands infra/template.yaml into plain CloudFormation and writes every IAM principal's policies.

The emulator suite evaluates each recorded AWS call against the policies of the principal that
makes it in production. This script is the policy side: it reads the SAM template (never a copy of
it), expands it with aws-sam-translator using samconfig.toml's parameter overrides, resolves the
intrinsics (Ref, Fn::Sub, Fn::GetAtt, Fn::If, Fn::Join, Fn::Select, conditions, pseudo parameters)
for a fixed account, region and stack name, and writes one JSON document:

  principals      every AWS::IAM::Role: its ARN, inline policies, managed policy ARNs, the service
                  that assumes it and the resources that run as it (functions, state machines,
                  CodeBuild projects, schedules)
  functions       per Lambda function: logical id, code folder (functions/<step>), ARN, role,
                  environment variables
  stateMachines   ARN, role, resolved DefinitionSubstitutions
  projects        CodeBuild projects: name, ARN, service role, environment variables
  schedules       Scheduler schedules: target ARN, role and input
  rules           EventBridge rules: ARN, resolved event pattern, target ARNs
  tables          DynamoDB tables: name, ARN, key schema, attributes, indexes, TTL attribute
  buckets         per bucket name: ARN and the KMS key its objects are encrypted with
  resourcePolicies  resource-based policies (S3 bucket policies, KMS key policies, Lambda
                  permissions), keyed by the resource ARN they protect
  resources       every resource's Ref and ARN

Physical names the template does not set are `<stack>-<LogicalId>` (CloudFormation appends a random
suffix; a fixed name keeps the output deterministic). Usage:

  policies.py --template infra/template.yaml --config samconfig.toml [--env default]
              [--account 123456789012] [--region eu-west-1] [--out FILE]
"""

import argparse
import copy
import json
import os
import re
import sys
import tomllib

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

PARTITION = "aws"
NO_VALUE = object()


class Unresolved(Exception):
    pass


class EmptyPolicyLoader:
    """Managed policies are referenced by ARN in the template; no name lookups are needed."""

    def load(self):
        return {}


def parse_overrides(config_path, env):
    with open(config_path, "rb") as f:
        cfg = tomllib.load(f)
    deploy = cfg.get(env, {}).get("deploy", {}).get("parameters", {})
    raw = deploy.get("parameter_overrides", [])
    if isinstance(raw, str):
        raw = re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', raw)
        raw = [f"{k}={v}" for k, v in raw]
    out = {}
    for item in raw:
        k, _, v = item.partition("=")
        v = v.strip()
        if len(v) >= 2 and v[0] == v[-1] == '"':
            v = v[1:-1]
        out[k.strip()] = v
    return out, deploy.get("stack_name", "tenantflow")


def prepare(template):
    """Local paths (CodeUri, DefinitionUri) become placeholder S3 URIs: the translator needs
    packaged locations, and only the roles matter here. The original paths are kept aside."""
    code_uris, definition_uris = {}, {}
    for lid, res in template.get("Resources", {}).items():
        props = res.get("Properties", {})
        if res.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            code_uris[lid] = props["CodeUri"]
            props["CodeUri"] = f"s3://placeholder/{lid}.zip"
        if res.get("Type") == "AWS::Serverless::StateMachine" and isinstance(props.get("DefinitionUri"), str):
            definition_uris[lid] = props["DefinitionUri"]
            props["DefinitionUri"] = f"s3://placeholder/{lid}.asl.json"
    return code_uris, definition_uris


class Resolver:
    def __init__(self, cfn, params, account, region, stack):
        self.cfn = cfn
        self.resources = cfn.get("Resources", {})
        self.account, self.region, self.stack = account, region, stack
        self.params = {}
        for name, spec in cfn.get("Parameters", {}).items():
            if name in params:
                v = params[name]
            elif "Default" in spec:
                v = spec["Default"]
            else:
                raise Unresolved(f"parameter {name} has no value in the config and no default")
            if str(spec.get("Type", "")).startswith("List<") or spec.get("Type") == "CommaDelimitedList":
                v = [x.strip() for x in str(v).split(",")] if v != "" else []
            else:
                v = str(v)
            self.params[name] = v
        self.pseudo = {
            "AWS::AccountId": account,
            "AWS::Region": region,
            "AWS::Partition": PARTITION,
            "AWS::StackName": stack,
            "AWS::StackId": f"arn:{PARTITION}:cloudformation:{region}:{account}:stack/{stack}/00000000-0000-0000-0000-000000000000",
            "AWS::URLSuffix": "amazonaws.com",
        }
        self.conditions = {}
        self.names = {lid: self._physical_name(lid, res) for lid, res in self.resources.items()}

    # ---------------------------------------------------------------- names and attributes
    def _physical_name(self, lid, res):
        props = res.get("Properties", {})
        key = {
            "AWS::S3::Bucket": "BucketName",
            "AWS::Lambda::Function": "FunctionName",
            "AWS::IAM::Role": "RoleName",
            "AWS::StepFunctions::StateMachine": "StateMachineName",
            "AWS::CodeBuild::Project": "Name",
            "AWS::Logs::LogGroup": "LogGroupName",
            "AWS::SQS::Queue": "QueueName",
            "AWS::SNS::Topic": "TopicName",
            "AWS::Events::Rule": "Name",
            "AWS::Scheduler::Schedule": "Name",
            "AWS::KMS::Alias": "AliasName",
            "AWS::DynamoDB::Table": "TableName",
        }.get(res.get("Type"))
        if key and key in props:
            return ("deferred", key)
        return f"{self.stack}-{lid}"[:64]

    def name(self, lid):
        n = self.names[lid]
        if isinstance(n, tuple):
            self.names[lid] = None  # cycle guard
            n = self.resolve(self.resources[lid]["Properties"][n[1]])
            self.names[lid] = n
        if n is None:
            raise Unresolved(f"cyclic name of {lid}")
        return n

    def arn(self, lid):
        t = self.resources[lid]["Type"]
        n = self.name(lid)
        a, r, p = self.account, self.region, PARTITION
        return {
            "AWS::S3::Bucket": f"arn:{p}:s3:::{n}",
            "AWS::KMS::Key": f"arn:{p}:kms:{r}:{a}:key/{self.key_id(lid)}",
            "AWS::SQS::Queue": f"arn:{p}:sqs:{r}:{a}:{n}",
            "AWS::Logs::LogGroup": f"arn:{p}:logs:{r}:{a}:log-group:{n}:*",
            "AWS::Lambda::Function": f"arn:{p}:lambda:{r}:{a}:function:{n}",
            "AWS::IAM::Role": f"arn:{p}:iam::{a}:role/{n}",
            "AWS::StepFunctions::StateMachine": f"arn:{p}:states:{r}:{a}:stateMachine:{n}",
            "AWS::CodeBuild::Project": f"arn:{p}:codebuild:{r}:{a}:project/{n}",
            "AWS::Events::Rule": f"arn:{p}:events:{r}:{a}:rule/{n}",
            "AWS::SNS::Topic": f"arn:{p}:sns:{r}:{a}:{n}",
            "AWS::Scheduler::Schedule": f"arn:{p}:scheduler:{r}:{a}:schedule/default/{n}",
            "AWS::DynamoDB::Table": f"arn:{p}:dynamodb:{r}:{a}:table/{n}",
        }.get(t) or self._unsupported(lid, "Arn")

    def key_id(self, lid):
        import uuid

        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.stack}/{lid}"))

    def _unsupported(self, lid, what):
        raise Unresolved(f"{what} of {lid} ({self.resources[lid]['Type']}) is not modelled")

    def ref(self, name):
        if name in self.pseudo:
            return self.pseudo[name]
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.params:
            return self.params[name]
        if name not in self.resources:
            raise Unresolved(f"Ref {name}")
        t = self.resources[name]["Type"]
        if t in ("AWS::StepFunctions::StateMachine", "AWS::SNS::Topic"):
            return self.arn(name)
        if t == "AWS::KMS::Key":
            return self.key_id(name)
        if t == "AWS::SQS::Queue":
            return f"https://sqs.{self.region}.amazonaws.com/{self.account}/{self.name(name)}"
        return self.name(name)

    def getatt(self, lid, attr):
        if lid not in self.resources:
            raise Unresolved(f"GetAtt {lid}.{attr}")
        if attr == "Arn":
            return self.arn(lid)
        t = self.resources[lid]["Type"]
        if attr in ("QueueName", "TopicName", "Name", "LogGroupName") or (attr == "RoleId" and t == "AWS::IAM::Role"):
            return self.name(lid)
        if attr == "KeyId":
            return self.key_id(lid)
        self._unsupported(lid, attr)

    # ---------------------------------------------------------------- conditions and intrinsics
    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = bool(self.resolve(self.cfn["Conditions"][name]))
        return self.conditions[name]

    def resolve(self, v):
        if isinstance(v, list):
            out = [self.resolve(x) for x in v]
            return [x for x in out if x is not NO_VALUE]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            (k, arg), = v.items()
            if k == "Ref":
                return self.ref(arg)
            if k == "Fn::GetAtt":
                lid, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.getatt(lid, attr)
            if k == "Fn::Sub":
                return self.sub(arg)
            if k == "Fn::If":
                cond, yes, no = arg
                return self.resolve(yes if self.condition(cond) else no)
            if k == "Fn::Join":
                sep, items = arg
                return sep.join(str(x) for x in self.resolve(items))
            if k == "Fn::Select":
                i, items = arg
                return self.resolve(items)[int(self.resolve(i))]
            if k == "Fn::Split":
                sep, s = arg
                return str(self.resolve(s)).split(sep)
            if k == "Fn::Equals":
                a, b = (self.resolve(x) for x in arg)
                return a == b
            if k == "Fn::Not":
                return not self.resolve(arg[0])
            if k == "Fn::And":
                return all(self.resolve(x) for x in arg)
            if k == "Fn::Or":
                return any(self.resolve(x) for x in arg)
            if k == "Condition":
                return self.condition(arg)
            if k.startswith("Fn::"):
                raise Unresolved(f"intrinsic {k} is not modelled")
        out = {}
        for k, x in v.items():
            r = self.resolve(x)
            if r is not NO_VALUE:
                out[k] = r
        return out

    def sub(self, arg):
        text, local = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        local = {k: self.resolve(x) for k, x in local.items()}

        def one(m):
            expr = m.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in local:
                val = local[expr]
            elif "." in expr and not expr.startswith("AWS::"):
                lid, attr = expr.split(".", 1)
                val = self.getatt(lid, attr)
            else:
                val = self.ref(expr)
            if isinstance(val, list):
                val = ",".join(val)
            return str(val)

        return re.sub(r"\$\{([^}]+)\}", one, text)


def role_lid(resolver, role_value):
    """The logical id of the AWS::IAM::Role a Role property (a GetAtt/Ref) points at."""
    if isinstance(role_value, dict):
        if "Fn::GetAtt" in role_value:
            a = role_value["Fn::GetAtt"]
            return a[0] if isinstance(a, list) else a.split(".", 1)[0]
        if "Ref" in role_value:
            return role_value["Ref"]
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--template", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--env", default="default")
    ap.add_argument("--account", default="123456789012")
    ap.add_argument("--region", default="eu-west-1")
    ap.add_argument("--out")
    args = ap.parse_args()

    # The translator asks for a region (pseudo parameters) before it reads the ones passed in.
    os.environ["AWS_DEFAULT_REGION"] = args.region
    with open(args.template) as f:
        sam = yaml_parse(f.read())
    params, stack = parse_overrides(args.config, args.env)
    code_uris, definition_uris = prepare(sam)
    sam_params = {k: v for k, v in params.items()}
    sam_params.update({"AWS::Region": args.region, "AWS::AccountId": args.account, "AWS::Partition": PARTITION})
    cfn = transform(copy.deepcopy(sam), sam_params, EmptyPolicyLoader())
    r = Resolver(cfn, params, args.account, args.region, stack)
    res = cfn["Resources"]

    principals = {}
    for lid, body in res.items():
        if body["Type"] != "AWS::IAM::Role":
            continue
        props = body.get("Properties", {})
        trust = r.resolve(props.get("AssumeRolePolicyDocument", {}))
        services = []
        for st in trust.get("Statement", []):
            svc = st.get("Principal", {}).get("Service", [])
            services += svc if isinstance(svc, list) else [svc]
        principals[lid] = {
            "arn": r.arn(lid),
            "assumedBy": services,
            "policies": [
                {"name": p["PolicyName"] if isinstance(p["PolicyName"], str) else r.resolve(p["PolicyName"]),
                 "document": r.resolve(p["PolicyDocument"])}
                for p in r.resolve(props.get("Policies", []))
            ],
            "managedPolicies": r.resolve(props.get("ManagedPolicyArns", [])),
            "usedBy": [],
        }

    functions, machines, projects, schedules = {}, {}, {}, []
    for lid, body in res.items():
        t, props = body["Type"], body.get("Properties", {})
        if t == "AWS::Lambda::Function":
            role = role_lid(r, props.get("Role"))
            code = code_uris.get(lid, "")
            step = code.rstrip("/").split("/")[-1] if code else lid
            functions[step] = {
                "logicalId": lid,
                "codeUri": code,
                "name": r.name(lid),
                "arn": r.arn(lid),
                "role": role,
                "environment": r.resolve(props.get("Environment", {}).get("Variables", {})),
            }
            if role in principals:
                principals[role]["usedBy"].append({"type": t, "logicalId": lid, "step": step})
        elif t == "AWS::StepFunctions::StateMachine":
            role = role_lid(r, props.get("RoleArn"))
            machines[lid] = {
                "name": r.name(lid),
                "arn": r.arn(lid),
                "role": role,
                "definitionUri": definition_uris.get(lid),
                "definitionSubstitutions": r.resolve(props.get("DefinitionSubstitutions", {})),
            }
            if role in principals:
                principals[role]["usedBy"].append({"type": t, "logicalId": lid})
        elif t == "AWS::CodeBuild::Project":
            role = role_lid(r, props.get("ServiceRole"))
            projects[lid] = {
                "name": r.name(lid),
                "arn": r.arn(lid),
                "role": role,
                "environment": r.resolve(props.get("Environment", {}).get("EnvironmentVariables", [])),
            }
            if role in principals:
                principals[role]["usedBy"].append({"type": t, "logicalId": lid})
        elif t == "AWS::Scheduler::Schedule":
            target = props.get("Target", {})
            role = role_lid(r, target.get("RoleArn"))
            schedules.append({"logicalId": lid, "targetArn": r.resolve(target.get("Arn")), "role": role,
                              "input": r.resolve(target.get("Input"))})
            if role in principals:
                principals[role]["usedBy"].append({"type": t, "logicalId": lid})

    # EventBridge rules: their (resolved) pattern and targets, so the harness routes events as
    # EventBridge would and evaluates each delivery against the target's resource policy.
    rules = []
    for lid, body in res.items():
        if body["Type"] != "AWS::Events::Rule":
            continue
        props = body.get("Properties", {})
        # A schedule rule (ScheduleExpression, no EventPattern) matches no event.
        if "EventPattern" not in props:
            continue
        rules.append({
            "logicalId": lid,
            "arn": r.arn(lid),
            "pattern": r.resolve(props.get("EventPattern", {})),
            "eventBus": r.resolve(props.get("EventBusName", "default")),
            "targets": [{"id": t.get("Id"), "arn": r.resolve(t.get("Arn"))} for t in props.get("Targets", [])],
        })

    resource_policies = {}

    def add_policy(arn, kind, doc):
        resource_policies.setdefault(arn, []).append({"kind": kind, "document": doc})

    for lid, body in res.items():
        t, props = body["Type"], body.get("Properties", {})
        if t == "AWS::S3::BucketPolicy":
            bucket = r.resolve(props["Bucket"])
            add_policy(f"arn:{PARTITION}:s3:::{bucket}", "bucket", r.resolve(props["PolicyDocument"]))
        elif t == "AWS::KMS::Key" and "KeyPolicy" in props:
            add_policy(r.arn(lid), "key", r.resolve(props["KeyPolicy"]))
        elif t == "AWS::Lambda::Permission":
            fn = r.resolve(props["FunctionName"])
            arn = fn if fn.startswith("arn:") else f"arn:{PARTITION}:lambda:{args.region}:{args.account}:function:{fn}"
            st = {"Sid": lid, "Effect": "Allow", "Principal": {"Service": r.resolve(props["Principal"])},
                  "Action": r.resolve(props["Action"]), "Resource": arn}
            if "SourceArn" in props:
                st["Condition"] = {"ArnLike": {"AWS:SourceArn": r.resolve(props["SourceArn"])}}
            add_policy(arn, "lambda-permission", {"Version": "2012-10-17", "Statement": [st]})

    # Buckets encrypted with a customer key: every object read or write by a caller is also
    # authorised as kms:Decrypt / kms:GenerateDataKey on that key, under the caller's own policies.
    buckets = {}
    for lid, body in res.items():
        if body["Type"] != "AWS::S3::Bucket":
            continue
        props = r.resolve(body.get("Properties", {}))
        key = None
        for rule in props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", []):
            d = rule.get("ServerSideEncryptionByDefault", {})
            if d.get("SSEAlgorithm") in ("aws:kms", "aws:kms:dsse"):
                key = d.get("KMSMasterKeyID")
        buckets[r.name(lid)] = {"logicalId": lid, "arn": r.arn(lid), "kmsKeyArn": key}

    # DynamoDB tables, so the harness can create them in the emulator as CloudFormation would.
    tables = []
    for lid, body in res.items():
        if body["Type"] != "AWS::DynamoDB::Table":
            continue
        props = r.resolve(body.get("Properties", {}))
        tables.append({
            "logicalId": lid,
            "name": r.name(lid),
            "arn": f"arn:{PARTITION}:dynamodb:{args.region}:{args.account}:table/{r.name(lid)}",
            "keySchema": props.get("KeySchema", []),
            "attributeDefinitions": props.get("AttributeDefinitions", []),
            "globalSecondaryIndexes": props.get("GlobalSecondaryIndexes", []),
            "ttlAttribute": (props.get("TimeToLiveSpecification") or {}).get("AttributeName"),
        })

    resources = {}
    for lid, body in res.items():
        entry = {"type": body["Type"]}
        try:
            entry["ref"] = r.ref(lid)
        except Unresolved:
            pass
        try:
            entry["arn"] = r.arn(lid)
        except Unresolved:
            pass
        resources[lid] = entry

    out = {
        "account": args.account,
        "region": args.region,
        "partition": PARTITION,
        "stack": stack,
        "parameters": r.params,
        "conditions": {c: r.condition(c) for c in cfn.get("Conditions", {})},
        "principals": principals,
        "functions": functions,
        "stateMachines": machines,
        "projects": projects,
        "schedules": schedules,
        "rules": rules,
        "tables": tables,
        "resourcePolicies": resource_policies,
        "buckets": buckets,
        "resources": resources,
    }
    text = json.dumps(out, indent=2, sort_keys=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    try:
        main()
    except Unresolved as e:
        print(f"policies.py: cannot resolve {e}", file=sys.stderr)
        sys.exit(2)
