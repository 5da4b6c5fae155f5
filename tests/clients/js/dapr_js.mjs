// An app on the JavaScript Dapr SDK (@dapr/dapr 3.18.0), run by tests/clients/test_dapr_js.py.
//
//   node dapr_js.mjs http|grpc SCENARIO...
//
// It talks to the sidecar at DAPR_HOST:DAPR_HTTP_PORT (http) or DAPR_HOST:DAPR_GRPC_PORT (grpc) the way
// an app does: `new DaprClient(...)`, `await client.start()`, then the conversation API, which the SDK's
// typings do not cover: over HTTP through the SDK's HTTPClient (`executeWithApiVersion`), over gRPC
// through the ConnectRPC client of `GRPCClient.getClient()` with the SDK's generated messages. It prints
// one line `RESULT {json}`: per scenario, what the app got, or the error it caught.
//
// The SDK is loaded from the npm project PARLEY_JS_MODULES (tests/clients/install.sh puts it under
// $PARLEY_CACHE), not from beside this file.
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.PARLEY_JS_MODULES, "package.json"));
const { DaprClient, CommunicationProtocolEnum, LogLevel } = require("@dapr/dapr");
const pb = require("@dapr/dapr/proto/dapr/proto/runtime/v1/dapr_pb");
const { create, toJson } = require("@bufbuild/protobuf");
const { ConnectError, Code } = require("@connectrpc/connect");

const [protocol, ...scenarios] = process.argv.slice(2);
const host = process.env.DAPR_HOST;
const START_BOUND_MS = 10_000; // the SDK itself polls GetMetadata 60 x 500 ms before giving up

const client = new DaprClient({
  daprHost: host,
  daprPort: protocol === "grpc" ? process.env.DAPR_GRPC_PORT : process.env.DAPR_HTTP_PORT,
  communicationProtocol: protocol === "grpc" ? CommunicationProtocolEnum.GRPC : CommunicationProtocolEnum.HTTP,
  logger: { level: LogLevel.Error },
});
let started = false;

async function start() {
  let timer;
  const bound = new Promise((_, reject) => {
    const why = `client.start() had not returned after ${START_BOUND_MS} ms`
      + " (over gRPC it polls GetMetadata until the sidecar answers it)";
    timer = setTimeout(() => reject(new Error(why)), START_BOUND_MS);
  });
  try {
    await Promise.race([client.start(), bound]);
  } finally {
    clearTimeout(timer);
  }
  started = true;
  return { started: true, initialized: client.getIsInitialized() };
}

// --- HTTP: the SDK's HTTPClient ------------------------------------------------------------------
function converseHttp(version, name, body) {
  return client.daprClient.executeWithApiVersion(version, `/conversation/${name}/converse`,
    { method: "POST", body });
}

async function httpError(promise) {
  try {
    return { answered: await promise };
  } catch (err) {
    const info = JSON.parse(err.message); // the SDK throws {error, error_msg, status}
    let body = info.error_msg;
    try { body = JSON.parse(body); } catch { /* not JSON */ }
    return { status: info.status, body };
  }
}

// --- gRPC: the ConnectRPC client and the SDK's generated messages ---------------------------------
async function grpcClient() {
  // After a successful start() as any app would; else without it, so the conversation methods are
  // still exercised (and the start scenario's own result says what went wrong).
  return started ? client.daprClient.getClient() : client.daprClient.getClient(false);
}

function alpha1Request(name, text) {
  return create(pb.ConversationRequestSchema, {
    name, inputs: [create(pb.ConversationInputSchema, { content: text })],
  });
}

function alpha2Request(name, text) {
  const user = create(pb.ConversationMessageOfUserSchema, {
    content: [create(pb.ConversationMessageContentSchema, { text })],
  });
  const message = create(pb.ConversationMessageSchema, { messageTypes: { case: "ofUser", value: user } });
  return create(pb.ConversationRequestAlpha2Schema, {
    name, inputs: [create(pb.ConversationInputAlpha2Schema, { messages: [message] })],
  });
}

async function grpcError(promise) {
  try {
    return { answered: await promise };
  } catch (err) {
    if (!(err instanceof ConnectError)) throw err;
    return { code: Code[err.code], message: err.rawMessage };
  }
}

const SCENARIOS = {
  http: {
    start,
    alpha1: () => converseHttp("v1.0-alpha1", "echo", { inputs: [{ content: "hello from js over http" }] }),
    alpha2: () => converseHttp("v1.0-alpha2", "echo", {
      inputs: [{ messages: [{ ofUser: { content: [{ text: "hello alpha2 over http" }] } }] }],
    }),
    unknown: () => httpError(converseHttp("v1.0-alpha2", "no-such-llm", {
      inputs: [{ messages: [{ ofUser: { content: [{ text: "anyone?" }] } }] }],
    })),
  },
  grpc: {
    start,
    alpha1: async () => toJson(pb.ConversationResponseSchema,
      await (await grpcClient()).converseAlpha1(alpha1Request("echo", "hello from js over grpc"))),
    alpha2: async () => toJson(pb.ConversationResponseAlpha2Schema,
      await (await grpcClient()).converseAlpha2(alpha2Request("echo", "hello alpha2 over grpc"))),
    unknown: async () => grpcError((await grpcClient()).converseAlpha2(alpha2Request("no-such-llm", "anyone?"))),
  },
};

const results = {};
for (const name of scenarios) {
  try {
    results[name] = { ok: true, result: await SCENARIOS[protocol][name]() };
  } catch (err) {
    results[name] = { ok: false, error: String(err?.stack ?? err) };
  }
}
console.log("RESULT " + JSON.stringify(results));
await client.stop();
process.exit(0);
