// Evaluates recorded AWS calls against the IAM policies of the principal that makes each call.
//
//   node evaluate.mjs POLICIES.json CALLS.json  >  RESULTS.json
//
// POLICIES.json is the output of policies.py (the expanded template). CALLS.json is an array of
//   { "principal": "<role logical id>", "action": "rds:CreateDBSnapshot",
//     "resource": "arn:aws:rds:…:snapshot:…" | "*", "context": { "s3:prefix": "releases/" },
//     (or "principal": "service:events.amazonaws.com" for a service principal)
//     "label": "<free text naming the call, e.g. the operation and test>" }
// The result is an array, one entry per call, in order:
//   { ...call, "decision": "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied" | "Unfillable" | "Invalid",
//     "detail": "<why, for anything but Allowed>", "missingKeys": [...] }
//
// Per call it runs @cloud-copilot/iam-simulate (iam-data: which resource types the action is
// authorised against) with the role's inline policies as identity policies and, when the resource
// has one, the resource's policy (bucket policy, key policy, Lambda permissions). Managed policies
// (AWSLambdaBasicExecutionRole, AWSXrayWriteOnlyAccess) are AWS-owned documents that are not in the
// template; they are listed in the output and grant nothing the recorded calls need.
//
// Every condition key used by a statement that applies to the call (its Action matches; for a
// resource policy, its Principal can be the caller) must be present in the call's context; if one is
// not, the call is "Unfillable" rather than silently evaluated with the key missing. The one
// exception is a key the caller knows is absent: a call may carry "absentKeyPrefixes" (e.g.
// ["aws:ResourceTag/"] when the harness read the resource's tags, and every tag it has is in the
// context), and a missing key with one of those prefixes is then evaluated as absent, as IAM does.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

// The package lives in the repository's git-ignored .tools/node (installed by .ci/tools/node.sh),
// not next to this script, so it is imported by path.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const modules = process.env.TENANTFLOW_NODE_MODULES || join(root, '.tools', 'node', 'node_modules')
const { runSimulation } = await import(
  pathToFileURL(join(modules, '@cloud-copilot', 'iam-simulate', 'dist', 'esm', 'index.js')).href
)

const [policiesPath, callsPath] = process.argv.slice(2)
if (!policiesPath || !callsPath) {
  console.error('usage: node evaluate.mjs POLICIES.json CALLS.json')
  process.exit(2)
}
const pol = JSON.parse(readFileSync(policiesPath, 'utf8'))
const calls = JSON.parse(readFileSync(callsPath, 'utf8'))

const list = (v) => (v === undefined ? [] : Array.isArray(v) ? v : [v])
const globToRegex = (g) =>
  new RegExp('^' + g.split('*').map((s) => s.split('?').map(escape).join('.')).join('.*') + '$', 'i')
const escape = (s) => s.replace(/[.+^${}()|[\]\\]/g, '\\$&')

function actionMatches(st, action) {
  if (st.Action !== undefined) return list(st.Action).some((a) => globToRegex(a).test(action))
  if (st.NotAction !== undefined) return !list(st.NotAction).some((a) => globToRegex(a).test(action))
  return false
}

function principalCanBe(st, callerArn, account) {
  if (st.Principal === undefined) return st.NotPrincipal !== undefined
  if (st.Principal === '*') return true
  if (!callerArn.startsWith('arn:')) return list(st.Principal.Service).includes(callerArn)
  const aws = list(st.Principal.AWS)
  const roleArn = callerArn.replace(/^arn:aws:sts::(\d+):assumed-role\/([^/]+)\/.*$/, 'arn:aws:iam::$1:role/$2')
  return aws.some(
    (p) => p === '*' || p === account || p === `arn:aws:iam::${account}:root` || p === roleArn || p === callerArn
  )
}

function conditionKeys(st) {
  const keys = []
  for (const op of Object.values(st.Condition || {})) keys.push(...Object.keys(op))
  return keys
}

function resourcePolicyFor(resource) {
  // The most specific protected ARN that the resource falls under (bucket ARN covers its objects).
  let best
  for (const [arn, docs] of Object.entries(pol.resourcePolicies || {})) {
    if (resource === arn || resource.startsWith(arn + '/') || resource.startsWith(arn + ':')) {
      if (!best || arn.length > best[0].length) best = [arn, docs]
    }
  }
  if (!best) return undefined
  return { Version: '2012-10-17', Statement: best[1].flatMap((d) => list(d.document.Statement)) }
}

// A request for "every instance" (DescribeDBInstances without an identifier) is authorised by AWS
// against the literal ARN `…:db:*`: a policy pattern `db:xy-*` does not match it. iam-simulate reads
// a `*` in the request as "some resource matching this pattern" and allows when any overlaps, so the
// request's `*` is replaced by a character no policy spells: only a policy `*` then matches it.
const LITERAL_STAR = '\u2731'
const literalResource = (r) => (r === '*' ? r : r.replaceAll('*', LITERAL_STAR))

const results = []
for (const call of calls) {
  const base = { ...call }
  // `service:<name>`: an AWS service principal (EventBridge delivering to a function), judged by
  // the resource's policy alone.
  const service = call.principal.startsWith('service:') ? call.principal.slice(8) : undefined
  const principal = service
    ? { arn: service, policies: [] }
    : pol.principals[call.principal]
  if (!principal) {
    results.push({ ...base, decision: 'Invalid', detail: `no principal ${call.principal} in the template` })
    continue
  }
  const callerArn = service ?? `arn:aws:sts::${pol.account}:assumed-role/${principal.arn.split('/').pop()}/emulator`
  const identityPolicies = principal.policies.map((p) => ({ name: p.name, policy: p.document }))
  const resourcePolicy = call.resource === '*' ? undefined : resourcePolicyFor(call.resource)
  const context = Object.fromEntries(Object.entries(call.context || {}).map(([k, v]) => [k.toLowerCase(), v]))

  const applicable = [
    ...identityPolicies.flatMap((p) => list(p.policy.Statement)),
    ...list(resourcePolicy?.Statement).filter((st) => principalCanBe(st, callerArn, pol.account))
  ].filter((st) => actionMatches(st, call.action))
  const absent = list(call.absentKeyPrefixes).map((p) => p.toLowerCase())
  const missingKeys = [...new Set(applicable.flatMap(conditionKeys))].filter(
    (k) => !(k.toLowerCase() in context) && !absent.some((p) => k.toLowerCase().startsWith(p))
  )
  if (missingKeys.length > 0) {
    results.push({
      ...base,
      decision: 'Unfillable',
      missingKeys,
      detail: `condition key(s) ${missingKeys.join(', ')} used by the policy are not filled from the call`
    })
    continue
  }

  const simulation = {
    request: {
      principal: callerArn,
      action: call.action,
      resource: { resource: literalResource(call.resource), accountId: pol.account },
      contextVariables: call.context || {}
    },
    identityPolicies,
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    ...(resourcePolicy ? { resourcePolicy } : {})
  }
  const res = await runSimulation(simulation, {})
  if (res.resultType === 'error') {
    results.push({ ...base, decision: 'Invalid', detail: `iam-simulate: ${JSON.stringify(res.errors)}` })
    continue
  }
  const out = { ...base, decision: res.overallResult }
  if (res.resultType === 'single' && res.result.ignoredContextKeys?.length) {
    out.ignoredContextKeys = res.result.ignoredContextKeys
  }
  if (res.overallResult !== 'Allowed') {
    out.detail =
      res.overallResult === 'ExplicitlyDenied'
        ? 'an explicit Deny statement applies'
        : `no statement of ${call.principal} allows ${call.action} on ${call.resource}`
  }
  results.push(out)
}
process.stdout.write(JSON.stringify(results, null, 2) + '\n')
