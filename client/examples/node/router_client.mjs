// Streams one completion from a WrinkleFree router's gRPC front
// (wrinklefree.v1.Router) with @grpc/grpc-js. The .proto files are loaded at
// run time by @grpc/proto-loader: no generated code.
//
//   npm ci --prefix client/examples/node        # once; versions pinned by package-lock.json
//   node client/examples/node/router_client.mjs --target 127.0.0.1:50061 \
//       --prompt "Once upon a time" [--max-tokens 64] [--temperature 0] [--api-key KEY]
//
// The text goes to stdout as it arrives, then a newline; the final usage goes
// to stderr as one line:
//   usage: prompt_tokens=5 completion_tokens=16 cached_prompt_tokens=0 finish_reason=length
// Exit status: 0 on success, 1 when the call fails (the gRPC code and message
// on stderr), 2 on bad usage.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, '..', '..', '..');

function usage(message) {
  process.stderr.write(`router_client.mjs: ${message}\n`);
  process.stderr.write(
      'usage: node router_client.mjs --target HOST:PORT --prompt TEXT [--max-tokens N] [--temperature T]\n' +
      '           [--api-key KEY] [--timeout SECONDS] [--proto-dir DIR]\n');
  process.exit(2);
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      target: { type: 'string', default: '127.0.0.1:50061' },
      prompt: { type: 'string' },
      'max-tokens': { type: 'string', default: '64' },
      temperature: { type: 'string', default: '0' },
      'api-key': { type: 'string', default: process.env.WF_API_KEY ?? '' },
      timeout: { type: 'string', default: '120' },
      'proto-dir': { type: 'string', default: path.join(REPO_ROOT, 'proto') },
    },
    strict: true,
  }));
} catch (e) {
  usage(e.message);
}
if (!args.prompt) usage('--prompt is required');
const maxTokens = Number(args['max-tokens']);
const temperature = Number(args.temperature);
const timeoutSeconds = Number(args.timeout);
if (!Number.isInteger(maxTokens) || maxTokens < 1) usage(`--max-tokens ${args['max-tokens']}: want an integer >= 1`);
if (!Number.isFinite(temperature) || temperature < 0) usage(`--temperature ${args.temperature}: want a number >= 0`);
if (!(timeoutSeconds > 0)) usage(`--timeout ${args.timeout}: want seconds > 0`);

// keepCase: fields keep their .proto names (text_delta, max_tokens);
// enums as their names; unset scalars as their defaults.
let v1;
try {
  const definition = protoLoader.loadSync('wrinklefree/v1/router.proto', {
    includeDirs: [args['proto-dir']],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  v1 = grpc.loadPackageDefinition(definition).wrinklefree.v1;
} catch (e) {
  usage(`cannot load wrinklefree/v1/router.proto from --proto-dir ${args['proto-dir']}: ${e.message}`);
}

const client = new v1.Router(args.target, grpc.credentials.createInsecure());
const metadata = new grpc.Metadata();
if (args['api-key']) metadata.set('authorization', `Bearer ${args['api-key']}`);

// A RouterGenerateRequest: the generation itself is worker.proto's
// GenerateRequest (text prompt, sampling, stop conditions).
const request = {
  request: {
    text: args.prompt,
    sampling: { temperature },
    stop: { max_tokens: maxTokens },
  },
};

let final = null;
let failed = false;
const call = client.Generate(request, metadata, { deadline: Date.now() + timeoutSeconds * 1000 });
call.on('data', (chunk) => {
  process.stdout.write(chunk.text_delta);
  if (chunk.finished) final = chunk;
});
call.on('error', (e) => {
  failed = true;
  process.stdout.write('\n');
  const code = Object.keys(grpc.status).find((k) => grpc.status[k] === e.code) ?? e.code;
  process.stderr.write(`router_client.mjs: ${code}: ${e.details} (Router/Generate to ${args.target})\n`);
  process.exitCode = 1;
  client.close();
});
call.on('end', () => {
  if (failed) return;
  process.stdout.write('\n');
  if (final === null) {
    process.stderr.write('router_client.mjs: the stream ended without a final response\n');
    process.exitCode = 1;
  } else {
    const u = final.usage;
    const reason = String(final.finish_reason).replace(/^FINISH_REASON_/, '').toLowerCase();
    process.stderr.write(`usage: prompt_tokens=${u.prompt_tokens} completion_tokens=${u.completion_tokens} ` +
                         `cached_prompt_tokens=${u.cached_prompt_tokens} finish_reason=${reason}\n`);
  }
  client.close();
});
