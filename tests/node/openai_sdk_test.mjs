// The router's OpenAI-compatible HTTP API, driven through the official OpenAI
// SDK for Node (npm package `openai`): every request is built, sent and parsed
// by the SDK's own client, streaming iterator and error classes.
//
//   node tests/node/openai_sdk_test.mjs --worker BUILD/worker/wf_worker \
//       --router BUILD/router/wf_router [--golden-dir DIR]
//   node tests/node/openai_sdk_test.mjs --check-install
//
// --golden-dir defaults to $WF_GOLDEN_DIR, else REPO/../shared/golden; the
// model is bitnet-synth-h256-l4.gguf from there. The SDK must be installed
// first: `npm ci --prefix tests/node` (CTest's node_openai_sdk_install does it
// when --check-install finds node_modules missing or not at the locked version).
//
// Starts two workers and a router (all on 127.0.0.1, ports chosen by the
// kernel and read from their start-up lines), plus a second router that
// requires an API key. Every child is killed when the test ends, also when it
// fails. Uses node's built-in test runner: exit status 0 when all tests pass,
// 1 when one fails, 2 on bad usage or a missing SDK install.

import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import assert from 'node:assert/strict';
import { describe, test, before, after } from 'node:test';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, '..', '..');
const MODEL_FILE = 'bitnet-synth-h256-l4.gguf';
const MODEL_NAME = 'bitnet-synth-h256-l4';

// Bounds on every wait, in milliseconds. Generous: the machine may be shared.
const STARTUP_TIMEOUT_MS = 60_000;
const REQUEST_TIMEOUT_MS = 120_000;
const TEST_TIMEOUT_MS = 180_000;
const WHOLE_RUN_TIMEOUT_MS = 540_000;
const STOP_TIMEOUT_MS = 10_000;

// --check-install: exit 0 when node_modules holds the SDK version that
// package-lock.json pins, else 1 (the caller then runs `npm ci`).
function sdkInstallMatchesLock() {
  try {
    const lock = JSON.parse(readFileSync(path.join(HERE, 'package-lock.json'), 'utf8'));
    const installed = JSON.parse(readFileSync(path.join(HERE, 'node_modules', 'openai', 'package.json'), 'utf8'));
    return lock.packages['node_modules/openai'].version === installed.version;
  } catch {
    return false;
  }
}

function usage(message) {
  process.stderr.write(`openai_sdk_test: ${message}\n`);
  process.stderr.write(
    'usage: node openai_sdk_test.mjs --worker WF_WORKER --router WF_ROUTER [--golden-dir DIR]\n');
  process.exit(2);
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      worker: { type: 'string' },
      router: { type: 'string' },
      'golden-dir': { type: 'string' },
      'check-install': { type: 'boolean' },
    },
    strict: true,
  }));
} catch (e) {
  usage(e.message);
}
if (args['check-install']) process.exit(sdkInstallMatchesLock() ? 0 : 1);
if (!args.worker || !existsSync(args.worker)) usage(`--worker: no such file: ${args.worker}`);
if (!args.router || !existsSync(args.router)) usage(`--router: no such file: ${args.router}`);
const goldenDir =
    args['golden-dir'] ?? process.env.WF_GOLDEN_DIR ?? path.join(REPO_ROOT, '..', 'shared', 'golden');
const modelPath = path.join(goldenDir, MODEL_FILE);
if (!existsSync(modelPath)) usage(`model not found: ${modelPath} (set --golden-dir or WF_GOLDEN_DIR)`);

let OpenAI;
try {
  ({ default: OpenAI } = await import('openai'));
} catch (e) {
  usage(`the openai package is not installed (${e.message}); run: npm ci --prefix ${HERE}`);
}

// ------------------------------------------------------------ child processes

const children = [];

function killAll(signal) {
  for (const c of children) {
    if (c.proc.exitCode === null && c.proc.signalCode === null) {
      try {
        c.proc.kill(signal);
      } catch {
        // Already gone.
      }
    }
  }
}

process.on('exit', () => killAll('SIGKILL'));
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    killAll('SIGKILL');
    process.exit(1);
  });
}
// Whatever hangs, the run ends and takes its children with it.
setTimeout(() => {
  process.stderr.write(`openai_sdk_test: the whole run exceeded ${WHOLE_RUN_TIMEOUT_MS} ms; aborting\n`);
  dumpLogs();
  killAll('SIGKILL');
  process.exit(1);
}, WHOLE_RUN_TIMEOUT_MS).unref();

function dumpLogs() {
  for (const c of children) {
    process.stderr.write(`----- ${c.name} (last output) -----\n${c.log.slice(-4000)}\n`);
  }
}

// Starts `bin args...` and resolves with the first match of `pattern` in its
// stdout or stderr (line by line). Rejects if it exits or times out first.
function startChild(name, bin, argv, pattern, env = process.env) {
  const proc = spawn(bin, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const child = { name, proc, log: '' };
  children.push(child);
  return new Promise((resolve, reject) => {
    let settled = false;
    const pending = { stdout: '', stderr: '' };
    const timer = setTimeout(() => {
      finish(new Error(`${name}: no line matching ${pattern} within ${STARTUP_TIMEOUT_MS} ms`));
    }, STARTUP_TIMEOUT_MS);
    function finish(err, match) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        err.message += `\n${name} output:\n${child.log.slice(-4000)}`;
        reject(err);
      } else {
        resolve({ child, match });
      }
    }
    for (const stream of ['stdout', 'stderr']) {
      proc[stream].setEncoding('utf8');
      proc[stream].on('data', (data) => {
        child.log = (child.log + data).slice(-64 * 1024);
        pending[stream] += data;
        let nl;
        while ((nl = pending[stream].indexOf('\n')) >= 0) {
          const line = pending[stream].slice(0, nl);
          pending[stream] = pending[stream].slice(nl + 1);
          const m = line.match(pattern);
          if (m) finish(null, m);
        }
      });
    }
    proc.on('error', (e) => finish(new Error(`${name}: cannot start ${bin}: ${e.message}`)));
    proc.on('exit', (code, signal) => {
      finish(new Error(`${name}: exited (code ${code}, signal ${signal}) before ${pattern} was printed`));
    });
  });
}

async function startWorker(name) {
  const { match } = await startChild(
      name, args.worker,
      ['-m', modelPath, '--host', '127.0.0.1', '--port', '0', '--metrics-port', '-1', '--threads', '1'],
      /wf_worker: grpc listening on 127\.0\.0\.1:(\d+)/);
  return Number(match[1]);
}

async function startRouter(name, workerPorts, env = process.env) {
  const { match } = await startChild(
      name, args.router,
      ['--workers', workerPorts.map((p) => `127.0.0.1:${p}`).join(','), '--host', '127.0.0.1',
       '--http-port', '0', '--grpc-port', '-1'],
      /wf_router: http listening on 127\.0\.0\.1:(\d+)/, env);
  const base = `http://127.0.0.1:${match[1]}`;
  await waitReady(base, workerPorts.length);
  return base;
}

// Polls /ready until the router reports `want` healthy workers (bounded).
async function waitReady(base, want) {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const r = await fetch(`${base}/ready`, { signal: AbortSignal.timeout(5_000) });
      last = `${r.status} ${await r.text()}`;
      if (r.status === 200 && JSON.parse(last.slice(4)).healthy_workers >= want) return;
    } catch (e) {
      last = e.message;
    }
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`${base}/ready did not report ${want} healthy workers within ${STARTUP_TIMEOUT_MS} ms; last: ${last}`);
}

async function stopAll() {
  killAll('SIGTERM');
  await Promise.all(children.map((c) => new Promise((resolve) => {
    if (c.proc.exitCode !== null || c.proc.signalCode !== null) return resolve();
    const t = setTimeout(() => {
      c.proc.kill('SIGKILL');
      resolve();
    }, STOP_TIMEOUT_MS);
    c.proc.on('exit', () => {
      clearTimeout(t);
      resolve();
    });
  })));
}

// ------------------------------------------------------------------- helpers

function makeClient(baseURL, apiKey = 'unused') {
  // No retries: a retried request would hide the status the router answered.
  return new OpenAI({ baseURL: `${baseURL}/v1`, apiKey, maxRetries: 0, timeout: REQUEST_TIMEOUT_MS });
}

// Awaits `promise` and asserts it rejects with SDK error class `cls`; returns the error.
async function expectSdkError(promise, cls, status) {
  let caught;
  try {
    await promise;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught, `expected ${cls.name}, but the request succeeded`);
  assert.ok(caught instanceof cls, `expected ${cls.name}, got ${caught?.constructor?.name}: ${caught?.message}`);
  assert.equal(caught.status, status);
  // OpenAI's envelope {"error": {message, type, param, code}}: the SDK hands
  // over the inner object.
  assert.equal(typeof caught.error, 'object');
  assert.equal(typeof caught.error.message, 'string');
  assert.ok(caught.error.message.length > 0);
  assert.equal(typeof caught.error.type, 'string');
  assert.ok('param' in caught.error, 'error envelope lacks "param"');
  assert.ok('code' in caught.error, 'error envelope lacks "code"');
  return caught;
}

function assertUsage(u) {
  assert.ok(u, 'usage missing');
  for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens']) {
    assert.ok(Number.isInteger(u[k]) && u[k] >= 0, `usage.${k} = ${u[k]}`);
  }
  assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
  assert.ok(u.prompt_tokens > 0);
}

// A system prompt of well over 64 tokens: shared by the repeated requests so
// that the second finds its prefix in a worker's KV cache.
const LONG_SYSTEM =
    'You are a careful assistant for a small research team. Answer briefly and precisely, ' +
    'cite the section of the handbook you rely on, never invent numbers, and say so plainly ' +
    'when a question falls outside the handbook. The handbook covers build steps, test ' +
    'procedures, deployment checklists, incident reviews, code review rules, naming ' +
    'conventions, release notes, and the on-call rotation for the serving cluster. ' +
    'Prefer short sentences and concrete commands over general advice.';

const GREEDY_CHAT = {
  model: MODEL_NAME,
  messages: [
    { role: 'system', content: LONG_SYSTEM },
    { role: 'user', content: 'How do I run the test suite?' },
  ],
  max_tokens: 8,
  temperature: 0,
};

// ---------------------------------------------------------------------- tests

describe('wf_router through the OpenAI Node SDK', { timeout: WHOLE_RUN_TIMEOUT_MS }, () => {
  let base;
  let client;
  let greedyContent;

  before(async () => {
    const ports = await Promise.all([startWorker('worker-0'), startWorker('worker-1')]);
    base = await startRouter('router', ports);
    client = makeClient(base);
  }, { timeout: 2 * STARTUP_TIMEOUT_MS + 10_000 });

  after(async () => {
    await stopAll();
  });

  test('models.list() lists the served model', { timeout: TEST_TIMEOUT_MS }, async () => {
    const ids = [];
    for await (const m of client.models.list()) {
      assert.equal(m.object, 'model');
      ids.push(m.id);
    }
    assert.ok(ids.includes(MODEL_NAME), `models: ${JSON.stringify(ids)}`);
  });

  test('chat.completions.create, non-streaming', { timeout: TEST_TIMEOUT_MS }, async () => {
    const r = await client.chat.completions.create({
      model: MODEL_NAME,
      messages: [{ role: 'user', content: 'Say something.' }],
      max_tokens: 8,
      temperature: 0,
    });
    assert.equal(r.object, 'chat.completion');
    assert.equal(typeof r.id, 'string');
    assert.equal(r.model, MODEL_NAME);
    assert.equal(r.choices.length, 1);
    const c = r.choices[0];
    assert.equal(c.index, 0);
    assert.equal(c.message.role, 'assistant');
    assert.equal(typeof c.message.content, 'string');
    assert.equal(c.finish_reason, 'length');
    assertUsage(r.usage);
    assert.equal(r.usage.completion_tokens, 8);
    assert.equal(typeof r.usage.prompt_tokens_details?.cached_tokens, 'number');
  });

  test('a repeated greedy request is identical and hits the prefix cache', { timeout: TEST_TIMEOUT_MS },
       async () => {
         const first = await client.chat.completions.create(GREEDY_CHAT);
         const second = await client.chat.completions.create(GREEDY_CHAT);
         assertUsage(first.usage);
         assertUsage(second.usage);
         assert.ok(first.usage.prompt_tokens >= 64, `prompt_tokens = ${first.usage.prompt_tokens}`);
         assert.equal(second.usage.prompt_tokens, first.usage.prompt_tokens);
         assert.equal(second.choices[0].message.content, first.choices[0].message.content);
         const cached = second.usage.prompt_tokens_details?.cached_tokens;
         assert.equal(typeof cached, 'number');
         assert.ok(cached > 0, `second request: cached_tokens = ${cached}, want > 0`);
         assert.ok(cached < second.usage.prompt_tokens);
         greedyContent = first.choices[0].message.content;
       });

  test('chat streaming with include_usage matches the non-streaming content', { timeout: TEST_TIMEOUT_MS },
       async () => {
         assert.equal(typeof greedyContent, 'string', 'needs the previous test');
         const stream = await client.chat.completions.create({
           ...GREEDY_CHAT,
           stream: true,
           stream_options: { include_usage: true },
         });
         let text = '';
         let finish = null;
         let role = null;
         const usages = [];
         let last = null;
         let chunks = 0;
         const ids = new Set();
         for await (const chunk of stream) {
           ++chunks;
           last = chunk;
           ids.add(chunk.id);
           assert.equal(chunk.object, 'chat.completion.chunk');
           assert.equal(chunk.model, MODEL_NAME);
           if (chunk.usage) usages.push(chunk.usage);
           for (const c of chunk.choices) {
             assert.equal(c.index, 0);
             if (c.delta?.role) role = c.delta.role;
             if (typeof c.delta?.content === 'string') text += c.delta.content;
             if (c.finish_reason) finish = c.finish_reason;
           }
         }
         assert.ok(chunks >= 3, `only ${chunks} chunks`);
         assert.equal(ids.size, 1, 'every chunk carries the same id');
         assert.equal(role, 'assistant');
         assert.equal(text, greedyContent);
         assert.equal(finish, 'length');
         assert.equal(usages.length, 1, 'exactly one chunk carries usage');
         assert.ok(last.usage, 'the last chunk carries usage');
         assert.equal(last.choices.length, 0);
         assertUsage(last.usage);
         assert.equal(last.usage.completion_tokens, 8);
       });

  test('completions.create, non-streaming and streaming', { timeout: TEST_TIMEOUT_MS }, async () => {
    const req = { model: MODEL_NAME, prompt: 'The quick brown fox', max_tokens: 8, temperature: 0 };
    const r = await client.completions.create(req);
    assert.equal(r.object, 'text_completion');
    assert.equal(r.model, MODEL_NAME);
    assert.equal(r.choices.length, 1);
    assert.equal(typeof r.choices[0].text, 'string');
    assert.equal(r.choices[0].index, 0);
    assert.ok(['length', 'stop'].includes(r.choices[0].finish_reason), r.choices[0].finish_reason);
    assertUsage(r.usage);

    const stream = await client.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let finish = null;
    let usage = null;
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'text_completion');
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        text += c.text;
        if (c.finish_reason) finish = c.finish_reason;
      }
    }
    assert.equal(text, r.choices[0].text);
    assert.equal(finish, r.choices[0].finish_reason);
    assertUsage(usage);
    assert.equal(usage.completion_tokens, r.usage.completion_tokens);
    assert.equal(usage.prompt_tokens, r.usage.prompt_tokens);
  });

  test('chat logprobs with top_logprobs: 2', { timeout: TEST_TIMEOUT_MS }, async () => {
    const r = await client.chat.completions.create({ ...GREEDY_CHAT, logprobs: true, top_logprobs: 2 });
    const content = r.choices[0].logprobs?.content;
    assert.ok(Array.isArray(content), `logprobs: ${JSON.stringify(r.choices[0].logprobs)}`);
    assert.equal(content.length, r.usage.completion_tokens);
    for (const t of content) {
      assert.equal(typeof t.token, 'string');
      assert.equal(typeof t.logprob, 'number');
      assert.ok(t.logprob <= 0);
      assert.ok(Array.isArray(t.bytes));
      assert.equal(t.top_logprobs.length, 2);
      assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob);
      // Greedy: the chosen token is the most likely one.
      assert.ok(Math.abs(t.logprob - t.top_logprobs[0].logprob) < 1e-6,
                `greedy token ${JSON.stringify(t.token)} logprob ${t.logprob} < top ${t.top_logprobs[0].logprob}`);
    }
  });

  test('n: 2 with a seed returns choices 0 and 1', { timeout: TEST_TIMEOUT_MS }, async () => {
    const r = await client.chat.completions.create({
      model: MODEL_NAME,
      messages: [{ role: 'user', content: 'Tell me a story.' }],
      max_tokens: 6,
      temperature: 1,
      seed: 42,
      n: 2,
    });
    assert.equal(r.choices.length, 2);
    assert.deepEqual(r.choices.map((c) => c.index).sort(), [0, 1]);
    for (const c of r.choices) {
      assert.equal(typeof c.message.content, 'string');
      assert.ok(['length', 'stop'].includes(c.finish_reason), c.finish_reason);
    }
    assertUsage(r.usage);
    assert.ok(r.usage.completion_tokens <= 12);
  });

  test('an unknown model is NotFoundError 404', { timeout: TEST_TIMEOUT_MS }, async () => {
    const e = await expectSdkError(
        client.chat.completions.create({ ...GREEDY_CHAT, model: 'no-such-model' }), OpenAI.NotFoundError, 404);
    assert.equal(e.code, 'model_not_found');
    assert.equal(e.param, 'model');
  });

  test('max_tokens: -5 is BadRequestError 400', { timeout: TEST_TIMEOUT_MS }, async () => {
    const e = await expectSdkError(
        client.chat.completions.create({ ...GREEDY_CHAT, max_tokens: -5 }), OpenAI.BadRequestError, 400);
    assert.equal(e.type, 'invalid_request_error');
    assert.equal(e.param, 'max_tokens');
  });

  test('a prompt over the context limit is 400 context_length_exceeded', { timeout: TEST_TIMEOUT_MS },
       async () => {
         const longText = 'The river runs past the old mill and the mill wheel turns. '.repeat(600);
         const chat = await expectSdkError(
             client.chat.completions.create({ ...GREEDY_CHAT, messages: [{ role: 'user', content: longText }] }),
             OpenAI.BadRequestError, 400);
         assert.equal(chat.code, 'context_length_exceeded');
         assert.equal(chat.param, 'messages');
         const completion = await expectSdkError(
             client.completions.create({ model: MODEL_NAME, prompt: longText, max_tokens: 8 }),
             OpenAI.BadRequestError, 400);
         assert.equal(completion.code, 'context_length_exceeded');
         assert.equal(completion.param, 'prompt');
       });

  describe('with API keys (WF_API_KEYS=secret1)', () => {
    let keyedBase;

    before(async () => {
      // Same workers, a second router that demands a key.
      const workerPorts = [];
      for (const c of children) {
        const m = c.name.startsWith('worker-') && c.log.match(/grpc listening on 127\.0\.0\.1:(\d+)/);
        if (m) workerPorts.push(Number(m[1]));
      }
      assert.equal(workerPorts.length, 2);
      keyedBase = await startRouter('router-keyed', workerPorts, { ...process.env, WF_API_KEYS: 'secret1' });
    }, { timeout: STARTUP_TIMEOUT_MS + 10_000 });

    test('the right key works', { timeout: TEST_TIMEOUT_MS }, async () => {
      const c = makeClient(keyedBase, 'secret1');
      const r = await c.chat.completions.create(GREEDY_CHAT);
      assert.equal(typeof r.choices[0].message.content, 'string');
      const ids = [];
      for await (const m of c.models.list()) ids.push(m.id);
      assert.ok(ids.includes(MODEL_NAME));
    });

    test('a wrong key is AuthenticationError 401', { timeout: TEST_TIMEOUT_MS }, async () => {
      const c = makeClient(keyedBase, 'secret2');
      await expectSdkError(c.chat.completions.create(GREEDY_CHAT), OpenAI.AuthenticationError, 401);
      await expectSdkError(c.models.list(), OpenAI.AuthenticationError, 401);
    });

    test('/health needs no key; /v1/models without one is 401', { timeout: TEST_TIMEOUT_MS }, async () => {
      const h = await fetch(`${keyedBase}/health`, { signal: AbortSignal.timeout(10_000) });
      assert.equal(h.status, 200);
      const m = await fetch(`${keyedBase}/v1/models`, { signal: AbortSignal.timeout(10_000) });
      assert.equal(m.status, 401);
      const body = await m.json();
      assert.equal(typeof body.error?.message, 'string');
    });
  });
});

// A failure in a hook leaves nothing on screen about the children: show them.
process.on('beforeExit', () => {
  if (process.exitCode && process.exitCode !== 0) dumpLogs();
});
