// Example Claude Network client in Node.js, loading proto/ at run time with
// @grpc/proto-loader. Registers two agents, sends a message signed here
// (CNET-MSG-V1, HMAC-SHA256 with node:crypto), reads it back, then creates
// a task that the second agent takes (pushed or claimed) and starts.
//
//   (cd examples/node && npm ci)
//   node examples/node/client.js --registry 127.0.0.1:7101 --macs 127.0.0.1:7102 \
//       --tasks 127.0.0.1:7103 --secret-file ~/.claude-network/data/message.secret
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

function args() {
  const out = {
    registry: '127.0.0.1:7101',
    macs: '127.0.0.1:7102',
    tasks: '127.0.0.1:7103',
    'secret-file': path.join(os.homedir(), '.claude-network/data/message.secret'),
    'proto-root': path.resolve(__dirname, '../..'),
  };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) out[argv[i].replace(/^--/, '')] = argv[i + 1];
  return out;
}

// RFC 8785 canonical JSON for objects, arrays, strings, integers, booleans.
function canonicalJson(v) {
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return '[' + v.map(canonicalJson).join(',') + ']';
  if (typeof v === 'object') {
    return '{' + Object.keys(v).sort().map((k) => JSON.stringify(k) + ':' + canonicalJson(v[k])).join(',') + '}';
  }
  return JSON.stringify(v);
}

function field(text) {
  const b = Buffer.from(text, 'utf8');
  return Buffer.concat([Buffer.from(String(b.length) + ':'), b, Buffer.from('\n')]);
}

function canonicalBytes(m) {
  const parts = [m.id, m.sender, m.recipient, String(m.type), m.subject, m.body,
    canonicalJson(m.payload || {}), String(m.priority), m.createdAt, String(m.ttlSeconds),
    m.correlationId, m.replyTo, m.originNode];
  return Buffer.concat([Buffer.from('CNET-MSG-V1\n'), ...parts.map(field)]);
}

function rfc3339(seconds) {
  return new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function call(client, method, request, token) {
  const md = new grpc.Metadata();
  if (token) md.add('authorization', 'Bearer ' + token);
  return new Promise((resolve, reject) => {
    client[method](request, md, { deadline: Date.now() + 10000 }, (err, resp) =>
      (err ? reject(new Error(method + ': ' + err.message)) : resolve(resp)));
  });
}

// google.protobuf.Struct from a plain object (strings, numbers, booleans).
function toStruct(obj) {
  const fields = {};
  for (const [k, v] of Object.entries(obj)) {
    if (typeof v === 'number') fields[k] = { numberValue: v };
    else if (typeof v === 'boolean') fields[k] = { boolValue: v };
    else fields[k] = { stringValue: String(v) };
  }
  return { fields };
}

async function main() {
  const a = args();
  const root = a['proto-root'];
  const def = protoLoader.loadSync(
    ['proto/claudenet/v1/registry.proto', 'proto/claudenet/v1/macs.proto', 'proto/claudenet/v1/tasks.proto'],
    { includeDirs: [root], keepCase: true, longs: String, enums: Number, defaults: true });
  const pkg = grpc.loadPackageDefinition(def).claudenet.v1;
  const creds = grpc.credentials.createInsecure();
  const registry = new pkg.RegistryService(a.registry, creds);
  const macs = new pkg.MacsGateway(a.macs, creds);
  const tasks = new pkg.TaskService(a.tasks, creds);
  const secret = fs.readFileSync(a['secret-file'], 'utf8').trim();
  const suffix = crypto.randomBytes(4).toString('hex');

  const alice = await call(registry, 'Register', { name: 'node-alice-' + suffix, capabilities: ['node', 'review'] });
  const bob = await call(registry, 'Register', { name: 'node-bob-' + suffix, capabilities: ['node', 'build'] });
  console.log('registered', alice.agent.id, bob.agent.id);

  const now = Math.floor(Date.now() / 1000);
  const payload = { attempt: 1, lang: 'node' };
  const DIRECT = pkg.MessageType.type.value.find((v) => v.name === 'MESSAGE_TYPE_DIRECT').number;
  const msg = {
    id: 'msg-node-' + crypto.randomBytes(8).toString('hex'), sender: alice.agent.id,
    recipient: bob.agent.id, type: DIRECT, subject: 'hello', body: 'hi bob, from node',
    payload, priority: 0, createdAt: rfc3339(now), ttlSeconds: 0, correlationId: '',
    replyTo: '', originNode: '',
  };
  const signature = crypto.createHmac('sha256', secret).update(canonicalBytes(msg)).digest('hex');
  const sent = await call(macs, 'Send', {
    message: {
      id: msg.id, sender: msg.sender, recipient: msg.recipient, type: msg.type,
      subject: msg.subject, body: msg.body, payload: toStruct(payload),
      created_at: { seconds: String(now), nanos: 0 }, signature,
    },
  }, alice.token);
  console.log('sent', sent.message_id);

  const inbox = await call(macs, 'FetchInbox', { agent_id: bob.agent.id }, bob.token);
  const entry = inbox.entries.find((e) => e.message.id === msg.id);
  if (!entry) throw new Error('message not found in bob\'s inbox');
  console.log('bob read:', entry.message.subject, '-', entry.message.body);
  await call(macs, 'Ack', { agent_id: bob.agent.id, inbox_sequences: [entry.inbox_sequence] }, bob.token);

  const created = await call(tasks, 'CreateTask', { title: 'build it ' + suffix, required_capabilities: ['build'] }, alice.token);
  console.log('created task', created.task.id);
  // The scheduler may already have pushed it to bob; otherwise bob pulls it.
  const { task } = await call(tasks, 'GetTask', { task_id: created.task.id }, bob.token);
  let lease = task.lease;
  let how = 'was assigned';
  const ASSIGNED = pkg.TaskState.type.value.find((v) => v.name === 'TASK_STATE_ASSIGNED').number;
  if (!(task.state === ASSIGNED && task.assignee === bob.agent.id)) {
    const claimed = await call(tasks, 'Claim', { agent_id: bob.agent.id, task_id: task.id }, bob.token);
    lease = claimed.lease;
    how = 'claimed';
  }
  await call(tasks, 'Start', { task_id: task.id, lease_id: lease.lease_id, lease_epoch: lease.epoch }, bob.token);
  console.log('bob', how, 'and started', task.id, 'lease epoch', lease.epoch);
}

main().then(() => process.exit(0), (err) => {
  console.error('example failed:', err.message);
  process.exit(1);
});
