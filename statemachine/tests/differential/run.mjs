// Runs conformance cases through aws-local-stepfunctions, the independent JS interpreter
// of the Amazon States Language, so statemachine/tests/differential.rs can compare it with
// our engine.
//
// stdin:  {"cases": [<case>, ...]}   (the format of statemachine/tests/conformance/*.json)
// stdout: [{"name", "status": "SUCCEEDED"|"FAILED"|"INVALID"|"HARNESS_ERROR",
//           "output"?, "error"?, "cause"?, "message"?}, ...]   in input order
//
// Module resolution: set TENANTFLOW_ALSF to the aws-local-stepfunctions package directory
// (the Rust side does); otherwise the normal node_modules lookup applies.
//
// Task behaviours are the declarative ones of the case format; both harnesses implement them
// the same way. aws-local-stepfunctions keys task overrides by state name, so each Task state
// gets a handler that serves the queue of its Resource. It has no task tokens: the callback
// behaviours degrade to a plain return/throw/hang here (cases that depend on tokens are
// marked "differential": false). Waits and retry intervals are overridden to 0 ms: outputs do
// not depend on them, and the JS engine sleeps in real time.

import { pathToFileURL } from 'node:url';
import path from 'node:path';

const alsfDir = process.env.TENANTFLOW_ALSF;
const { StateMachine } = alsfDir
  ? await import(pathToFileURL(path.join(alsfDir, 'build', 'main.node.esm.js')).href)
  : await import('aws-local-stepfunctions');

const CASE_TIMEOUT_MS = Number(process.env.TENANTFLOW_DIFF_CASE_TIMEOUT_MS ?? 15000);

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = [];
    process.stdin.on('data', (c) => chunks.push(c));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', reject);
  });
}

function deepEqual(a, b) {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null) return false;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
  }
  if (typeof a === 'object') {
    if (Array.isArray(b)) return false;
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

/** Walks a (sub-)machine and calls visit(name, state) for every state, nested ones included. */
function walkStates(machine, visit) {
  for (const [name, state] of Object.entries(machine?.States ?? {})) {
    visit(name, state);
    for (const branch of state.Branches ?? []) walkStates(branch, visit);
    if (state.ItemProcessor) walkStates(state.ItemProcessor, visit);
    if (state.Iterator) walkStates(state.Iterator, visit);
  }
}

function taskError(spec) {
  const err = new Error(spec.cause ?? '');
  err.name = spec.error;
  return err;
}

function hang() {
  return new Promise(() => {});
}

/** Applies one declarative behaviour to a task input. */
function behave(b, input) {
  if ('byInput' in b) {
    const hit = b.byInput.find((entry) => deepEqual(entry.input, input));
    return behave(hit ? hit.then : b.otherwise, input);
  }
  if ('return' in b) return structuredClone(b.return);
  if (b.returnInput) return structuredClone(input);
  if ('fail' in b) throw taskError(b.fail);
  if ('returnLargeString' in b) return 'x'.repeat(b.returnLargeString);
  if (b.hang || b.noCallback) return hang();
  if ('callbackSuccess' in b) return structuredClone(b.callbackSuccess);
  if ('callbackFailure' in b) throw taskError(b.callbackFailure);
  throw new Error(`unknown task behaviour ${JSON.stringify(b)}`);
}

function buildOverrides(c) {
  const taskResourceLocalHandlers = {};
  const waitTimeOverrides = {};
  const retryIntervalOverrides = {};
  const calls = new Map(); // resource -> number of calls so far
  walkStates(c.definition, (name, state) => {
    if (state.Type === 'Task') {
      const resource = state.Resource;
      taskResourceLocalHandlers[name] = async (input) => {
        const queue = c.tasks?.[resource];
        if (!queue || queue.length === 0) {
          throw taskError({ error: 'States.TaskFailed', cause: `no task behaviour for ${resource}` });
        }
        const n = calls.get(resource) ?? 0;
        calls.set(resource, n + 1);
        return behave(queue[Math.min(n, queue.length - 1)], input);
      };
    }
    if (state.Type === 'Wait') waitTimeOverrides[name] = 0;
    if (state.Retry) retryIntervalOverrides[name] = 0;
  });
  return { taskResourceLocalHandlers, waitTimeOverrides, retryIntervalOverrides };
}

function describeFailure(err) {
  // ExecutionError wraps the RuntimeError that failed the execution in `cause`.
  const inner = err?.cause instanceof Error ? err.cause : err;
  return { error: inner?.name ?? 'Error', cause: inner?.message ?? String(err) };
}

async function runCase(c) {
  let machine;
  try {
    // asl-validator costs ~0.1 s per definition (it recompiles its schemas), which dominates
    // the batch. Validation only decides the INVALID cases, so only those (and any case that
    // asks with "jsValidate") are validated; a definition the JS side cannot run still shows
    // up as a failed execution.
    const validate = c.expect?.status === 'INVALID' || c.jsValidate === true;
    machine = new StateMachine(c.definition, validate ? undefined : { validationOptions: { noValidate: true } });
  } catch (err) {
    return { status: 'INVALID', message: String(err?.message ?? err) };
  }
  const context = { Execution: { Name: c.name } };
  const execution = machine.run(structuredClone(c.input ?? {}), {
    overrides: buildOverrides(c),
    context,
  });
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve({ status: 'HARNESS_ERROR', message: `timed out after ${CASE_TIMEOUT_MS} ms` }), CASE_TIMEOUT_MS);
  });
  const finished = execution.result.then(
    (output) => ({ status: 'SUCCEEDED', output: output ?? null }),
    (err) => ({ status: 'FAILED', ...describeFailure(err) }),
  );
  try {
    const result = await Promise.race([finished, timeout]);
    if (result.status === 'HARNESS_ERROR') execution.abort();
    return result;
  } finally {
    clearTimeout(timer);
  }
}

const { cases } = JSON.parse(await readStdin());
const results = await Promise.all(
  cases.map(async (c) => {
    try {
      return { name: c.name, ...(await runCase(c)) };
    } catch (err) {
      return { name: c.name, status: 'HARNESS_ERROR', message: String(err?.stack ?? err) };
    }
  }),
);
// Aborted or hanging executions may keep timers alive: exit once the answer is flushed.
process.stdout.write(JSON.stringify(results), () => process.exit(0));
